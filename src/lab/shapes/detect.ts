// Object detection for ShapesEval, with no learned model: colour unmixing against the palette, connected
// components, and shape fitting by template.
//
// 1. Background: a plane B(x, y) = a + b·x + c·y per channel (background.ts).
// 2. Colour: a pixel p is a mix p ≈ (1 − α)·B + α·C of the background and one palette colour C. For each C,
//    α = ⟨p − B, C − B⟩ / |C − B|² (clamped to [0, 1]) and the residual |p − B − α(C − B)| say how well C
//    explains p. A pixel belongs to the colour with the smallest residual if that colour's α ≥ 0.5 and
//    the residual is ≤ maxResidual; it is background otherwise.
// 3. Objects: 8-connected components of each colour, with at least minArea pixels. A component's soft
//    mask is α on its pixels and on the pixels around them (its anti-aliased edge).
// 4. Shape: for every shape, the template (geometry.ts) with the same area and centroid as the soft mask,
//    and for the two best shapes that scale ×0.94 and ×1.06 too; the best soft IoU names the shape and
//    gives scale and centre, hence size (scale against sizeThreshold) and grid cell (centre).

import { formatShape, type Tensor } from '../../index.js';
import { fitBackground } from './background.js';
import {
  placementWindow,
  rasterize,
  SHAPES,
  type ShapeName,
  type UnitMoments,
  unitMoments,
} from './geometry.js';
import { type Cell, cellAt } from './grid.js';
import { type BackgroundTone, COLORS, type ColorName, nearestTone, PALETTE, type Rgb } from './palette.js';
import type { Box } from './render.js';
import { type SizeName, sizeThreshold } from './scene.js';

/** An object ShapesEval's detector found: colour, shape, size, cell, centre, scale, area, box and fit. */
export interface DetectedObject {
  color: ColorName;
  shape: ShapeName;
  size: SizeName;
  cell: Cell;
  /** Fitted centre of the shape's bounding box, pixels. */
  cx: number;
  cy: number;
  /** Fitted pixels per unit shape. */
  scale: number;
  /** Soft area, pixels. */
  area: number;
  /** Box of the component's pixels, [x0, x1) × [y0, y1). */
  box: Box;
  /** Soft IoU of the best template, and the best other shape's. */
  fit: number;
  runnerUp: { shape: ShapeName; fit: number };
  /**
   * Only with `DetectOptions.extraShapes`: the extra shape whose template fits better than every built-in
   * one (`shape` and `fit` stay the best built-in shape's), with its soft IoU.
   */
  extraShape?: { name: string; fit: number };
}

/**
 * A shape outside the Shapes world's own (a new concept, e.g. new-concept.ts's diamond) that the detector
 * fits as well when asked: its unit area and centroid, and its anti-aliased rasterisation.
 */
export interface ShapeTemplate {
  /** The shape's word, as ShapesEval reports it. */
  name: string;
  /** Area and centroid of the shape at unit scale. */
  moments: UnitMoments;
  /** The anti-aliased coverage of the shape at centre (cx, cy) and `scale`, written into `out` inside `window`. */
  rasterize(
    p: { cx: number; cy: number; scale: number },
    width: number,
    height: number,
    out: Float32Array,
    window: { x0: number; y0: number; x1: number; y1: number },
  ): Float32Array;
}

/** Everything detected in an image: its size, the background's colour and tone, the objects. */
export interface Detection {
  width: number;
  height: number;
  /** Mean fitted background colour (8-bit levels) and its tone. */
  background: { rgb: Rgb; tone: BackgroundTone };
  /** Largest first. */
  objects: DetectedObject[];
}

/** Options of the detector: the largest colour residual and the smallest area of an object. */
export interface DetectOptions {
  /** Largest residual (8-bit levels) for a pixel to take a palette colour. Default 60. */
  maxResidual?: number;
  /** Fewest pixels of a component, counted at 64 × 64 (scaled with the image). Default 8. */
  minArea?: number;
  /** Opt-in: shapes fitted besides the built-in ones (default none: detection as without them). */
  extraShapes?: readonly ShapeTemplate[];
}

