// What the lab's measurements score with: means and rates, 8-bit image errors (mean abs error, PSNR), colour
// statistics, and the masks of detected objects.
//
// Generated images have no ground truth, so an object's mask is the template (shape, centre, scale) that
// ShapesEval's detector fitted to it, rasterised at coverage ≥ 0.5. Errors are in 8-bit levels (0–255),
// averaged over channels.

import type { Tensor } from '../index.js';
import {
  type DetectedObject,
  type Detection,
  dilate,
  maskIoU,
  type ObjectReport,
  rasterize,
  type SceneReport,
} from './shapes/index.js';

/** The mean, or null for no values. */
export const mean = (xs: readonly number[]): number | null =>
  xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : null;

/** The fraction true, or null for no values. */
export const rate = (xs: readonly boolean[]): number | null =>
  xs.length > 0 ? xs.filter(Boolean).length / xs.length : null;

/** Euclidean distance. */
export const dist = (a: readonly number[], b: readonly number[]): number =>
  Math.hypot(...a.map((v, i) => v - b[i]!));

// ----------------------------------------------------------------------------------------------------------
// images

/** (1, 3, H, W) in [-1, 1] → planes of 8-bit levels, clamped. */
export function levelsOf(image: Tensor): Float32Array {
  return Float32Array.from(image.data as Float32Array, (v) => Math.min(255, Math.max(0, (v + 1) * 127.5)));
}

/** [width, height] of an image (B, C, H, W). */
export function sizeOf(image: Tensor): [number, number] {
  return [image.shape[3] as number, image.shape[2] as number];
}

/** Mean |a − b| (8-bit levels, over channels) on the pixels where `where` is 1 (all when omitted). */
export function meanAbsError(a: Tensor, b: Tensor, where?: ArrayLike<number>): number {
  const x = levelsOf(a);
  const y = levelsOf(b);
  const plane = (a.shape[2] as number) * (a.shape[3] as number);
  let sum = 0;
  let count = 0;
  for (let p = 0; p < plane; p++) {
    if (where && !(where[p]! > 0.5)) continue;
    for (let c = 0; c < 3; c++) sum += Math.abs(x[c * plane + p]! - y[c * plane + p]!);
    count += 3;
  }
  return count > 0 ? sum / count : 0;
}

/** PSNR (dB) of two images in [-1, 1], on the [0, 1] scale after clamping. */
export function psnr(a: Tensor, b: Tensor): number {
  const x = levelsOf(a);
  const y = levelsOf(b);
  let se = 0;
  for (let i = 0; i < x.length; i++) se += ((x[i]! - y[i]!) / 255) ** 2;
  const mse = se / x.length;
  return mse === 0 ? Number.POSITIVE_INFINITY : 10 * Math.log10(1 / mse);
}

/** Mean RGB (8-bit levels) and mean HSV saturation of the pixels in a mask; null when it is empty. */
export function colourStats(
  image: Tensor,
  mask: ArrayLike<number>,
): { rgb: number[]; saturation: number } | null {
  const x = levelsOf(image);
  const plane = (image.shape[2] as number) * (image.shape[3] as number);
  const rgb = [0, 0, 0];
  let sat = 0;
  let n = 0;
  for (let p = 0; p < plane; p++) {
    if (!(mask[p]! > 0.5)) continue;
    const px = [x[p]!, x[plane + p]!, x[2 * plane + p]!];
    for (let c = 0; c < 3; c++) rgb[c]! += px[c]!;
    const hi = Math.max(...px);
    sat += hi > 0 ? (hi - Math.min(...px)) / hi : 0;
    n++;
  }
  return n === 0 ? null : { rgb: rgb.map((v) => v / n), saturation: sat / n };
}

// ----------------------------------------------------------------------------------------------------------
// masks

/** Union of binary masks. */
export function unionMask(masks: readonly ArrayLike<number>[], size: number): Float32Array {
  const out = new Float32Array(size);
  for (const m of masks) for (let i = 0; i < size; i++) if (m[i]! > 0.5) out[i] = 1;
  return out;
}

/** Pixels away from the masks (their union grown by 2): where an edit should change nothing. */
export function outsideOf(masks: readonly (Float32Array | null)[], w: number, h: number): Float32Array {
  const union = unionMask(
    masks.filter((m): m is Float32Array => m !== null),
    w * h,
  );
  return dilate(union, w, h, 2).map((v) => 1 - v);
}

/** The mask (H, W) of a detected object: its fitted template rasterised, coverage ≥ 0.5. */
export function detectedMask(d: DetectedObject, width: number, height: number): Float32Array {
  const cover = rasterize({ shape: d.shape, cx: d.cx, cy: d.cy, scale: d.scale }, width, height);
  return Float32Array.from(cover, (c) => (c >= 0.5 ? 1 : 0));
}

/** The detected mask of a prompt object in `image`, or null when ShapesEval matched none to it. */
export function maskOf(o: ObjectReport | undefined, image: Tensor): Float32Array | null {
  if (!o?.detected) return null;
  const [w, h] = sizeOf(image);
  return detectedMask(o.detected, w, h);
}

/** A prompt object drawn with its colour and shape. */
export const rightObject = (o: ObjectReport | undefined): boolean =>
  o?.present === true && o.color && o.shape;

/**
 * The union of the detected templates of every detected object with this colour and shape: all the copies of
 * an object a generated image shows (a model that draws "a red circle" twice), or null when there is none.
 */
export function copiesMask(
  detection: Detection,
  object: { color: string; shape: string },
  width: number,
  height: number,
): Float32Array | null {
  const copies = detection.objects.filter((d) => d.color === object.color && d.shape === object.shape);
  if (copies.length === 0) return null;
  const out = new Float32Array(width * height);
  for (const d of copies) {
    detectedMask(d, width, height).forEach((v, p) => {
      if (v > 0) out[p] = 1;
    });
  }
  return out;
}

/**
 * The mask of the copy of `report`'s object `j` that overlaps `source` most: among the detected objects with the
 * matched object's colour and shape (ShapesEval's match first, so it wins ties), or null when it is not found.
 */
export function samePlaceMask(
  source: Float32Array,
  report: SceneReport,
  j: number,
  width: number,
  height: number,
): Float32Array | null {
  const matched = report.objects[j]?.detected;
  if (!matched) return null;
  const copies = report.detection.objects.filter(
    (d) => d !== matched && d.color === matched.color && d.shape === matched.shape,
  );
  let best = detectedMask(matched, width, height);
  let bestIoU = maskIoU(source, best);
  for (const d of copies) {
    const m = detectedMask(d, width, height);
    const v = maskIoU(source, m);
    if (v > bestIoU) [best, bestIoU] = [m, v];
  }
  return best;
}
