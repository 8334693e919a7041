// Prompt-to-Prompt's attention views (Hertz et al. 2022; the notebooks' `aggregate_attention` and
// `show_self_attention_comp`): maps of one resolution averaged over layers and heads, and the principal
// components of the self-attention map — the top right singular vectors of the row-centred (res², res²) matrix,
// each shown as a res × res image.

import { formatShape, Tensor } from '../../tensor/index.js';
import type { StoredMap } from './attention-store.js';

export interface AggregateOptions {
  /** Side of the maps taken (the reference's `res`). */
  res: number;
  /** Places taken (the reference's `from_where`, default up and down). */
  fromWhere?: readonly ('down' | 'mid' | 'up')[];
  kind: 'cross' | 'self';
  /** Prompt index of the row taken (the reference's `select`, default 0). */
  select?: number;
}

/** `aggregate_attention`: (res, res, Tk) — the maps of side `res` averaged over the chosen layers and heads. */
export function aggregateAttention(maps: readonly StoredMap[], opts: AggregateOptions): Tensor {
  const where = opts.fromWhere ?? ['up', 'down'];
  const chosen = maps.filter(
    (m) => m.kind === opts.kind && where.includes(m.place) && m.size[0] === opts.res,
  );
  if (chosen.length === 0) {
    throw new Error(
      `aggregateAttention: no ${opts.kind}-attention maps of side ${opts.res} in ${where.join(', ')}`,
    );
  }
  let total: Tensor | undefined;
  let heads = 0;
  for (const m of chosen) {
    const r = m.prompts.findIndex((p, i) => p === (opts.select ?? 0) && m.guidance[i] === 'cond');
    if (r < 0)
      throw new Error(`aggregateAttention: ${m.path} holds no conditional row of prompt ${opts.select ?? 0}`);
    const row = m.map.slice(0, r, r + 1); // (1, H, Tq, Tk)
    const s = row.sum({ axes: [0, 1] }); // (Tq, Tk)
    total = total ? total.add(s) : s;
    heads += row.shape[1] as number;
  }
  const tk = total!.shape[1] as number;
  return total!.div(heads).reshape([opts.res, opts.res, tk]);
}

/**
 * `show_self_attention_comp`: the first `maxCom` principal components of the averaged self-attention map
 * (res² × res²), each a (res, res) image min–max normalised to [0, 1] (their sign is arbitrary, as an SVD's).
 * Computed by orthogonal iteration on AᵀA, A the map with each row's mean removed.
 */
export function selfAttentionComponents(
  maps: readonly StoredMap[],
  opts: Omit<AggregateOptions, 'kind'> & { maxCom?: number; iterations?: number },
): Tensor[] {
  const a = aggregateAttention(maps, { ...opts, kind: 'self' });
  const n = opts.res * opts.res;
  if (a.shape[2] !== n)
    throw new Error(`selfAttentionComponents: expected a square self map, got ${formatShape(a.shape)}`);
  return principalDirections(
    Float64Array.from(a.toArray()),
    n,
    Math.min(opts.maxCom ?? 10, n),
    opts.iterations,
  ).map((v) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of v) {
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    return new Tensor(
      Float32Array.from(v, (x) => (hi > lo ? (x - lo) / (hi - lo) : 0)),
      [opts.res, opts.res],
    );
  });
}

/** The top-k right singular vectors of the row-centred n × n matrix `m` (row-major), by decreasing value. */
export function principalDirections(m: Float64Array, n: number, k: number, iterations = 100): Float64Array[] {
  const a = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    let mean = 0;
    for (let j = 0; j < n; j++) mean += a[i * n + j]!;
    mean /= n;
    for (let j = 0; j < n; j++) a[i * n + j]! -= mean;
  }
  // Q: k orthonormal columns (stored as rows), deterministic start
  let q: Float64Array[] = Array.from({ length: k }, (_, c) =>
    Float64Array.from({ length: n }, (_, j) => Math.sin(1 + c * n + j * 7.1)),
  );
  orthonormalize(q);
  const av = new Float64Array(n);
  const apply = (v: Float64Array): Float64Array => {
    // AᵀA v
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += a[i * n + j]! * v[j]!;
      av[i] = s;
    }
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const s = av[i]!;
      if (s !== 0) for (let j = 0; j < n; j++) out[j]! += a[i * n + j]! * s;
    }
    return out;
  };
  for (let it = 0; it < iterations; it++) {
    q = q.map(apply);
    orthonormalize(q);
  }
  const norm = (v: Float64Array) => Math.hypot(...apply(v)); // σ² ‖v‖ for an eigenvector
  return q
    .map((v) => ({ v, s: norm(v) }))
    .sort((x, y) => y.s - x.s)
    .map((x) => x.v);
}

/** Modified Gram–Schmidt in place; a column that vanishes is replaced by a unit vector. */
function orthonormalize(vs: Float64Array[]): void {
  vs.forEach((v, c) => {
    for (let p = 0; p < c; p++) {
      const u = vs[p]!;
      let d = 0;
      for (let j = 0; j < v.length; j++) d += u[j]! * v[j]!;
      for (let j = 0; j < v.length; j++) v[j]! -= d * u[j]!;
    }
    const len = Math.hypot(...v);
    if (len > 1e-300) for (let j = 0; j < v.length; j++) v[j]! /= len;
    else v.fill(0).set([1], c % v.length);
  });
}