/** (1, 3, H, W) or (3, H, W) float32 in [-1, 1] → planes of 8-bit levels (float). */
function levels(image: Tensor): { rgb: Float32Array; width: number; height: number } {
  const s = image.shape;
  const ok = (s.length === 4 && s[0] === 1 && s[1] === 3) || (s.length === 3 && s[0] === 3);
  if (!ok || image.dtype !== 'float32') {
    throw new Error(
      `detectObjects: expected a float32 image of shape (1, 3, H, W) or (3, H, W), got ${formatShape(s)}`,
    );
  }
  const x = image.data as Float32Array;
  return {
    rgb: Float32Array.from(x, (v) => (v + 1) * 127.5),
    width: s[s.length - 1]!,
    height: s[s.length - 2]!,
  };
}

/** α and residual of pixel p for colour k against the background. */
function unmix(rgb: Float32Array, bg: Float32Array, plane: number, p: number, k: number): [number, number] {
  const colour = PALETTE[COLORS[k]!];
  let dd = 0;
  let dp = 0;
  for (let c = 0; c < 3; c++) {
    const d = colour[c]! - bg[c * plane + p]!;
    dd += d * d;
    dp += d * (rgb[c * plane + p]! - bg[c * plane + p]!);
  }
  const alpha = Math.min(1, Math.max(0, dd > 0 ? dp / dd : 0));
  let res = 0;
  for (let c = 0; c < 3; c++) {
    const e = rgb[c * plane + p]! - bg[c * plane + p]! - alpha * (colour[c]! - bg[c * plane + p]!);
    res += e * e;
  }
  return [alpha, Math.sqrt(res)];
}

type Placement = { cx: number; cy: number; scale: number };
type Window = { x0: number; y0: number; x1: number; y1: number };

/** Best template for a soft mask: shape, fitted placement and soft IoU, per shape. */
function fitShapes(
  soft: Float32Array,
  width: number,
  height: number,
  scratch: Float32Array,
  extraShapes: readonly ShapeTemplate[] = [],
) {
  let area = 0;
  let mx = 0;
  let my = 0;
  let bx0 = width;
  let by0 = height;
  let bx1 = 0;
  let by1 = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const a = soft[y * width + x]!;
      if (a === 0) continue;
      area += a;
      mx += a * (x + 0.5);
      my += a * (y + 0.5);
      bx0 = Math.min(bx0, x);
      by0 = Math.min(by0, y);
      bx1 = Math.max(bx1, x + 1);
      by1 = Math.max(by1, y + 1);
    }
  }
  mx /= area;
  my /= area;
  const softIoU = (m: UnitMoments, factor: number, draw: (p: Placement, win: Window) => void) => {
    const scale = Math.sqrt(area / m.area) * factor;
    const placement = { cx: mx - scale * m.cu, cy: my - scale * m.cv, scale };
    // the window depends on centre and scale only
    const win = placementWindow({ shape: SHAPES[0], ...placement }, width, height);
    draw(placement, win);
    let inter = 0;
    let union = 0;
    const x0 = Math.min(win.x0, bx0);
    const y0 = Math.min(win.y0, by0);
    const x1 = Math.max(win.x1, bx1);
    const y1 = Math.max(win.y1, by1);
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const p = y * width + x;
        const t = scratch[p]!;
        const a = soft[p]!;
        inter += Math.min(a, t);
        union += Math.max(a, t);
        scratch[p] = 0;
      }
    }
    return { fit: union > 0 ? inter / union : 0, cx: placement.cx, cy: placement.cy, scale };
  };
  const fitAt = (shape: ShapeName, factor: number) => ({
    shape,
    ...softIoU(unitMoments(shape), factor, (p, win) =>
      rasterize({ shape, ...p }, width, height, scratch, win),
    ),
  });
  // every shape at the area-matched scale, then the two best also ×0.94 and ×1.06
  const fits = SHAPES.map((shape) => fitAt(shape, 1)).sort((a, b) => b.fit - a.fit);
  for (let i = 0; i < 2; i++) {
    for (const factor of [0.94, 1.06]) {
      const f = fitAt(fits[i]!.shape, factor);
      if (f.fit > fits[i]!.fit) fits[i] = f;
    }
  }
  fits.sort((a, b) => b.fit - a.fit);
  // opt-in extra shapes, each at the area-matched scale and ×0.94, ×1.06
  let extra: { name: string; fit: number; cx: number; cy: number; scale: number } | undefined;
  for (const t of extraShapes) {
    for (const factor of [1, 0.94, 1.06]) {
      const f = softIoU(t.moments, factor, (p, win) => t.rasterize(p, width, height, scratch, win));
      if (f.fit > fits[0]!.fit && f.fit > (extra?.fit ?? 0)) extra = { name: t.name, ...f };
    }
  }
  return { fits, extra, area, box: { x0: bx0, y0: by0, x1: bx1, y1: by1 } };
}

