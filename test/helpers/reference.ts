// Naive plain-JS reference implementations for the tensor tests: loops over explicit indices in float64,
// written from the definitions (NumPy broadcasting, PyTorch's conv / conv_transpose / interpolate
// semantics) and sharing no code with src/tensor.

import type { Shape, Tensor } from '../../src/tensor/index.js';
import type { Reference } from './tolerance.js';

export type Source = Tensor | Reference;

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function valuesOf(x: Source): number[] {
  return Array.from(x.data as ArrayLike<number | bigint>, Number);
}

/** Row-major multi-index of flat position `i`. */
export function indexOf(i: number, shape: Shape): number[] {
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d] as number;
    idx[d] = i % n;
    i = Math.floor(i / n);
  }
  return idx;
}

/** Flat position of a row-major multi-index. */
export function flatOf(idx: readonly number[], shape: Shape): number {
  let f = 0;
  for (let d = 0; d < shape.length; d++) f = f * (shape[d] as number) + (idx[d] as number);
  return f;
}

/** A reference tensor whose element at each multi-index is `fn(index)`. */
export function build(shape: Shape, fn: (idx: number[]) => number): Reference {
  const n = numel(shape);
  const data = new Array<number>(n);
  for (let i = 0; i < n; i++) data[i] = fn(indexOf(i, shape));
  return { shape: [...shape], data };
}

/** Reads `x` at `idx` (same rank). */
export function at(x: Source, idx: readonly number[]): number {
  return Number(x.data[flatOf(idx, x.shape)]);
}

/** NumPy broadcast shape of several shapes (null when they do not broadcast). */
export function broadcastShape(...shapes: Shape[]): number[] {
  const n = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let d = 1;
    for (const s of shapes) {
      const v = s[s.length - n + i] ?? 1;
      if (v !== 1) {
        if (d !== 1 && d !== v) throw new Error(`reference: ${JSON.stringify(shapes)} do not broadcast`);
        d = v;
      }
    }
    out.push(d);
  }
  return out;
}

/** Reads `x` at an index of a broadcast output (right-aligned; size-1 dims repeat). */
export function atBroadcast(x: Source, outIdx: readonly number[]): number {
  const lead = outIdx.length - x.shape.length;
  const idx = x.shape.map((d, k) => (d === 1 ? 0 : (outIdx[lead + k] as number)));
  return at(x, idx);
}

/** Elementwise map of several broadcast operands. */
export function zipWith(xs: readonly Source[], fn: (...v: number[]) => number): Reference {
  const shape = broadcastShape(...xs.map((x) => x.shape));
  return build(shape, (idx) => fn(...xs.map((x) => atBroadcast(x, idx))));
}

/** Reduction over `axes` with an (init, step, finish) fold; keepDims as NumPy. */
export function reduce(
  x: Source,
  axes: readonly number[],
  keepDims: boolean,
  fold: (values: number[]) => number,
): Reference {
  const r = x.shape.length;
  const ax = axes.map((a) => (a < 0 ? a + r : a));
  const kept = x.shape.map((d, i) => (ax.includes(i) ? 1 : d));
  const groups = new Map<number, number[]>();
  for (let i = 0; i < numel(x.shape); i++) {
    const idx = indexOf(i, x.shape).map((v, d) => (ax.includes(d) ? 0 : v));
    const key = flatOf(idx, kept);
    const list = groups.get(key) ?? [];
    list.push(Number(x.data[i]));
    groups.set(key, list);
  }
  const data = Array.from({ length: numel(kept) }, (_, k) => fold(groups.get(k) ?? []));
  return { shape: keepDims ? kept : x.shape.filter((_, i) => !ax.includes(i)), data };
}

/** Batched matrix product with broadcasting of the leading dims and optional transposes, α·op(A)·op(B). */
export function matmulRef(a: Source, b: Source, transA = false, transB = false, alpha = 1): Reference {
  const ra = a.shape.length;
  const rb = b.shape.length;
  const n = a.shape[ra - (transA ? 1 : 2)] as number;
  const k = a.shape[ra - (transA ? 2 : 1)] as number;
  const m = b.shape[rb - (transB ? 2 : 1)] as number;
  const batch = broadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  return build([...batch, n, m], (idx) => {
    const bi = idx.slice(0, -2);
    const i = idx[idx.length - 2] as number;
    const j = idx[idx.length - 1] as number;
    let s = 0;
    for (let p = 0; p < k; p++) {
      const av = atBroadcast(a, [...bi, transA ? p : i, transA ? i : p]);
      const bv = atBroadcast(b, [...bi, transB ? j : p, transB ? p : j]);
      s += av * bv;
    }
    return alpha * s;
  });
}

