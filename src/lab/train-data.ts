// The Shapes world as training data: rendered scenes and their captions, deterministic by seed. It has the
// shape of training's data source (src/train/data.ts, `TrainingData`) without importing it.
//
// Example k of a run with data seed s is the scene of seed s·10⁷ + k, so batch i of size B is the same
// whatever was drawn before (resuming at step i reproduces it). The held-out images are the scenes of the
// held-out prompts (seeds ≥ 10⁹), never trained on.

import { concat, Tensor } from '../index.js';
import { heldOutSeed, TRAINING_SEED_STRIDE } from './seeds.js';
import { type Caption, captionOf } from './shapes/caption.js';
import { dilate } from './shapes/masks.js';
import { renderScene } from './shapes/render.js';
import { sampleScene } from './shapes/scene.js';

/** A batch of Shapes training examples: images, captions, object masks and the words' regions. */
export interface ShapesExamples {
  /** (B, 3, 64, 64) in [-1, 1]. */
  images: Tensor;
  captions: string[];
  /** (B, 1, 64, 64): 1 on the objects (their coverage > 0, grown by one pixel), else 0. */
  objects: Tensor;
  /** Per row: the caption's words that name one object, each with that object's coverage (64 × 64). */
  words: ObjectWord[][];
}

/** A word of a caption (by word index) and the coverage of the object it belongs to. */
export interface ObjectWord {
  word: number;
  coverage: Float32Array;
  /** A content word of the object's location phrase ("top", "left"). */
  place?: true;
}

/** Function words of location phrases ("in the top left"): they name no place, so they are not grounded. */
const FUNCTION_WORDS = new Set(['in', 'on', 'at', 'the']);

/**
 * The words of each object's phrase that describe it alone — size, colour, shape and the content words of
 * its location ("top", "left") — each with its object's coverage. Relation words ("above") name two objects
 * and are left out.
 */
export function objectWords(caption: Caption, coverages: readonly Float32Array[]): ObjectWord[] {
  const out: ObjectWord[] = [];
  for (const o of caption.objects) {
    const coverage = coverages[o.object];
    if (!coverage)
      throw new Error(`objectWords: the caption names object ${o.object}, the scene has ${coverages.length}`);
    for (const r of [o.size, o.color, o.shape]) if (r) out.push({ word: r.index, coverage });
    for (const r of o.position ?? [])
      if (!FUNCTION_WORDS.has(r.word)) out.push({ word: r.index, coverage, place: true });
  }
  return out;
}

/** The union of the objects' coverage (> 0), grown by one pixel (8-neighbourhood), as (1, 1, H, W). */
function objectRegion(coverages: readonly Tensor[], h: number, w: number): Tensor {
  const covered = new Float32Array(h * w);
  for (const c of coverages) {
    for (let p = 0; p < covered.length; p++) if ((c.data[p] as number) > 0) covered[p] = 1;
  }
  return new Tensor(dilate(covered, w, h, 1), [1, 1, h, w]);
}

/** Scene seed of example `index` of data seed `dataSeed`: runs with different data seeds never share a scene. */
export function exampleSeed(dataSeed: number, index: number): number {
  if (index >= TRAINING_SEED_STRIDE)
    throw new Error(
      `exampleSeed: index ${index} is beyond the ${TRAINING_SEED_STRIDE} scenes of a data seed`,
    );
  return dataSeed * TRAINING_SEED_STRIDE + index;
}

/** Examples [start, start + n) of the run. */
export function shapesExamples(dataSeed: number, start: number, n: number): ShapesExamples {
  const images: Tensor[] = [];
  const captions: string[] = [];
  const objects: Tensor[] = [];
  const words: ObjectWord[][] = [];
  for (let i = 0; i < n; i++) {
    const scene = sampleScene(exampleSeed(dataSeed, start + i));
    const r = renderScene(scene);
    const caption = captionOf(scene);
    images.push(r.image);
    captions.push(caption.text);
    words.push(
      objectWords(
        caption,
        r.masks.map((m) => m.coverage.data as Float32Array),
      ),
    );
    const [h, w] = [r.image.shape[2] as number, r.image.shape[3] as number];
    objects.push(
      objectRegion(
        r.masks.map((m) => m.coverage),
        h,
        w,
      ),
    );
  }
  return { images: concat(images, 0), captions, objects: concat(objects, 0), words };
}

/** Batch `step` (0-based) of size `batchSize`. */
export function shapesBatch(dataSeed: number, step: number, batchSize: number): ShapesExamples {
  return shapesExamples(dataSeed, step * batchSize, batchSize);
}

/** The captions of examples [0, n) of data seed `dataSeed`, without rendering their scenes. */
export function shapesCaptions(dataSeed: number, n: number): string[] {
  return Array.from({ length: n }, (_, i) => captionOf(sampleScene(exampleSeed(dataSeed, i))).text);
}

/** The scenes of held-out prompts [0, n), rendered: (n, 3, 64, 64). */
export function heldOutImages(n: number): Tensor {
  return concat(
    Array.from({ length: n }, (_, i) => renderScene(sampleScene(heldOutSeed(i))).image),
    0,
  );
}

/** The Shapes world as the data source of `attnkit train shapes`. */
export const shapesTrainingData = {
  imageSize: 64,
  /**
   * Examples of a data seed: rendered scenes with captions, object masks and word regions (`shapesExamples`).
   */
  examples: shapesExamples,
  /** Captions the tokenizer's vocabulary is learned from (`shapesCaptions`). */
  captions: shapesCaptions,
  /** The rendered held-out scenes the training preview shows (`heldOutImages`). */
  heldOut: heldOutImages,
};
