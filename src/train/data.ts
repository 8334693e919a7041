// What training draws its examples from. A recipe names its streams by data seed (one per stage, one for the
// vocabulary); the source must give the same examples for the same (data seed, index) whatever was drawn
// before, so a resumed run sees the batches an uninterrupted one would. The Shapes world's source is
// src/lab/train-data.ts.

import type { Tensor } from '../index.js';

/** Examples [start, start + n) of one data seed. */
export interface TrainingBatch {
  /** (B, 3, H, W) in [-1, 1], H = W = the source's `imageSize`. */
  images: Tensor;
  captions: string[];
  /** (B, 1, H, W): 1 on the objects, else 0 (object weighting). */
  objects: Tensor;
  /** Per row: the caption's words that name one object, each with that object's coverage (grounding). */
  words: ObjectWord[][];
}

/** A word of a caption (by word index) and the coverage (H × W) of the object it belongs to. */
export interface ObjectWord {
  word: number;
  coverage: Float32Array;
  /** A content word of the object's location phrase ("top", "left"). */
  place?: true;
}

/**
 * A training data source: image size, batches of examples by data seed (images, captions, object words and
 * regions), captions for the vocabulary and held-out images for the preview.
 */
export interface TrainingData {
  /** Height and width of the images. */
  imageSize: number;
  /** Examples [start, start + n) of data seed `dataSeed`. */
  examples(dataSeed: number, start: number, n: number): TrainingBatch;
  /** The captions of examples [0, n) of data seed `dataSeed` (the same as `examples` gives, cheaper). */
  captions(dataSeed: number, n: number): string[];
  /** n images never trained on, (n, 3, H, W) in [-1, 1]: the VAE preview's. */
  heldOut(n: number): Tensor;
}

/** Batch `step` (0-based) of size `batchSize` of data seed `dataSeed`. */
export function trainingBatch(
  data: TrainingData,
  dataSeed: number,
  step: number,
  batchSize: number,
): TrainingBatch {
  return data.examples(dataSeed, step * batchSize, batchSize);
}
