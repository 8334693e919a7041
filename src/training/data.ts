// Training data from the Shapes world: rendered scenes and their captions, deterministic by seed.
// Example k of a run with data seed s is the scene of seed s·10⁷ + k, so batch i of size B is the same
// whatever was drawn before (resuming at step i reproduces it).

import { captionOf } from '../shapes/caption.js';
import { renderScene } from '../shapes/render.js';
import { sampleScene } from '../shapes/scene.js';
import { concat, type Tensor } from '../tensor/index.js';

export interface ShapesBatch {
  /** (B, 3, 64, 64) in [-1, 1]. */
  images: Tensor;
  captions: string[];
}

/** Scene seeds per data seed: runs with different data seeds never share a scene. */
const STRIDE = 10_000_000;

export function exampleSeed(dataSeed: number, index: number): number {
  if (index >= STRIDE)
    throw new Error(`exampleSeed: index ${index} is beyond the ${STRIDE} scenes of a data seed`);
  return dataSeed * STRIDE + index;
}

/** Examples [start, start + n) of the run. */
export function shapesExamples(dataSeed: number, start: number, n: number): ShapesBatch {
  const images: Tensor[] = [];
  const captions: string[] = [];
  for (let i = 0; i < n; i++) {
    const scene = sampleScene(exampleSeed(dataSeed, start + i));
    images.push(renderScene(scene).image);
    captions.push(captionOf(scene).text);
  }
  return { images: concat(images, 0), captions };
}

/** Batch `step` (0-based) of size `batchSize`. */
export function shapesBatch(dataSeed: number, step: number, batchSize: number): ShapesBatch {
  return shapesExamples(dataSeed, step * batchSize, batchSize);
}
