// Sliced attention (diffusers' SlicedAttnProcessor / `enable_attention_slicing`): the reference computation,
// one slice of the batch·heads rows at a time, so the probabilities of only `sliceSize` rows exist at once.

import type { AttentionFunction } from '../../attention/functions.js';
import { concat, formatShape, softmax, type Tensor } from '../../tensor/index.js';

/** Options of sliced attention (diffusers' attention slicing): rows of batch × heads per slice. */
export interface SlicedAttentionOptions {
  /**
   * Rows of batch·heads per slice (diffusers' slice_size): a number, 'auto' (half the heads, diffusers'
   * default) or 'max' (one row at a time).
   */
  sliceSize?: number | 'auto' | 'max';
}

/** Exact attention, `sliceSize` batch·head rows at a time. */
export function slicedAttention(opts: SlicedAttentionOptions = {}): AttentionFunction {
  const sliceSize = opts.sliceSize ?? 'auto';
  if (typeof sliceSize === 'number' && (!Number.isInteger(sliceSize) || sliceSize < 1)) {
    throw new Error(
      `slicedAttention: sliceSize must be a positive integer, 'auto' or 'max', got ${sliceSize}`,
    );
  }
  return {
    name: 'sliced',
    explicit: false,
    run({ q, k, v, scale, bias }) {
      if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) {
        throw new Error(
          `slicedAttention: expected q, k, v of rank 4 (B, H, T, d), got ${formatShape(q.shape)}, ` +
            `${formatShape(k.shape)}, ${formatShape(v.shape)}`,
        );
      }
      const [b, h, tq] = q.shape as [number, number, number];
      const tk = k.shape[2] as number;
      const rows = b * h;
      const size = sliceSize === 'max' ? 1 : sliceSize === 'auto' ? Math.max(1, h >> 1) : sliceSize;
      // (B, H, T, d) → (B·H, T, d); a bias is expanded to (B·H, Tq, Tk) only when it is given
      const q3 = q.reshape([rows, tq, -1]);
      const k3 = k.reshape([rows, tk, -1]);
      const v3 = v.reshape([rows, tk, -1]);
      const bias3 = bias?.expand([b, h, tq, tk]).reshape([rows, tq, tk]);
      const parts: Tensor[] = [];
      for (let r0 = 0; r0 < rows; r0 += size) {
        const r1 = Math.min(r0 + size, rows);
        let s = q3.slice(0, r0, r1).matmul(k3.slice(0, r0, r1), { transB: true, alpha: scale });
        if (bias3) s = s.add(bias3.slice(0, r0, r1));
        parts.push(softmax(s, -1).matmul(v3.slice(0, r0, r1)));
      }
      return concat(parts, 0).reshape([b, h, tq, -1]);
    },
  };
}
