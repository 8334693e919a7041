// A new concept for the weight level's experiment (issue 27): the diamond, a shape the built-in model never
// saw. It lives here, beside the Shapes world and outside it: SHAPES, the scene sampler, the captions and the
// detector's default behaviour stay as they were, so the held-out prompts and ShapesEval do not move.
//
// The diamond is an upright rhombus, taller than wide (half-width 0.8, half-height 1.12 in unit coordinates,
// geometry.ts), so its outline differs from the square (sides, not corners, point sideways) and from the
// heart (a point at the top, no lobes). Its scenes have one object, drawn like the Shapes world's: a colour
// of the palette, a size, a grid cell with a small jitter, a background of either tone and texture; the
// caption follows the Shapes grammar with "diamond" as the shape word ("a small red diamond on the left on
// a dark background"). "diamond" is not in the built-in tokenizer's vocabulary: it is split into sub-word
// tokens the text encoder already embeds, so the concept is learned from those tokens' text states (no
// new embedding row; Custom Diffusion's modifier token is not needed for a class-level concept).
//
// The detector sees the diamond only when asked: DIAMOND_TEMPLATE passed as `extraShapes` (detect.ts).

import { Generator, Tensor } from '../../index.js';
import type { ShapeTemplate } from './detect.js';
import { SUPERSAMPLING, UNIT_EXTENT } from './geometry.js';
import { type Cell, cellCenter, cellPhrase } from './grid.js';
import {
  BACKGROUND_COLORS,
  BACKGROUND_TONES,
  type BackgroundTone,
  COLORS,
  type ColorName,
  PALETTE,
} from './palette.js';
import { renderScene } from './render.js';
import { type Background, SIZE_SCALE, SIZES, type SizeName, TEXTURES } from './scene.js';

/** The new shape's name: the word its captions use. */
export const NEW_SHAPE = 'diamond';

const HALF_WIDTH = 0.8;
const HALF_HEIGHT = 1.12;

/** Does the unit diamond (|u|/0.8 + |v|/1.12 ≤ 1) contain the point (u, v)? */
export function insideDiamond(u: number, v: number): boolean {
  return Math.abs(u) / HALF_WIDTH + Math.abs(v) / HALF_HEIGHT <= 1;
}

/**
 * Coverage of each pixel by the diamond centred at (cx, cy) with `scale` pixels per unit, by 4 × 4
 * supersampling as geometry.ts's `rasterize`, into `out` within [x0, x1) × [y0, y1).
 */
export function rasterizeDiamond(
  p: { cx: number; cy: number; scale: number },
  width: number,
  height: number,
  out: Float32Array = new Float32Array(width * height),
  window = {
    x0: Math.max(0, Math.floor(p.cx - UNIT_EXTENT * p.scale - 1)),
    y0: Math.max(0, Math.floor(p.cy - UNIT_EXTENT * p.scale - 1)),
    x1: Math.min(width, Math.ceil(p.cx + UNIT_EXTENT * p.scale + 1)),
    y1: Math.min(height, Math.ceil(p.cy + UNIT_EXTENT * p.scale + 1)),
  },
): Float32Array {
  const s = SUPERSAMPLING;
  const inv = 1 / p.scale;
  for (let y = window.y0; y < window.y1; y++) {
    for (let x = window.x0; x < window.x1; x++) {
      let hits = 0;
      for (let sy = 0; sy < s; sy++) {
        const v = (y + (sy + 0.5) / s - p.cy) * inv;
        for (let sx = 0; sx < s; sx++) if (insideDiamond((x + (sx + 0.5) / s - p.cx) * inv, v)) hits++;
      }
      out[y * width + x] = hits / (s * s);
    }
  }
  return out;
}

/** The diamond as a detector template (area 2·0.8·1.12, centroid at the origin by symmetry). */
export const DIAMOND_TEMPLATE: ShapeTemplate = {
  name: NEW_SHAPE,
  moments: { area: 2 * HALF_WIDTH * HALF_HEIGHT, cu: 0, cv: 0 },
  rasterize: rasterizeDiamond,
};

