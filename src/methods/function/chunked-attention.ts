// Exact attention in O(n) extra memory by an online softmax over query and key tiles: Rabe & Staats 2021,
// "Self-attention Does Not Need O(n²) Memory" (the tiling of Dao et al. 2022, "FlashAttention").

import type { AttentionFunction, AttentionInputs } from '../../attention/functions.js';
import { concat, formatShape, runOp1, Tensor } from '../../tensor/index.js';

/**
 * Options of chunked attention (Rabe & Staats 2021, "Self-attention Does Not Need O(n²) Memory"): tile sizes.
 */
export interface ChunkedAttentionOptions {
  /** Query rows per tile (reference code: query_chunk_size). Default: as many as fit `tileElements`. */
  queryChunkSize?: number;
  /** Key columns per tile (reference code: key_chunk_size, 4096). */
  keyChunkSize?: number;
  /** Largest score tile, batch·heads·queries·keys elements, when `queryChunkSize` is not given (2²²). */
  tileElements?: number;
}

/** The part of an additive bias (broadcastable to (B, H, Tq, Tk)) that meets query rows [q0, q1) and key columns [k0, k1). */
function biasTile(bias: Tensor, q0: number, q1: number, k0: number, k1: number): Tensor {
  const r = bias.rank;
  let b = bias;
  if (r >= 2 && (b.shape[r - 2] as number) > 1) b = b.slice(r - 2, q0, q1);
  if (r >= 1 && (b.shape[r - 1] as number) > 1) b = b.slice(r - 1, k0, k1);
  return b;
}

/**
 * One query tile against every key tile. Each key tile j gives a normalised partial output o_j = softmax(s_j)·v_j
 * and its log-normaliser ℓ_j = log Σ exp(s_j); tiles combine as ℓ = logaddexp(ℓ, ℓ_j),
 * o = o·exp(ℓ_old − ℓ) + o_j·exp(ℓ_j − ℓ) — the online softmax, exact up to rounding.
 */
function queryTile(a: AttentionInputs, q: Tensor, q0: number, keyChunk: number): Tensor {
  const tk = a.k.shape[2] as number;
  let o: Tensor | undefined;
  let lse: Tensor | undefined;
  for (let k0 = 0; k0 < tk; k0 += keyChunk) {
    const k1 = Math.min(k0 + keyChunk, tk);
    const k = a.k.slice(2, k0, k1);
    const v = a.v.slice(2, k0, k1);
    let s = q.matmul(k, { transB: true, alpha: a.scale }); // (B, H, tq, tk)
    // −∞ clamped to −1e30: a tile whose keys are all masked for a row then weighs exp(−1e30 − ℓ) = 0, not NaN
    if (a.bias) s = s.add(biasTile(a.bias, q0, q0 + (q.shape[2] as number), k0, k1).maximum(-1e30));
    const oj = s.softmax(-1).matmul(v); // (B, H, tq, dv)
    if (k1 === tk && k0 === 0) return oj; // one key tile: plain softmax, no bookkeeping
    const lseJ = runOp1('ReduceLogSumExp', [s, Tensor.int64([-1])], { attrs: { keepdims: 1 } }); // (B, H, tq, 1)
    if (!o || !lse) {
      o = oj;
      lse = lseJ;
      continue;
    }
    const m = lse.maximum(lseJ);
    const wOld = lse.sub(m).exp();
    const wNew = lseJ.sub(m).exp();
    const total = wOld.add(wNew); // (B, H, tq, 1)
    o = o.mul(wOld.div(total)).add(oj.mul(wNew.div(total)));
    lse = total.log().add(m);
  }
  return o as Tensor;
}

/** Exact attention by query and key tiles: no (Tq × Tk) map is ever formed whole. */
export function chunkedAttention(opts: ChunkedAttentionOptions = {}): AttentionFunction {
  const keyChunkSize = opts.keyChunkSize ?? 4096;
  const tileElements = opts.tileElements ?? 2 ** 22;
  for (const [name, v] of [
    ['queryChunkSize', opts.queryChunkSize],
    ['keyChunkSize', keyChunkSize],
    ['tileElements', tileElements],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 1)) {
      throw new Error(`chunkedAttention: ${name} must be a positive integer, got ${v}`);
    }
  }
  return {
    name: 'chunked',
    explicit: false,
    run(a) {
      if (a.q.rank !== 4 || a.k.rank !== 4 || a.v.rank !== 4) {
        throw new Error(
          `chunkedAttention: expected q, k, v of rank 4 (B, H, T, d), got ${formatShape(a.q.shape)}, ` +
            `${formatShape(a.k.shape)}, ${formatShape(a.v.shape)}`,
        );
      }
      const [b, h, tq] = a.q.shape as [number, number, number];
      const tk = a.k.shape[2] as number;
      const keyChunk = Math.min(keyChunkSize, tk);
      const queryChunk = Math.min(
        tq,
        opts.queryChunkSize ?? Math.max(1, Math.floor(tileElements / (b * h * keyChunk))),
      );
      const tiles: Tensor[] = [];
      for (let q0 = 0; q0 < tq; q0 += queryChunk) {
        const q = a.q.slice(2, q0, Math.min(q0 + queryChunk, tq));
        tiles.push(queryTile(a, q, q0, keyChunk));
      }
      return concat(tiles, 2);
    },
  };
}