/** The objects ShapesEval sees in an image. */
export function detectObjects(image: Tensor, options: DetectOptions = {}): Detection {
  const { rgb, width, height } = levels(image);
  const maxResidual = options.maxResidual ?? 60;
  const minArea = ((options.minArea ?? 8) * width * height) / 4096;
  const plane = width * height;
  const bg = fitBackground(rgb, width, height);

  // colour label per pixel (-1: background)
  const label = new Int8Array(plane).fill(-1);
  for (let p = 0; p < plane; p++) {
    let best = -1;
    let bestRes = Number.POSITIVE_INFINITY;
    let bestAlpha = 0;
    for (let k = 0; k < COLORS.length; k++) {
      const [alpha, res] = unmix(rgb, bg, plane, p, k);
      if (res < bestRes) {
        best = k;
        bestRes = res;
        bestAlpha = alpha;
      }
    }
    if (bestAlpha >= 0.5 && bestRes <= maxResidual) label[p] = best;
  }

  // 8-connected components per colour
  const component = new Int32Array(plane).fill(-1);
  const members: number[][] = [];
  for (let start = 0; start < plane; start++) {
    if (label[start] === -1 || component[start] !== -1) continue;
    const id = members.length;
    const stack = [start];
    const list: number[] = [];
    component[start] = id;
    while (stack.length > 0) {
      const p = stack.pop()!;
      list.push(p);
      const x = p % width;
      const y = (p - x) / width;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          const yy = y + dy;
          if (xx < 0 || yy < 0 || xx >= width || yy >= height) continue;
          const q = yy * width + xx;
          if (component[q] === -1 && label[q] === label[start]) {
            component[q] = id;
            stack.push(q);
          }
        }
      }
    }
    members.push(list);
  }

  const objects: DetectedObject[] = [];
  const soft = new Float32Array(plane);
  const scratch = new Float32Array(plane);
  const threshold = sizeThreshold(width);
  for (const list of members) {
    if (list.length < minArea) continue;
    const k = label[list[0]!]!;
    // soft mask: α on the component and on the unlabelled pixels that touch it
    soft.fill(0);
    for (const p of list) {
      soft[p] = unmix(rgb, bg, plane, p, k)[0];
      const x = p % width;
      const y = (p - x) / width;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const xx = x + dx;
          const yy = y + dy;
          if (xx < 0 || yy < 0 || xx >= width || yy >= height) continue;
          const q = yy * width + xx;
          if (label[q] !== -1 || soft[q] !== 0) continue;
          const [alpha, res] = unmix(rgb, bg, plane, q, k);
          if (res <= maxResidual) soft[q] = alpha;
        }
      }
    }
    const { fits, extra, area, box } = fitShapes(soft, width, height, scratch, options.extraShapes);
    const best = fits[0]!;
    objects.push({
      color: COLORS[k]!,
      shape: best.shape,
      size: best.scale >= threshold ? 'large' : 'small',
      cell: cellAt(best.cx, best.cy, width, height),
      cx: best.cx,
      cy: best.cy,
      scale: best.scale,
      area,
      box,
      fit: best.fit,
      runnerUp: { shape: fits[1]!.shape, fit: fits[1]!.fit },
      ...(extra ? { extraShape: { name: extra.name, fit: extra.fit } } : {}),
    });
  }
  objects.sort((a, b) => b.area - a.area);

  let mean: [number, number, number] = [0, 0, 0];
  for (let c = 0; c < 3; c++) {
    let s = 0;
    for (let p = 0; p < plane; p++) s += bg[c * plane + p]!;
    mean[c] = s / plane;
  }
  mean = mean.map((v) => Math.round(v)) as [number, number, number];
  return { width, height, background: { rgb: mean, tone: nearestTone(mean) }, objects };
}
