// What the edit measurements share: their names and scene ranges, their resolved settings, the walk over
// held-out scenes, and the Prompt-to-Prompt editors they build (a word swap, alone or with LocalBlend).

import {
  type AttentionEditOptions,
  AttentionReplace,
  type Controller,
  LOCAL_BLEND_TH,
  LocalBlend,
} from '../../index.js';
import type { JobOptions } from '../jobs.js';
import { heldOutSeed } from '../seeds.js';
import { captionOfSpec, type Scene, wordingSpec } from '../shapes/index.js';
import { localBlendExtras, type MeasureModel } from './model.js';

/** The edit measurements of the lab, in the order `attnkit measure` runs them. */
export const MEASUREMENTS = [
  'colour-swap',
  'shape-swap',
  'reweight',
  'heatmaps',
  'feature',
  'inversion',
] as const;
/** The name of one edit measurement. */
export type MeasurementName = (typeof MEASUREMENTS)[number];

/** Held-out prompt index where each measurement's scenes start (the eval uses 0 …). */
export const MEASUREMENT_OFFSETS: Readonly<Record<MeasurementName, number>> = {
  'colour-swap': 100_000,
  'shape-swap': 200_000,
  reweight: 300_000,
  heatmaps: 400_000,
  feature: 500_000,
  inversion: 600_000,
};

/** `MeasureOptions` with every default filled in (measure/index.ts), as each measurement reads them. */
export interface MeasureSettings extends JobOptions {
  sceneOffset: number;
  seeds: number;
  weights: readonly number[];
  reweightWord: 'color' | 'shape';
  nullTextSeeds: number;
  nullTextInnerSteps: number;
  nullTextLr: number;
  threshold: number;
  heatSteps: readonly [number, number];
  resolutions?: readonly number[];
  maskResolution?: number;
  maskThreshold?: number;
  blendThreshold: number;
  /** Minutes for all the measurements (Infinity: none). */
  minutes: number;
  /** performance.now() by which the current measurement should end (Infinity: none). */
  deadline: number;
  /** Called as a measurement advances: its name, scenes done and total. */
  progress: (m: MeasurementName, done: number, total: number) => void;
}

/**
 * Deterministic walk over the held-out scenes of measurement `m` (from its offset, shifted by `sceneOffset`),
 * keeping `seeds` of them that `make` accepts.
 */
export function scenes<T>(
  o: Pick<MeasureSettings, 'seeds' | 'sceneOffset'>,
  m: MeasurementName,
  make: (seed: number) => T | null,
  options: { maxTries?: number } = {},
): T[] {
  const n = o.seeds;
  const offset = o.sceneOffset + MEASUREMENT_OFFSETS[m];
  const out: T[] = [];
  const tries = options.maxTries ?? 50 * n + 100;
  for (let i = 0; out.length < n && i < tries; i++) {
    const item = make(heldOutSeed(offset + i));
    if (item) out.push(item);
  }
  return out;
}

/**
 * The caption of `scene` with object 0's colour or shape changed, written by the grammar, so that the article
 * follows the new word ("an orange star" → "a blue star", not "an blue star", which the model never saw).
 * The swap keeps the word count, so the two prompts stay aligned word for word.
 */
export function swappedCaption(scene: Scene, attribute: 'color' | 'shape', value: string): string {
  const spec = wordingSpec(scene);
  const target = captionOfSpec({
    ...spec,
    objects: spec.objects.map((o, i) => (i === 0 ? { ...o, [attribute]: value } : o)),
  });
  const source = captionOfSpec(spec);
  if (target.words.length !== source.words.length)
    throw new Error(`swappedCaption: "${source.text}" → "${target.text}" changes the word count`);
  return target.text;
}

/** Cross-attention edit options of a pair (P2P's reference defaults). */
export function editOptions(sd: MeasureModel, prompts: string[]): AttentionEditOptions {
  return { tokenizer: sd.tokenizer, prompts, crossReplaceSteps: 0.8, selfReplaceSteps: 0.4 };
}

/**
 * LocalBlend's threshold on the swapped words' maps in every LocalBlend edit here (the reference's is 0.3: the
 * Shapes model's maps, normalised per word, take in more than the object at 0.3). Chosen on validation scenes
 * (`--scene-offset 1000000`; docs/feature-editing.md "LocalBlend's threshold"): in the shape swap the other
 * objects' IoU rose with it — 0.3 / 0.4 / 0.5 / 0.6 / 0.7: 0.848 / 0.862 / 0.888 / 0.925 / 0.910 — with the new
 * shape drawn as often up to 0.6; in the colour swap 0.3 → 0.6 kept the new colour (97.7 %) and raised the
 * object's IoU (0.728 → 0.738) and the other objects' (0.884 → 0.968); in the real-image colour swap it raised
 * the other objects' IoU 0.763 → 0.914 (16 scenes, new colour 9 → 8 of them).
 */
export const EDIT_BLEND_THRESHOLD = 0.6;

/** A pair's word swap restricted to the words' regions: AttentionReplace, then LocalBlend (P2P's order). */
export function replaceAndBlend(
  sd: MeasureModel,
  pair: string[],
  words: readonly string[],
  threshold: number,
): Controller[] {
  return [
    new AttentionReplace(editOptions(sd, pair)),
    new LocalBlend({
      tokenizer: sd.tokenizer,
      prompts: pair,
      words,
      th: [threshold, LOCAL_BLEND_TH[1]],
      ...localBlendExtras(sd),
    }),
  ];
}
