// The issue-5 measurements of attention control on a Shapes model, scored with ShapesEval over many seeds, one
// file each:
//
//   colour-swap  Prompt-to-Prompt word swap of an object's colour (AttentionReplace, alone and with LocalBlend
//                on the two colour words) against plain regeneration of the target prompt from the same noise:
//                new colour rate, object mask IoU with the source, mean abs error outside the object.
//   shape-swap   word swap of a shape with LocalBlend on the two shape words: the other objects' mask IoU.
//   (LocalBlend's threshold is EDIT_BLEND_THRESHOLD, 0.6, in every edit with it, chosen on validation scenes.)
//   reweight     attention re-weighting of one word over 3 weights: the object's area and saturation.
//   heatmaps     DAAM heat-maps of each object's words on rendered scenes (true masks), read from the
//                cross-attention of the DDIM inversion passes with the caption.
//   feature      MasaCtrl (plain and MaskAuto on the object's words) and Plug-and-Play on a layout change (the
//                object moves to another cell): colour error against the source object, position accuracy.
//   inversion    DDIM inversion + regeneration of rendered scenes (PSNR at guidance 1 and 5, and the VAE's
//                round trip as the ceiling), null-text inversion on a few, and a colour swap on the
//                null-text-inverted scene, alone and with LocalBlend (does only the named object change?).
//
// Scenes are held-out (seeds ≥ 10⁹, see seeds.ts), each measurement from its own range; each image's noise is
// seeded by its scene seed. Many edits run in one batch (jobs.ts). Object masks are those of ShapesEval's
// detector (the template it fitted, see metrics.ts `detectedMask`), except on rendered scenes, which have their
// ground truth. Errors are in 8-bit levels (0–255), averaged over channels. This file runs them under one time
// budget; report.ts writes them as markdown.

import { HEAT_MAP_THRESHOLD, heatStepRange } from '../../index.js';
import { measureColourSwap } from './colour-swap.js';
import { EDIT_BLEND_THRESHOLD, MEASUREMENTS, type MeasurementName, type MeasureSettings } from './common.js';
import { type FeatureResult, measureFeature } from './feature.js';
import { type HeatMapsResult, measureHeatMaps } from './heatmaps.js';
import { type InversionResult, measureInversion } from './inversion.js';
import { heatResolutionsOf, isDiT, type MeasureModel } from './model.js';
import { measureReweight, type ReweightResult } from './reweight.js';
import { measureShapeSwap } from './shape-swap.js';
import type { SwapResult } from './swap.js';

export { measureColourSwap } from './colour-swap.js';
export {
  EDIT_BLEND_THRESHOLD,
  MEASUREMENT_OFFSETS,
  MEASUREMENTS,
  type MeasurementName,
  type MeasureSettings,
  swappedCaption,
} from './common.js';
export { type FeatureResult, measureFeature } from './feature.js';
export * from './guidance.js';
export { type HeatMapsResult, measureHeatMaps } from './heatmaps.js';
export { type InversionResult, measureInversion, type RealEditSummary } from './inversion.js';
export { isDiT, type MeasureModel } from './model.js';
export { EqualizerSweep, measureReweight, type ReweightResult } from './reweight.js';
export { measureShapeSwap } from './shape-swap.js';
export * from './shape-variations.js';
export {
  type SwapMethodSummary,
  type SwapResult,
  type SwapRow,
  type SwapScore,
  scoreSwap,
  summarizeSwap,
} from './swap.js';
export * from './tf-icon.js';

/**
 * Options of `measureEdits`: scene offset and counts, sampling, the methods' settings, the time budget and a
 * progress callback.
 */