export interface ConvParams {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

/** torch.nn.functional.conv2d: out[n,o,y,x] = b[o] + Σ_{c,i,j} w[o,c,i,j] · in[n, g·cg+c, y·s−p+i·d, x·s−p+j·d]. */
export function conv2dRef(x: Source, w: Source, bias: Source | null, p: ConvParams): Reference {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [o, cg, kh, kw] = w.shape as [number, number, number, number];
  const og = o / p.groups;
  const ho = Math.floor((h + 2 * p.padding[0] - p.dilation[0] * (kh - 1) - 1) / p.stride[0]) + 1;
  const wo = Math.floor((wd + 2 * p.padding[1] - p.dilation[1] * (kw - 1) - 1) / p.stride[1]) + 1;
  if (c !== cg * p.groups) throw new Error('conv2dRef: channels');
  return build([n, o, ho, wo], ([b, oc, y, xx]) => {
    const g = Math.floor((oc as number) / og);
    let s = bias ? at(bias, [oc as number]) : 0;
    for (let ci = 0; ci < cg; ci++) {
      for (let i = 0; i < kh; i++) {
        for (let j = 0; j < kw; j++) {
          const yy = (y as number) * p.stride[0] - p.padding[0] + i * p.dilation[0];
          const xi = (xx as number) * p.stride[1] - p.padding[1] + j * p.dilation[1];
          if (yy < 0 || yy >= h || xi < 0 || xi >= wd) continue;
          s += at(w, [oc as number, ci, i, j]) * at(x, [b as number, g * cg + ci, yy, xi]);
        }
      }
    }
    return s;
  });
}

/**
 * torch.nn.functional.conv_transpose2d by scattering: every input pixel adds w[c, o, i, j] · in[n, c, y, x]
 * to out[n, g·og+o, y·s−p+i·d, x·s−p+j·d]; output size (H−1)·s − 2p + d·(k−1) + outputPadding + 1.
 */
export function convTranspose2dRef(
  x: Source,
  w: Source,
  bias: Source | null,
  p: ConvParams & { outputPadding: [number, number] },
): Reference {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [, og, kh, kw] = w.shape as [number, number, number, number];
  const cg = c / p.groups;
  const o = og * p.groups;
  const ho = (h - 1) * p.stride[0] - 2 * p.padding[0] + p.dilation[0] * (kh - 1) + p.outputPadding[0] + 1;
  const wo = (wd - 1) * p.stride[1] - 2 * p.padding[1] + p.dilation[1] * (kw - 1) + p.outputPadding[1] + 1;
  const shape = [n, o, ho, wo];
  const out = new Array<number>(numel(shape)).fill(0);
  for (let b = 0; b < n; b++) {
    for (let oc = 0; oc < o; oc++) {
      const bv = bias ? at(bias, [oc]) : 0;
      for (let q = 0; q < ho * wo; q++) out[flatOf([b, oc, Math.floor(q / wo), q % wo], shape)] = bv;
    }
  }
  for (let b = 0; b < n; b++) {
    for (let ci = 0; ci < c; ci++) {
      const g = Math.floor(ci / cg);
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < wd; xx++) {
          const v = at(x, [b, ci, y, xx]);
          for (let oo = 0; oo < og; oo++) {
            for (let i = 0; i < kh; i++) {
              for (let j = 0; j < kw; j++) {
                const yy = y * p.stride[0] - p.padding[0] + i * p.dilation[0];
                const xi = xx * p.stride[1] - p.padding[1] + j * p.dilation[1];
                if (yy < 0 || yy >= ho || xi < 0 || xi >= wo) continue;
                const f = flatOf([b, g * og + oo, yy, xi], shape);
                out[f] = (out[f] as number) + v * at(w, [ci, oo, i, j]);
              }
            }
          }
        }
      }
    }
  }
  return { shape, data: out };
}

/**
 * PyTorch's upsample_nearest2d (CPU kernel, float32 arithmetic):
 * src = min(floor(dst · float(in)/out), in − 1).
 */
export function nearestRef(x: Source, size: [number, number]): Reference {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const src = (dst: number, inSize: number, outSize: number): number =>
    Math.min(Math.floor(Math.fround(dst * Math.fround(inSize / outSize))), inSize - 1);
  return build([n, c, size[0], size[1]], ([b, ch, y, xx]) =>
    at(x, [b as number, ch as number, src(y as number, h, size[0]), src(xx as number, w, size[1])]),
  );
}

/**
 * PyTorch's upsample_bilinear2d: align_corners=False maps dst to src = (dst + ½)·in/out − ½, clamped at 0
 * (half_pixel); align_corners=True maps src = dst·(in − 1)/(out − 1). The upper neighbour is clamped to the
 * last row/column.
 */
export function bilinearRef(x: Source, size: [number, number], alignCorners = false): Reference {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const coord = (dst: number, inSize: number, outSize: number): [number, number, number] => {
    let s: number;
    if (alignCorners) s = outSize > 1 ? (dst * (inSize - 1)) / (outSize - 1) : 0;
    else s = Math.max(((dst + 0.5) * inSize) / outSize - 0.5, 0);
    const i0 = Math.min(Math.floor(s), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    return [i0, i1, s - i0];
  };
  return build([n, c, size[0], size[1]], ([b, ch, y, xx]) => {
    const [y0, y1, ly] = coord(y as number, h, size[0]);
    const [x0, x1, lx] = coord(xx as number, w, size[1]);
    const v = (yy: number, xi: number): number => at(x, [b as number, ch as number, yy, xi]);
    return (1 - ly) * ((1 - lx) * v(y0, x0) + lx * v(y0, x1)) + ly * ((1 - lx) * v(y1, x0) + lx * v(y1, x1));
  });
}

/** erf by its Maclaurin series (|x| ≤ 4: error < 1e-11 from cancellation) and the asymptotic tail beyond. */
export function erf(x: number): number {
  if (Math.abs(x) > 4) {
    // erfc(x) ≈ e^{−x²}/(x√π)·(1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶)); relative error < 1e-4 of erfc < 2e-8
    const a = Math.abs(x);
    const t = 1 / (2 * a * a);
    const erfc = (Math.exp(-a * a) / (a * Math.sqrt(Math.PI))) * (1 - t + 3 * t * t - 15 * t * t * t);
    return Math.sign(x) * (1 - erfc);
  }
  let term = x;
  let s = x;
  for (let k = 1; k < 100; k++) {
    term *= (-x * x) / k;
    const add = term / (2 * k + 1);
    s += add;
    if (Math.abs(add) < 1e-17) break;
  }
  return (2 / Math.sqrt(Math.PI)) * s;
}