/** A scene of the new concept: one diamond on a Shapes background, and its caption. */
export interface NewConceptScene {
  seed: number;
  width: number;
  height: number;
  background: Background;
  color: ColorName;
  size: SizeName;
  cell: Cell;
  /** Centre of the diamond's bounding box and its scale (pixels per unit). */
  cx: number;
  cy: number;
  scale: number;
  caption: string;
}

/**
 * The new-concept scene of `seed` (any non-negative safe integer; same seed, same scene): a 64 × 64 image
 * with one diamond that keeps a pixel of background to the border. Captions name colour and shape always,
 * the size half the time, the cell half the time, the background tone a third of the time.
 */
export function newConceptScene(seed: number): NewConceptScene {
  if (!Number.isSafeInteger(seed) || seed < 0)
    throw new Error(`newConceptScene: seed must be a non-negative integer, got ${seed}`);
  const gen = new Generator(seed);
  const uniform = (lo = 0, hi = 1) => lo + (hi - lo) * (gen.rand([1]).data[0] as number);
  const pick = <T>(items: readonly T[]): T =>
    items[Math.min(items.length - 1, Math.floor(uniform() * items.length))]!;
  const side = 64;
  const color = pick(COLORS);
  const size = pick(SIZES);
  const cell: Cell = { row: Math.floor(uniform() * 3), col: Math.floor(uniform() * 3) };
  const centre = cellCenter(cell, side, side);
  const scale = SIZE_SCALE[size] * uniform(0.96, 1.04);
  // jitter, kept so the diamond (extent 0.8·s across, 1.12·s down) stays ≥ 1 px from the border
  const clampTo = (c: number, half: number) => Math.min(side - half - 1.5, Math.max(half + 1.5, c));
  const cx = clampTo(centre.x + uniform(-2, 2), HALF_WIDTH * scale);
  const cy = clampTo(centre.y + uniform(-2, 2), HALF_HEIGHT * scale);
  const tone: BackgroundTone = pick(BACKGROUND_TONES);
  const background: Background = {
    tone,
    rgb: pick(BACKGROUND_COLORS[tone]),
    texture: pick(TEXTURES),
    textureSeed: gen.uint32(1)[0]!,
  };
  const sizeWord = uniform() < 0.5 ? `${size} ` : '';
  const first = (sizeWord || color)[0]!;
  const article = 'aeiou'.includes(first) ? 'an' : 'a';
  const place = uniform() < 0.5 ? ` ${cellPhrase(cell)}` : '';
  const bg = uniform() < 0.35 ? ` on a ${tone} background` : '';
  const caption = `${article} ${sizeWord}${color} ${NEW_SHAPE}${place}${bg}`;
  return { seed, width: side, height: side, background, color, size, cell, cx, cy, scale, caption };
}

/** The scene's image, (1, 3, 64, 64) in [-1, 1]: the Shapes background, the diamond composited over it. */
export function renderNewConcept(scene: NewConceptScene): Tensor {
  const { width: w, height: h } = scene;
  const empty = renderScene({
    seed: scene.seed,
    width: w,
    height: h,
    background: scene.background,
    objects: [],
    wording: { sizes: [], positions: [], relation: null, background: false },
  }).image;
  const plane = w * h;
  const image = Float32Array.from(empty.data as Float32Array);
  const coverage = rasterizeDiamond(scene, w, h);
  const colour = PALETTE[scene.color];
  for (let p = 0; p < plane; p++) {
    const a = coverage[p]!;
    if (a === 0) continue;
    // "over" in 8-bit levels, as render.ts composites
    for (let c = 0; c < 3; c++) {
      const below = (image[c * plane + p]! + 1) * 127.5;
      image[c * plane + p] = Math.min(255, Math.max(0, (1 - a) * below + a * colour[c]!)) / 127.5 - 1;
    }
  }
  return new Tensor(image, [1, 3, h, w]);
}

/**
 * Scene seeds of the new concept, apart from each other and from every Shapes seed (training < 10⁹,
 * held-out from 10⁹): training images, development prompts (tuning) and held-out prompts (the report).
 */
export const NEW_CONCEPT_SEEDS = {
  training: 3_000_000_000,
  development: 3_100_000_000,
  heldOut: 3_200_000_000,
} as const;