export interface MeasureOptions {
  /**
   * Added to every measurement's scene offset (default 0). Validation runs use another range (e.g. 10⁶:
   * held-out seeds 10⁹ + 1.1·10⁶ …), so that choices made on them are not tuned to the measured scenes.
   */
  sceneOffset?: number;
  /** Scenes per measurement (default 50). */
  seeds?: number;
  /** Denoising (and inversion) steps (default 25). */
  steps?: number;
  /** Classifier-free guidance of the edits (default 5). */
  guidanceScale?: number;
  /** Prompts per generate call (default 16). */
  batchPrompts?: number;
  /** Which measurements (default all). */
  only?: readonly MeasurementName[];
  /** Reweight: the weights (default [1, 2, 4]; weight 1 is the source image itself). */
  weights?: readonly number[];
  /** Reweight: which word of the object (default 'color'). */
  reweightWord?: 'color' | 'shape';
  /** Inversion: scenes that also get null-text inversion and a real-image edit (default 5). */
  nullTextSeeds?: number;
  /** Null-text inversion's Adam iterations per step (default 10, the reference's). */
  nullTextInnerSteps?: number;
  /**
   * Null-text inversion's Adam learning rate at the first step (default 2e-2: on validation scenes the
   * reference's 1e-2 reconstructed below 30 dB and 3e-2 made the edit afterwards fail more: docs/feature-editing.md).
   */
  nullTextLr?: number;
  /**
   * Heat-map threshold after min–max normalisation (default HEAT_MAP_THRESHOLD, chosen on validation scenes:
   * docs/training.md "Heat-map settings"); Otsu's is reported too.
   */
  threshold?: number;
  /**
   * Heat-maps from these denoising steps [a, b), in sampling order (step 0 the noisiest), as `attnkit maps
   * --steps`; default the last third (the cleanest: 17–25 of 25).
   */
  heatSteps?: readonly [number, number];
  /** Heat-maps from cross-attention maps of these sides only (default `defaultHeatResolutions`). */
  resolutions?: readonly number[];
  /** Feature: the side of the maps MasaCtrl's MaskAuto reads (default `defaultMaskResolution`). */
  maskResolution?: number;
  /** Feature: MaskAuto's threshold on the min–max normalised maps (default the reference's 0.1). */
  maskThreshold?: number;
  /**
   * LocalBlend's threshold on the swapped words' maps in every LocalBlend edit (colour swap, shape swap, the
   * real-image colour swap); default EDIT_BLEND_THRESHOLD.
   */
  blendThreshold?: number;
  /**
   * Time budget for all the measurements: each gets a share by MEASUREMENT_COST and stops starting batches
   * that would overrun it (each runs at least one); the results say how many scenes each used.
   */
  minutes?: number;
  /** Called as a measurement advances: its name, scenes done and total. */
  onProgress?: (measurement: MeasurementName, done: number, total: number) => void;
}

/**
 * Relative cost of one scene per measurement (images of 25 steps with guidance, P2P's explicit maps counted),
 * measured on the Shapes architecture: how a time budget is shared.
 */
export const MEASUREMENT_COST: Readonly<Record<MeasurementName, number>> = {
  'colour-swap': 5,
  'shape-swap': 2.5,
  reweight: 3,
  heatmaps: 0.6,
  feature: 3.7,
  inversion: 4,
};

/** Every edit measurement's result with the settings and time it ran with (what `attnkit measure` writes). */
export interface EditMeasurements {
  config: Omit<MeasureSettings, 'progress' | 'deadline' | 'blendThreshold'> & {
    only: MeasurementName[];
    /** Absent from results written before it was an option. */
    blendThreshold?: number;
    /** How the images were sampled: DDIM (the UNet; absent from older results) or the DiT's flow-matching Euler. */
    sampler?: 'ddim' | 'flow-euler';
  };
  seconds: Partial<Record<MeasurementName, number>>;
  colourSwap?: SwapResult;
  shapeSwap?: SwapResult;
  reweight?: ReweightResult;
  heatMaps?: HeatMapsResult;
  feature?: FeatureResult;
  inversion?: InversionResult;
}

