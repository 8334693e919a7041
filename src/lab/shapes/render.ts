// Renders a scene to an image tensor and its per-object ground truth.
//
// Each object is rasterised with 4 × 4 supersampling (geometry.ts) into a coverage map α ∈ [0, 1] and
// composited over the background with the "over" operator, pixel = (1 − α)·below + α·colour. Textures
// change the background's brightness by a few levels out of 255 (equally in R, G, B): 'noise' ±8 per
// pixel, 'stripes' ±7 along diagonals (period 8 px at 64 × 64), 'gradient' ±12 from top to bottom.

import { Generator, Tensor } from '../../index.js';
import { rasterize } from './geometry.js';
import { PALETTE } from './palette.js';
import type { Background, Scene } from './scene.js';

/** Pixel bounds [x0, x1) × [y0, y1). */
export interface Box {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/** Ground truth of one object: coverage, its binary mask (coverage ≥ 0.5) and that mask's box. */
export interface ObjectMask {
  /** (H, W) float32 coverage in [0, 1]. */
  coverage: Tensor;
  /** (H, W) float32, 1 where coverage ≥ 0.5, else 0. */
  mask: Tensor;
  box: Box;
}

/** A rendered scene: the image and each object's ground-truth mask and box. */
export interface Rendering {
  /** (1, 3, H, W) float32 in [-1, 1], as the VAE and io/png.ts take images. */
  image: Tensor;
  /** One per scene object, in scene order. */
  masks: ObjectMask[];
}

/** Background brightness offset per pixel (8-bit levels), row-major. */
export function textureOffsets(background: Background, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  const unit = width / 64;
  switch (background.texture) {
    case 'plain':
      break;
    case 'noise': {
      const u = new Generator(background.textureSeed).rand([width * height]).data as Float32Array;
      for (let i = 0; i < out.length; i++) out[i] = (u[i]! * 2 - 1) * 8;
      break;
    }
    case 'stripes':
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++)
          out[y * width + x] = 7 * Math.sin((2 * Math.PI * (x + y)) / (8 * unit));
      }
      break;
    case 'gradient':
      for (let y = 0; y < height; y++)
        out.fill(12 * ((2 * (y + 0.5)) / height - 1), y * width, (y + 1) * width);
      break;
  }
  return out;
}

function boxOf(mask: Float32Array, width: number, height: number): Box {
  let x0 = width;
  let y0 = height;
  let x1 = 0;
  let y1 = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (mask[y * width + x]! > 0) {
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x + 1);
        y1 = Math.max(y1, y + 1);
      }
    }
  }
  return x1 === 0 ? { x0: 0, y0: 0, x1: 0, y1: 0 } : { x0, y0, x1, y1 };
}

/** The scene's image and per-object masks; a pure function of the scene. */
export function renderScene(scene: Scene): Rendering {
  const { width: w, height: h } = scene;
  const plane = w * h;
  const rgb = new Float32Array(3 * plane); // 8-bit levels while compositing
  const offsets = textureOffsets(scene.background, w, h);
  for (let c = 0; c < 3; c++) {
    const level = scene.background.rgb[c]!;
    for (let p = 0; p < plane; p++) rgb[c * plane + p] = level + offsets[p]!;
  }
  const masks = scene.objects.map((o): ObjectMask => {
    const coverage = rasterize({ shape: o.shape, cx: o.cx, cy: o.cy, scale: o.scale }, w, h);
    const colour = PALETTE[o.color];
    for (let p = 0; p < plane; p++) {
      const a = coverage[p]!;
      if (a === 0) continue;
      for (let c = 0; c < 3; c++) rgb[c * plane + p] = (1 - a) * rgb[c * plane + p]! + a * colour[c]!;
    }
    const mask = Float32Array.from(coverage, (a) => (a >= 0.5 ? 1 : 0));
    return { coverage: new Tensor(coverage, [h, w]), mask: new Tensor(mask, [h, w]), box: boxOf(mask, w, h) };
  });
  const image = new Float32Array(3 * plane);
  for (let i = 0; i < image.length; i++) image[i] = Math.min(255, Math.max(0, rgb[i]!)) / 127.5 - 1;
  return { image: new Tensor(image, [1, 3, h, w]), masks };
}
