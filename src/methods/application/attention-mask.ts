// DiffuMask (Wu et al. 2023, "DiffuMask: Synthesizing Images with Pixel-level Annotations for Semantic Segmentation Using Diffusion Models").
//
// A word's aggregated cross-attention map becomes a binary mask: upsample to the image (bicubic), normalise
// (min–max, as DAAM's `expand_as`, or by the maximum, as LocalBlend), optionally max-pool 3×3 (LocalBlend), and
// threshold: a fixed value (DAAM's 0.4, LocalBlend's 0.3) or an adaptive one (Otsu's, in the spirit of
// DiffuMask's adaptive thresholding of averaged cross-attention).

import { formatShape, Tensor } from '../../tensor/index.js';
import { resize2d } from '../map/upsample.js';

/**
 * Options of `attentionMask` (DiffuMask, Wu et al. 2023): output size, normalisation, threshold (a value or
 * Otsu's) and LocalBlend's 3×3 max-pooling.
 */
export interface AttentionMaskOptions {
  /** Output size (H, W); default the map's. */
  size?: readonly [number, number];
  /** 'minmax' (default): (x − min)/(max − min); 'max': x / max. */
  normalize?: 'minmax' | 'max';
  /** A value in [0, 1] after normalisation, or 'otsu' (default 0.4, DAAM's mask threshold). */
  threshold?: number | 'otsu';
  /** 3×3 max-pooling before thresholding (LocalBlend's dilation). */
  pool?: boolean;
}

/** The normalised map (H, W) in [0, 1] that `attentionMask` thresholds. */
export function normalizedAttention(map: Tensor, opts: AttentionMaskOptions = {}): Tensor {
  if (map.rank !== 2) throw new Error(`attentionMask: expected a map (h, w), got ${formatShape(map.shape)}`);
  let x = opts.size ? resize2d(map, opts.size, 'bicubic') : map;
  const [h, w] = x.shape as [number, number];
  let v: Float32Array = Float32Array.from(x.toArray());
  if (opts.pool) v = maxPool3(v, h, w);
  let lo = Infinity;
  let hi = -Infinity;
  for (const a of v) {
    lo = Math.min(lo, a);
    hi = Math.max(hi, a);
  }
  if (opts.normalize === 'max') lo = 0;
  const range = hi - lo;
  x = new Tensor(
    v.map((a) => (range > 0 ? (a - lo) / range : 0)),
    [h, w],
  );
  return x;
}

/** A binary mask (H, W) of 0 and 1 from a word's attention map (h, w). */
export function attentionMask(map: Tensor, opts: AttentionMaskOptions = {}): Tensor {
  const x = normalizedAttention(map, opts);
  const values = x.data as Float32Array;
  const th = opts.threshold === 'otsu' ? otsuThreshold(values) : (opts.threshold ?? 0.4);
  return new Tensor(
    values.map((a) => (a > th ? 1 : 0)),
    x.shape,
  );
}

/** Otsu's threshold of values in [0, 1]: the cut (on `bins` levels) that maximises the between-class variance. */
export function otsuThreshold(values: ArrayLike<number>, bins = 256): number {
  const hist = new Float64Array(bins);
  for (let i = 0; i < values.length; i++) {
    hist[Math.min(bins - 1, Math.max(0, Math.floor(values[i]! * bins)))]! += 1;
  }
  const total = values.length;
  let sumAll = 0;
  for (let b = 0; b < bins; b++) sumAll += b * hist[b]!;
  let w0 = 0;
  let sum0 = 0;
  let best = -1;
  let cut = 0;
  for (let b = 0; b < bins - 1; b++) {
    w0 += hist[b]!;
    sum0 += b * hist[b]!;
    const w1 = total - w0;
    if (w0 === 0 || w1 === 0) continue;
    const m0 = sum0 / w0;
    const m1 = (sumAll - sum0) / w1;
    const between = w0 * w1 * (m0 - m1) ** 2;
    if (between > best) {
      best = between;
      cut = b;
    }
  }
  return (cut + 1) / bins; // values ≥ the upper edge of the cut's bin are foreground
}

/** Intersection over union of two binary masks (one implementation, shared with ShapesEval). */

/** 3×3 max-pooling with stride 1 and padding 1 of an (h, w) map (PyTorch's max_pool2d(3, 1, 1)). */
export function maxPool3(m: Float32Array, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let best = -Infinity;
      for (let yy = Math.max(0, y - 1); yy <= Math.min(h - 1, y + 1); yy++) {
        for (let xx = Math.max(0, x - 1); xx <= Math.min(w - 1, x + 1); xx++)
          best = Math.max(best, m[yy * w + xx]!);
      }
      out[y * w + x] = best;
    }
  }
  return out;
}
