// Mask utilities for scoring maps against ground truth: IoU (binary and soft), thresholds (fixed and
// Otsu's), and resizing a low-resolution map (a 16 × 16 attention map) to the image's size.
//
// A mask is an (H, W) array of numbers — a Tensor of any shape with H·W elements, or a typed array —
// row-major. Binary masks count a pixel in when its value is > 0.5.

import { Tensor } from '../../index.js';

/** A mask or map: a tensor, a typed array or numbers, row-major. */
export type MaskLike = Tensor | Float32Array | Uint8Array | readonly number[];

function values(op: string, m: MaskLike): ArrayLike<number> {
  if (m instanceof Tensor) {
    if (m.dtype === 'int64') throw new Error(`${op}: int64 masks are not supported; use float32 or uint8`);
    return m.data as ArrayLike<number>;
  }
  return m;
}

function pair(op: string, a: MaskLike, b: MaskLike): [ArrayLike<number>, ArrayLike<number>] {
  const x = values(op, a);
  const y = values(op, b);
  if (x.length !== y.length)
    throw new Error(`${op}: masks have ${x.length} and ${y.length} pixels; resize first`);
  return [x, y];
}

/** A binary mask grown by r pixels (square neighbourhood). */
export function dilate(mask: ArrayLike<number>, width: number, height: number, r = 1): Float32Array {
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!(mask[y * width + x]! > 0.5)) continue;
      for (let dy = -r; dy <= r; dy++) {
        for (let dx = -r; dx <= r; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy >= 0 && yy < height && xx >= 0 && xx < width) out[yy * width + xx] = 1;
        }
      }
    }
  }
  return out;
}

/**
 * Intersection over union of two binary masks (pixel in when > 0.5). Two empty masks give 1: they agree
 * everywhere.
 */
export function maskIoU(a: MaskLike, b: MaskLike): number {
  const [x, y] = pair('maskIoU', a, b);
  let inter = 0;
  let union = 0;
  for (let i = 0; i < x.length; i++) {
    const p = x[i]! > 0.5;
    const q = y[i]! > 0.5;
    if (p && q) inter++;
    if (p || q) union++;
  }
  return union === 0 ? 1 : inter / union;
}

/** Soft (Ruzicka) IoU of two maps with values in [0, 1]: Σ min(a, b) / Σ max(a, b); 1 when both are 0. */
export function softIoU(a: MaskLike, b: MaskLike): number {
  const [x, y] = pair('softIoU', a, b);
  let inter = 0;
  let union = 0;
  for (let i = 0; i < x.length; i++) {
    inter += Math.min(x[i]!, y[i]!);
    union += Math.max(x[i]!, y[i]!);
  }
  return union === 0 ? 1 : inter / union;
}

/** 1 where value > threshold, else 0. */
export function thresholdMask(m: MaskLike, threshold: number): Float32Array {
  return Float32Array.from(values('thresholdMask', m), (v) => (v > threshold ? 1 : 0));
}

/** Values rescaled to [0, 1] by their min and max (all zeros when constant) — before a fixed threshold. */
export function normalizeMap(m: MaskLike): Float32Array {
  const x = values('normalizeMap', m);
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < x.length; i++) {
    lo = Math.min(lo, x[i]!);
    hi = Math.max(hi, x[i]!);
  }
  const out = new Float32Array(x.length);
  if (hi > lo) for (let i = 0; i < x.length; i++) out[i] = (x[i]! - lo) / (hi - lo);
  return out;
}

/**
 * Otsu's threshold (Otsu 1979): the value that maximises the between-class variance of the values split
 * in two, searched over a histogram of `bins` bins between their min and max. Values > threshold are
 * the foreground. A constant map gives its value.
 */
export function otsuThreshold(m: MaskLike, bins = 256): number {
  const x = values('otsuThreshold', m);
  if (x.length === 0) throw new Error('otsuThreshold: empty map');
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < x.length; i++) {
    lo = Math.min(lo, x[i]!);
    hi = Math.max(hi, x[i]!);
  }
  if (!(hi > lo)) return lo;
  const width = (hi - lo) / bins;
  const hist = new Float64Array(bins);
  for (let i = 0; i < x.length; i++) hist[Math.min(bins - 1, Math.floor((x[i]! - lo) / width))]!++;
  const centre = (k: number) => lo + (k + 0.5) * width;
  let total = 0;
  for (let k = 0; k < bins; k++) total += hist[k]! * centre(k);
  let w0 = 0;
  let sum0 = 0;
  let best = -1;
  let bestK = 0;
  for (let k = 0; k < bins - 1; k++) {
    w0 += hist[k]!;
    sum0 += hist[k]! * centre(k);
    const w1 = x.length - w0;
    if (w0 === 0 || w1 === 0) continue;
    const diff = sum0 / w0 - (total - sum0) / w1;
    const between = w0 * w1 * diff * diff;
    if (between > best) {
      best = between;
      bestK = k;
    }
  }
  return lo + (bestK + 1) * width; // upper edge of the last background bin
}

/** The map thresholded at its Otsu threshold. */
export function otsuMask(m: MaskLike): Float32Array {
  return thresholdMask(m, otsuThreshold(m));
}

/**
 * Bilinear resize of an (h, w) map to (height, width), pixel centres aligned (align_corners = false, as
 * torch's `interpolate(mode='bilinear')`), edges clamped.
 */
export function resizeMap(m: MaskLike, h: number, w: number, height: number, width: number): Float32Array {
  const x = values('resizeMap', m);
  if (x.length !== h * w) throw new Error(`resizeMap: map has ${x.length} values, not ${h}×${w}`);
  const out = new Float32Array(height * width);
  const sy = h / height;
  const sx = w / width;
  for (let i = 0; i < height; i++) {
    const fy = Math.min(h - 1, Math.max(0, (i + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(h - 1, y0 + 1);
    const ty = fy - y0;
    for (let j = 0; j < width; j++) {
      const fx = Math.min(w - 1, Math.max(0, (j + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(w - 1, x0 + 1);
      const tx = fx - x0;
      const top = x[y0 * w + x0]! * (1 - tx) + x[y0 * w + x1]! * tx;
      const bottom = x[y1 * w + x0]! * (1 - tx) + x[y1 * w + x1]! * tx;
      out[i * width + j] = top * (1 - ty) + bottom * ty;
    }
  }
  return out;
}
