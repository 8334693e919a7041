// The split of the Shapes world's scene seeds between training and evaluation.
//
// Held-out prompts are the captions of scenes whose seeds lie at or above 10⁹. Training draws the scenes of
// seeds dataSeed·10⁷ + k, k < 10⁷, for the data seeds 1, 2 and 3 (src/train/data.ts, shapes.ts), so every
// data seed below 100 stays under 10⁹: the two sets never meet. The initial noise of each prompt is seeded by
// its scene seed alone, so a prompt's image does not depend on the batch it was generated in.

import { type Caption, captionOf, type Scene, sampleScene } from './shapes/index.js';

/** First scene seed of the held-out prompts. */
export const HELD_OUT_SEED_BASE = 1_000_000_000;

/** Scene seeds per data seed in training (src/train/data.ts: exampleSeed = dataSeed·10⁷ + k). */
export const TRAINING_SEED_STRIDE = 10_000_000;

/** The data seeds `attnkit train shapes` draws scenes from: VAE, UNet and vocabulary (src/train/shapes.ts). */
export const TRAINING_DATA_SEEDS: readonly number[] = [1, 2, 3];

/** The scene-seed ranges [start, end) that training draws from. */
export function trainingSeedRanges(dataSeeds: readonly number[] = TRAINING_DATA_SEEDS): [number, number][] {
  return dataSeeds.map((d) => [d * TRAINING_SEED_STRIDE, (d + 1) * TRAINING_SEED_STRIDE]);
}

/** Scene seed of held-out prompt `i` (0-based). */
export function heldOutSeed(i: number): number {
  if (!Number.isInteger(i) || i < 0)
    throw new Error(`heldOutSeed: index must be a non-negative integer, got ${i}`);
  return HELD_OUT_SEED_BASE + i;
}

/** Seeds of held-out prompts [start, start + n). */
export function heldOutSeeds(n: number, start = 0): number[] {
  return Array.from({ length: n }, (_, i) => heldOutSeed(start + i));
}

/** A held-out prompt: its scene seed, the scene and its caption. */
export interface HeldOutPrompt {
  /** Scene seed; also seeds the initial noise. */
  seed: number;
  scene: Scene;
  caption: Caption;
}

/** Held-out prompts [start, start + n): scenes of the held-out seeds and their captions. */
export function heldOutPrompts(n: number, start = 0): HeldOutPrompt[] {
  return heldOutSeeds(n, start).map((seed) => {
    const scene = sampleScene(seed);
    return { seed, scene, caption: captionOf(scene) };
  });
}