/** Fills in the defaults of `opts` and checks them. */
function settingsOf(sd: MeasureModel, opts: MeasureOptions): MeasureSettings {
  const steps = opts.steps ?? 25;
  const resolutions = opts.resolutions ?? heatResolutionsOf(sd);
  const o: MeasureSettings = {
    sceneOffset: opts.sceneOffset ?? 0,
    seeds: opts.seeds ?? 50,
    steps,
    guidanceScale: opts.guidanceScale ?? 5,
    batchPrompts: opts.batchPrompts ?? 16,
    weights: opts.weights ?? [1, 2, 4],
    reweightWord: opts.reweightWord ?? 'color',
    nullTextSeeds: opts.nullTextSeeds ?? 5,
    nullTextInnerSteps: opts.nullTextInnerSteps ?? 10,
    nullTextLr: opts.nullTextLr ?? 2e-2,
    threshold: opts.threshold ?? HEAT_MAP_THRESHOLD,
    heatSteps: heatStepRange(steps, opts.heatSteps, 'measureEdits'),
    ...(resolutions ? { resolutions: [...resolutions] } : {}),
    ...(opts.maskResolution ? { maskResolution: opts.maskResolution } : {}),
    ...(opts.maskThreshold !== undefined ? { maskThreshold: opts.maskThreshold } : {}),
    blendThreshold: opts.blendThreshold ?? EDIT_BLEND_THRESHOLD,
    minutes: opts.minutes ?? Number.POSITIVE_INFINITY,
    deadline: Number.POSITIVE_INFINITY,
    progress: opts.onProgress ?? (() => {}),
  };
  if (o.weights.length < 2) throw new Error('measureEdits: give at least two reweight weights');
  const counts: [string, number, number][] = [
    ['sceneOffset', o.sceneOffset, 0],
    ['seeds', o.seeds, 1],
    ['batchPrompts', o.batchPrompts, 1],
    ['nullTextSeeds', o.nullTextSeeds, 0],
    ['nullTextInnerSteps', o.nullTextInnerSteps, 1],
  ];
  for (const [name, v, min] of counts) {
    if (!(Number.isInteger(v) && v >= min))
      throw new Error(`measureEdits: ${name} must be an integer ≥ ${min}, got ${v}`);
  }
  if (!(o.minutes > 0)) throw new Error(`measureEdits: minutes must be positive, got ${o.minutes}`);
  if (!(o.blendThreshold >= 0 && o.blendThreshold <= 1))
    throw new Error(
      `measureEdits: blendThreshold is a threshold on maps normalised to [0, 1], got ${o.blendThreshold}`,
    );
  return o;
}

/**
 * Runs the chosen measurements in order, each within its share of the time budget, on the UNet Shapes model or
 * the DiT one (the same methods through the joint view; on the DiT the feature measurement is MasaCtrl alone
 * and the inversion measurement, built on DDIM and null-text inversion, is not run).
 */
export function measureEdits(sd: MeasureModel, opts: MeasureOptions = {}): EditMeasurements {
  const only = [...(opts.only ?? MEASUREMENTS.filter((m) => !(isDiT(sd) && m === 'inversion')))];
  for (const m of only) {
    if (!MEASUREMENTS.includes(m))
      throw new Error(`measureEdits: unknown measurement '${m}' (${MEASUREMENTS.join(', ')})`);
    if (isDiT(sd) && m === 'inversion')
      throw new Error(
        "measureEdits: 'inversion' (DDIM and null-text inversion) runs on a UNet model only; leave it out for a DiT",
      );
  }
  const o = settingsOf(sd, opts);
  const { progress: _, deadline: __, ...config } = o;
  const sampler = isDiT(sd) ? 'flow-euler' : 'ddim';
  const out: EditMeasurements = { config: { ...config, only, sampler }, seconds: {} };
  const end = performance.now() + o.minutes * 60_000;
  only.forEach((m, i) => {
    // this measurement's share of the time left, by cost; what one leaves unused goes to the next
    const left = only.slice(i).reduce((a, x) => a + MEASUREMENT_COST[x], 0);
    const t0 = performance.now();
    const mo = { ...o, deadline: t0 + ((end - t0) * MEASUREMENT_COST[m]) / left };
    if (m === 'colour-swap') out.colourSwap = measureColourSwap(sd, mo);
    if (m === 'shape-swap') out.shapeSwap = measureShapeSwap(sd, mo);
    if (m === 'reweight') out.reweight = measureReweight(sd, mo);
    if (m === 'heatmaps') out.heatMaps = measureHeatMaps(sd, mo);
    if (m === 'feature') out.feature = measureFeature(sd, mo);
    if (m === 'inversion' && !isDiT(sd)) out.inversion = measureInversion(sd, mo);
    out.seconds[m] = (performance.now() - t0) / 1000;
  });
  return out;
}
