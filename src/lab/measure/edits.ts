// The issue-5 measurements of attention control on a Shapes model, scored with ShapesEval over many seeds:
//
//   colour-swap  Prompt-to-Prompt word swap of an object's colour (AttentionReplace, alone and with LocalBlend
//                on the two colour words) against plain regeneration of the target prompt from the same noise:
//                new colour rate, object mask IoU with the source, mean abs error outside the object.
//   shape-swap   word swap of a shape with LocalBlend on the two shape words: the other objects' mask IoU.
//   (LocalBlend's threshold is EDIT_BLEND_THRESHOLD, 0.6, in every edit with it, chosen on validation scenes.)
//   reweight     AttentionReweight of one word over 3 weights: the object's area and saturation.
//   heatmaps     DAAM heat-maps of each object's words on rendered scenes (true masks), read from the
//                cross-attention of the DDIM inversion passes with the caption.
//   feature      MasaCtrl (plain and MaskAuto on the object's words) and Plug-and-Play on a layout change (the
//                object moves to another cell): colour error against the source object, position accuracy.
//   inversion    DDIM inversion + regeneration of rendered scenes (PSNR at guidance 1 and 5, and the VAE's
//                round trip as the ceiling), null-text inversion on a few, and a colour swap on the
//                null-text-inverted scene, alone and with LocalBlend (does only the named object change?).
//
// Scenes are held-out (seeds ≥ 10⁹, see evaluate.ts), each measurement from its own range; each image's
// noise is seeded by its scene seed. Many edits run in one batch: every scene's prompts are a group with its
// own controllers (prompt-groups.ts), so a batch of 16 prompts is one UNet call per step.
//
// Object masks are those of ShapesEval's detector (the template it fitted, see `detectedMask`), except on
// rendered scenes, which have their ground truth. Errors are in 8-bit levels (0–255), averaged over channels.

import type { Controller } from '../../attention/hooks.js';
import { attentionMask } from '../../methods/application/attention-mask.js';
import { LOCAL_BLEND_TH, LocalBlend } from '../../methods/application/local-blend.js';
import { groupControllers, type PromptGroup } from '../../methods/application/prompt-groups.js';
import { MASACTRL_START_STEP, MutualSelfAttention } from '../../methods/feature/mutual-self-attention.js';
import { PlugAndPlay } from '../../methods/feature/plug-and-play.js';
import { AttentionEdit, type AttentionEditOptions } from '../../methods/map/attention-edit.js';
import { AttentionReplace } from '../../methods/map/attention-replace.js';
import { AttentionStore } from '../../methods/map/attention-store.js';
import { aggregateCrossAttention, GlobalHeatMap } from '../../methods/map/heatmap.js';
import {
  defaultMaskResolution,
  defaultPnPLayers,
  defaultStartLayer,
  maskAutoFor,
} from '../../pipelines/feature-edit.js';
import { defaultHeatResolutions, HEAT_MAP_THRESHOLD, heatStepRange } from '../../pipelines/heatmaps.js';
import {
  type DDIMInversion,
  inversionStepRange,
  invertBatch,
  nullTextInversionBatch,
} from '../../pipelines/inversion.js';
import type { StableDiffusion } from '../../pipelines/stable-diffusion.js';
import { initialNoise } from '../../pipelines/stable-diffusion.js';
import { concat, Tensor } from '../../tensor/index.js';
import {
  type Cell,
  COLORS,
  type ColorName,
  captionOf,
  captionOfSpec,
  dilate,
  evaluate,
  maskIoU,
  type ObjectReport,
  renderScene,
  type Scene,
  type SceneReport,
  type SceneSpec,
  SHAPES,
  sampleScene,
  wordingSpec,
} from '../shapes/index.js';
import { copiesMask, detectedMask, heldOutSeed } from '../shapes-eval.js';

export const MEASUREMENTS = [
  'colour-swap',
  'shape-swap',
  'reweight',
  'heatmaps',
  'feature',
  'inversion',
] as const;
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
  onProgress?: (measurement: MeasurementName, done: number, total: number) => void;
}

type Levels = Float32Array;

// ----------------------------------------------------------------------------------------------------------
// image and mask utilities

/** (1, 3, H, W) in [-1, 1] → planes of 8-bit levels, clamped. */
export function levelsOf(image: Tensor): Levels {
  return Float32Array.from(image.data as Float32Array, (v) => Math.min(255, Math.max(0, (v + 1) * 127.5)));
}

/** Union of binary masks. */
export function unionMask(masks: readonly ArrayLike<number>[], size: number): Float32Array {
  const out = new Float32Array(size);
  for (const m of masks) for (let i = 0; i < size; i++) if (m[i]! > 0.5) out[i] = 1;
  return out;
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

const dist = (a: readonly number[], b: readonly number[]) => Math.hypot(...a.map((v, i) => v - b[i]!));
const mean = (xs: readonly number[]) => (xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
const rate = (xs: readonly boolean[]) => (xs.length > 0 ? xs.filter(Boolean).length / xs.length : null);

function sizeOf(image: Tensor): [number, number] {
  return [image.shape[3] as number, image.shape[2] as number];
}

function maskOf(o: ObjectReport | undefined, image: Tensor): Float32Array | null {
  if (!o?.detected) return null;
  const [w, h] = sizeOf(image);
  return detectedMask(o.detected, w, h);
}

const rightObject = (o: ObjectReport | undefined): boolean => o?.present === true && o.color && o.shape;

// ----------------------------------------------------------------------------------------------------------
// batched runs: many groups of prompts, each from its own seed, in as few generate calls as possible

interface Job {
  seed: number;
  prompts: string[];
  /** Groups over this job's prompts (local indices). */
  groups: PromptGroup[];
}

/** Whether another chunk of work fits before `deadline` (ms, performance.now), judged by the chunks so far. */
export class Pace {
  private readonly t0 = performance.now();
  private chunks = 0;
  constructor(readonly deadline: number) {}
  fits(): boolean {
    if (this.chunks === 0) return true;
    const now = performance.now();
    return now + (now - this.t0) / this.chunks <= this.deadline;
  }
  tick(): void {
    this.chunks++;
  }
}

/** Runs the jobs in batches while they fit before the deadline (at least one batch); images per job run. */
function runJobs(
  sd: StableDiffusion,
  jobs: readonly Job[],
  o: Pick<ResolvedOptions, 'steps' | 'guidanceScale' | 'batchPrompts' | 'deadline'>,
  progress: (done: number) => void,
): Tensor[][] {
  const out: Tensor[][] = [];
  const pace = new Pace(o.deadline);
  let i = 0;
  while (i < jobs.length && pace.fits()) {
    const chunk: Job[] = [];
    let n = 0;
    while (i < jobs.length && (chunk.length === 0 || n + jobs[i]!.prompts.length <= o.batchPrompts)) {
      n += jobs[i]!.prompts.length;
      chunk.push(jobs[i]!);
      i++;
    }
    const groups: PromptGroup[] = [];
    const latents: Tensor[] = [];
    let offset = 0;
    for (const job of chunk) {
      const z = initialNoise(sd, job.seed, 'ddim');
      for (const _ of job.prompts) latents.push(z);
      for (const g of job.groups) groups.push({ ...g, prompts: g.prompts.map((p) => p + offset) });
      offset += job.prompts.length;
    }
    const { images } = sd.generate({
      prompt: chunk.flatMap((j) => j.prompts),
      latents: concat(latents, 0),
      steps: o.steps,
      guidanceScale: o.guidanceScale,
      scheduler: 'ddim',
      controllers: groups.length > 0 ? [groupControllers(groups)] : [],
    });
    let row = 0;
    for (const job of chunk) {
      out.push(job.prompts.map(() => images.slice(0, row, ++row)));
    }
    pace.tick();
    progress(i);
  }
  return out;
}

/** Cross-attention edit options of a pair (P2P's reference defaults). */
function editOptions(sd: StableDiffusion, prompts: string[]): AttentionEditOptions {
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
function replaceAndBlend(
  sd: StableDiffusion,
  pair: string[],
  words: readonly string[],
  threshold: number,
): Controller[] {
  return [
    new AttentionReplace(editOptions(sd, pair)),
    new LocalBlend({ tokenizer: sd.tokenizer, prompts: pair, words, th: [threshold, LOCAL_BLEND_TH[1]] }),
  ];
}

/** AttentionReweight with one equalizer per target (the reference's single-target `get_equalizer`, per row). */
class EqualizerEdit extends AttentionEdit {
  readonly name = 'AttentionReweight';
  readonly equalizers: Tensor[];
  constructor(opts: AttentionEditOptions, equalizers: Float32Array[]) {
    super(opts);
    this.equalizers = equalizers.map((e) => new Tensor(e, [e.length]));
  }
  replaceCrossAttention(base: Tensor, _target: Tensor, k: number): Tensor {
    return base.mul(this.equalizers[k]!);
  }
}

/** Equalizer: weight `w` on the tokens of word `index` of the prompt, 1 elsewhere. */
function wordEqualizer(sd: StableDiffusion, prompt: string, index: number, w: number): Float32Array {
  const eq = new Float32Array(sd.tokenizer.modelMaxLength).fill(1);
  for (const t of sd.tokenizer.tokenIndices(prompt, index)) eq[t] = w;
  return eq;
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

/**
 * Deterministic walk over the held-out scenes of measurement `m` (from its offset, shifted by `sceneOffset`),
 * keeping `seeds` of them that `make` accepts.
 */
function scenes<T>(
  o: Pick<ResolvedOptions, 'seeds' | 'sceneOffset'>,
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

// ----------------------------------------------------------------------------------------------------------
// colour swap

export interface SwapRow {
  seed: number;
  source: string;
  target: string;
  /** The source object is there with its colour and shape. */
  sourceValid: boolean;
  perMethod: Record<string, SwapScore>;
}

/** One edited image against its source. */
export interface SwapScore {
  changed: boolean;
  /** IoU of the matched object's detected masks (source vs edited). */
  iou: number;
  maeOutside: number;
  othersIoU: number[];
  /**
   * The same three with every detected copy of each object (`copiesMask`) instead of the matched one: a model
   * that draws an object twice matches either copy, so the matched masks can be different copies.
   */
  iouCopies: number;
  maeOutsideCopies: number;
  othersIoUCopies: number[];
  /**
   * IoU with the edited image's copy in the source object's place: of the detected objects with the matched
   * one's colour and shape, the one that overlaps the source object's mask most (`samePlaceMask`). Where the
   * model draws an object twice and the edit keeps both copies, the matched masks can be the two different
   * copies (IoU 0) although nothing moved; this reads the copy that stands where the source object stood.
   */
  iouSamePlace: number;
  othersIoUSamePlace: number[];
}

export interface SwapMethodSummary {
  /** Over scenes whose source object is right. */
  scenes: number;
  /** Edited object with the new attribute (and the old other one). */
  changedRate: number | null;
  meanIoU: number | null;
  /** Fraction of scenes with object IoU ≥ the target IoU. */
  iouAtLeast: number | null;
  meanMaeOutside: number | null;
  /** Other objects (shape swap): mean IoU with the source, fraction ≥ 0.9. */
  othersMeanIoU: number | null;
  othersAtLeast: number | null;
  othersCount: number;
  /** With every copy of each object (`SwapScore.iouCopies`). */
  meanIoUCopies?: number | null;
  iouCopiesAtLeast?: number | null;
  meanMaeOutsideCopies?: number | null;
  othersMeanIoUCopies?: number | null;
  othersCopiesAtLeast?: number | null;
  /** With the copy in the source object's place (`SwapScore.iouSamePlace`). */
  meanIoUSamePlace?: number | null;
  iouSamePlaceAtLeast?: number | null;
  othersMeanIoUSamePlace?: number | null;
  othersSamePlaceAtLeast?: number | null;
}

export interface SwapResult {
  kind: 'colour' | 'shape';
  seeds: number;
  methods: Record<string, SwapMethodSummary>;
  rows: SwapRow[];
}

function summarizeSwap(rows: readonly SwapRow[], method: string, iouTarget: number): SwapMethodSummary {
  const valid = rows.filter((r) => r.sourceValid);
  const m = valid.map((r) => r.perMethod[method]!);
  const others = m.flatMap((x) => x.othersIoU);
  const othersCopies = m.flatMap((x) => x.othersIoUCopies);
  const copies = m.map((x) => x.iouCopies);
  const samePlace = m.map((x) => x.iouSamePlace);
  const othersSamePlace = m.flatMap((x) => x.othersIoUSamePlace);
  return {
    scenes: valid.length,
    changedRate: rate(m.map((x) => x.changed)),
    meanIoU: mean(m.map((x) => x.iou)),
    iouAtLeast: rate(m.map((x) => x.iou >= iouTarget)),
    meanMaeOutside: mean(m.map((x) => x.maeOutside)),
    othersMeanIoU: mean(others),
    othersAtLeast: rate(others.map((v) => v >= 0.9)),
    othersCount: others.length,
    meanIoUCopies: mean(copies),
    iouCopiesAtLeast: rate(copies.map((v) => v >= iouTarget)),
    meanMaeOutsideCopies: mean(m.map((x) => x.maeOutsideCopies)),
    othersMeanIoUCopies: mean(othersCopies),
    othersCopiesAtLeast: rate(othersCopies.map((v) => v >= 0.9)),
    meanIoUSamePlace: mean(samePlace),
    iouSamePlaceAtLeast: rate(samePlace.map((v) => v >= iouTarget)),
    othersMeanIoUSamePlace: mean(othersSamePlace),
    othersSamePlaceAtLeast: rate(othersSamePlace.map((v) => v >= 0.9)),
  };
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

/** Pixels away from the masks (their union grown by 2): where an edit should change nothing. */
function outsideOf(masks: readonly (Float32Array | null)[], w: number, h: number): Float32Array {
  const union = unionMask(
    masks.filter((m): m is Float32Array => m !== null),
    w * h,
  );
  return dilate(union, w, h, 2).map((v) => 1 - v);
}

/** Scores an edited image against the source for a swap of object 0 (colour or shape). */
export function scoreSwap(
  source: Tensor,
  sourceReport: SceneReport,
  edited: Tensor,
  target: string,
  attribute: 'color' | 'shape',
): SwapScore {
  const report = evaluate(edited, target);
  const obj = report.objects[0]!;
  const srcMask = maskOf(sourceReport.objects[0], source);
  const tgtMask = maskOf(obj, edited);
  const [w, h] = sizeOf(source);
  const iou = srcMask && tgtMask ? maskIoU(srcMask, tgtMask) : 0;
  const copiesOf = (r: SceneReport, j: number) => copiesMask(r.detection, r.objects[j]!.spec, w, h);
  const [srcCopies, tgtCopies] = [copiesOf(sourceReport, 0), copiesOf(report, 0)];
  const othersIoU: number[] = [];
  const othersIoUCopies: number[] = [];
  const othersIoUSamePlace: number[] = [];
  const samePlaceIoU = (a: Float32Array, j: number) => {
    const b = samePlaceMask(a, report, j, w, h);
    return b ? maskIoU(a, b) : 0;
  };
  sourceReport.objects.forEach((s, j) => {
    if (j === 0 || !rightObject(s)) return;
    const a = maskOf(s, source)!;
    const b = maskOf(report.objects[j], edited);
    othersIoU.push(b ? maskIoU(a, b) : 0);
    othersIoUSamePlace.push(samePlaceIoU(a, j));
    const [ca, cb] = [copiesOf(sourceReport, j), copiesOf(report, j)];
    othersIoUCopies.push(ca && cb ? maskIoU(ca, cb) : 0);
  });
  const other = attribute === 'color' ? obj.shape : obj.color;
  return {
    changed: obj.present && obj[attribute] && other,
    iou,
    maeOutside: meanAbsError(source, edited, outsideOf([srcMask, tgtMask], w, h)),
    othersIoU,
    iouCopies: srcCopies && tgtCopies ? maskIoU(srcCopies, tgtCopies) : 0,
    maeOutsideCopies: meanAbsError(source, edited, outsideOf([srcCopies, tgtCopies], w, h)),
    othersIoUCopies,
    iouSamePlace: srcMask ? samePlaceIoU(srcMask, 0) : 0,
    othersIoUSamePlace,
  };
}

export function measureColourSwap(sd: StableDiffusion, o: ResolvedOptions): SwapResult {
  const items = scenes(o, 'colour-swap', (seed) => {
    const scene = sampleScene(seed, { objects: [1, 2] });
    const caption = captionOf(scene);
    const free = COLORS.filter((c) => !scene.objects.some((x) => x.color === c));
    const colour = free[seed % free.length]!;
    const target = swappedCaption(scene, 'color', colour);
    return { seed, scene, caption, target, colour };
  });
  const jobs = items.map((it): Job => {
    const pair = [it.caption.text, it.target];
    const colours = [it.caption.objects[0]!.color.word, it.colour];
    // rows: source, replaced, plain regeneration, and a second source + target pair edited with LocalBlend on
    // the two colour words (all from the same noise)
    return {
      seed: it.seed,
      prompts: [...pair, it.target, ...pair],
      groups: [
        { prompts: [0, 1], controllers: [new AttentionReplace(editOptions(sd, pair))] },
        { prompts: [3, 4], controllers: replaceAndBlend(sd, pair, colours, o.blendThreshold) },
      ],
    };
  });
  const images = runJobs(sd, jobs, o, (d) => o.progress('colour-swap', d, jobs.length));
  const rows = items.slice(0, images.length).map((it, k): SwapRow => {
    const [src, replaced, plain, , blended] = images[k]!;
    const srcReport = evaluate(src!, it.caption.text);
    return {
      seed: it.seed,
      source: it.caption.text,
      target: it.target,
      sourceValid: rightObject(srcReport.objects[0]),
      perMethod: {
        replace: scoreSwap(src!, srcReport, replaced!, it.target, 'color'),
        'replace+blend': scoreSwap(src!, srcReport, blended!, it.target, 'color'),
        none: scoreSwap(src!, srcReport, plain!, it.target, 'color'),
      },
    };
  });
  return {
    kind: 'colour',
    seeds: rows.length,
    methods: {
      replace: summarizeSwap(rows, 'replace', 0.8),
      'replace+blend': summarizeSwap(rows, 'replace+blend', 0.8),
      none: summarizeSwap(rows, 'none', 0.8),
    },
    rows,
  };
}

// ----------------------------------------------------------------------------------------------------------
// shape swap with LocalBlend

export function measureShapeSwap(sd: StableDiffusion, o: ResolvedOptions): SwapResult {
  const items = scenes(o, 'shape-swap', (seed) => {
    const scene = sampleScene(seed, { objects: [2, 3] });
    const caption = captionOf(scene);
    const old = scene.objects[0]!.shape;
    if (scene.objects.filter((x) => x.shape === old).length > 1) return null; // the blend word must be unique
    const free = SHAPES.filter((s) => !scene.objects.some((x) => x.shape === s));
    const shape = free[seed % free.length]!;
    const target = swappedCaption(scene, 'shape', shape);
    return { seed, scene, caption, target, old, shape };
  });
  const jobs = items.map((it): Job => {
    const prompts = [it.caption.text, it.target];
    return {
      seed: it.seed,
      prompts,
      groups: [
        {
          prompts: [0, 1],
          controllers: replaceAndBlend(sd, prompts, [it.old, it.shape], o.blendThreshold),
        },
      ],
    };
  });
  const images = runJobs(sd, jobs, o, (d) => o.progress('shape-swap', d, jobs.length));
  const rows = items.slice(0, images.length).map((it, k): SwapRow => {
    const [src, blended] = images[k]!;
    const srcReport = evaluate(src!, it.caption.text);
    return {
      seed: it.seed,
      source: it.caption.text,
      target: it.target,
      sourceValid: rightObject(srcReport.objects[0]),
      perMethod: {
        'replace+blend': scoreSwap(src!, srcReport, blended!, it.target, 'shape'),
      },
    };
  });
  return {
    kind: 'shape',
    seeds: rows.length,
    methods: { 'replace+blend': summarizeSwap(rows, 'replace+blend', 0.8) },
    rows,
  };
}

// ----------------------------------------------------------------------------------------------------------
// reweight

export interface ReweightResult {
  seeds: number;
  word: 'color' | 'shape';
  weights: number[];
  /** Over scenes whose source object is right. */
  scenes: number;
  monotoneArea: number | null;
  monotoneSaturation: number | null;
  monotoneEither: number | null;
  meanArea: (number | null)[];
  meanSaturation: (number | null)[];
  rows: {
    seed: number;
    prompt: string;
    word: string;
    area: (number | null)[];
    saturation: (number | null)[];
  }[];
}

const increasing = (xs: readonly (number | null)[]) =>
  xs.every((v) => v !== null) && xs.every((v, i) => i === 0 || v! > xs[i - 1]!);

export function measureReweight(sd: StableDiffusion, o: ResolvedOptions): ReweightResult {
  const weights = [...o.weights];
  const items = scenes(o, 'reweight', (seed) => {
    const scene = sampleScene(seed, { objects: 1 });
    return { seed, scene, caption: captionOf(scene) };
  });
  const jobs = items.map((it): Job => {
    const text = it.caption.text;
    const word = it.caption.objects[0]![o.reweightWord === 'shape' ? 'shape' : 'color'];
    const targets = weights.filter((w) => w !== 1);
    const eqs = targets.map((w) => wordEqualizer(sd, text, word.index, w));
    const prompts = [text, ...targets.map(() => text)];
    return {
      seed: it.seed,
      prompts,
      groups: [
        {
          prompts: prompts.map((_, i) => i),
          controllers: [new EqualizerEdit(editOptions(sd, prompts), eqs)],
        },
      ],
    };
  });
  const images = runJobs(sd, jobs, o, (d) => o.progress('reweight', d, jobs.length));
  const rows = items.slice(0, images.length).map((it, k) => {
    const [src, ...edited] = images[k]!;
    let t = 0;
    const byWeight = weights.map((w) => (w === 1 ? src! : edited[t++]!));
    const stats = byWeight.map((img) => {
      const obj = evaluate(img, it.caption.text).objects[0];
      const mask = maskOf(obj, img);
      const c = mask ? colourStats(img, mask) : null;
      return {
        area: obj?.detected ? obj.detected.area : null,
        saturation: c?.saturation ?? null,
        right: rightObject(obj),
      };
    });
    return {
      seed: it.seed,
      prompt: it.caption.text,
      word: it.caption.objects[0]![o.reweightWord === 'shape' ? 'shape' : 'color'].word,
      valid: stats[weights.indexOf(1)]?.right ?? stats[0]!.right,
      area: stats.map((s) => s.area),
      saturation: stats.map((s) => s.saturation),
    };
  });
  const valid = rows.filter((r) => r.valid);
  const column = (key: 'area' | 'saturation', i: number) =>
    mean(valid.map((r) => r[key][i]).filter((v): v is number => v !== null));
  return {
    seeds: rows.length,
    word: o.reweightWord,
    weights,
    scenes: valid.length,
    monotoneArea: rate(valid.map((r) => increasing(r.area))),
    monotoneSaturation: rate(valid.map((r) => increasing(r.saturation))),
    monotoneEither: rate(valid.map((r) => increasing(r.area) || increasing(r.saturation))),
    meanArea: weights.map((_, i) => column('area', i)),
    meanSaturation: weights.map((_, i) => column('saturation', i)),
    rows: rows.map(({ valid: _, ...r }) => r),
  };
}

// ----------------------------------------------------------------------------------------------------------
// batched DDIM inversion (with controllers, e.g. an attention store)

function chunks<T>(xs: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

// ----------------------------------------------------------------------------------------------------------
// heat-maps on rendered scenes

export interface HeatMapsResult {
  seeds: number;
  objects: number;
  threshold: number;
  /** Denoising steps [a, b) the maps come from, in sampling order. */
  steps: [number, number];
  source: string;
  /** Mean IoU with the ground-truth mask per word kind, at the threshold and at Otsu's. */
  meanIoU: { shape: number | null; color: number | null; object: number | null };
  meanIoUOtsu: { shape: number | null; color: number | null; object: number | null };
  rows: { seed: number; prompt: string; object: number; shape: number; color: number; object_: number }[];
}

export function measureHeatMaps(sd: StableDiffusion, o: ResolvedOptions): HeatMapsResult {
  const items = scenes(o, 'heatmaps', (seed) => {
    const scene = sampleScene(seed);
    return { seed, scene, caption: captionOf(scene), rendering: renderScene(scene) };
  });
  const rows: HeatMapsResult['rows'] = [];
  const otsu = { shape: [] as number[], color: [] as number[], object: [] as number[] };
  let done = 0;
  const pace = new Pace(o.deadline);
  for (const chunk of chunks(items, o.batchPrompts)) {
    if (!pace.fits()) break;
    const store = new AttentionStore({
      kinds: ['cross'],
      maxTokens: Number.POSITIVE_INFINITY,
      steps: inversionStepRange(o.heatSteps, o.steps),
    });
    const latents = sd.encodeImage(
      concat(
        chunk.map((c) => c.rendering.image),
        0,
      ),
    );
    const embeds = sd.encodePrompt(chunk.map((c) => c.caption.text));
    invertBatch(sd, latents, embeds, o.steps, [store]);
    const maps = store.maps();
    const [, , lh, lw] = latents.shape as [number, number, number, number];
    chunk.forEach((it, k) => {
      const heat = new GlobalHeatMap(
        sd.tokenizer,
        it.caption.text,
        aggregateCrossAttention(maps, { latentSize: [lh, lw], prompt: k, resolutions: o.resolutions }),
      );
      const [h, w] = [it.scene.height, it.scene.width];
      it.caption.objects.forEach((phrase, j) => {
        const truth = it.rendering.masks[j]!.mask;
        const inRange = (i: number) => sd.tokenizer.tokenIndices(it.caption.text, i).length > 0;
        if (!inRange(phrase.shape.index) || !inRange(phrase.color.index)) return;
        const shapeMap = heat.wordHeatMap(phrase.shape.index);
        const colorMap = heat.wordHeatMap(phrase.color.index);
        const objectMap = shapeMap.add(colorMap).div(2);
        const score = (m: Tensor, th: number | 'otsu') =>
          maskIoU(attentionMask(m, { size: [h, w], threshold: th }), truth);
        rows.push({
          seed: it.seed,
          prompt: it.caption.text,
          object: j,
          shape: score(shapeMap, o.threshold),
          color: score(colorMap, o.threshold),
          object_: score(objectMap, o.threshold),
        });
        otsu.shape.push(score(shapeMap, 'otsu'));
        otsu.color.push(score(colorMap, 'otsu'));
        otsu.object.push(score(objectMap, 'otsu'));
      });
    });
    done += chunk.length;
    pace.tick();
    o.progress('heatmaps', done, items.length);
  }
  return {
    seeds: done,
    objects: rows.length,
    threshold: o.threshold,
    steps: [...o.heatSteps],
    source:
      'rendered scenes with their ground-truth masks; cross-attention of the UNet passes of DDIM inversion with ' +
      `the caption (sampling steps ${o.heatSteps[0]}–${o.heatSteps[1]} of ${o.steps}, ` +
      `${o.resolutions ? `${o.resolutions.map((r) => `${r} × ${r}`).join(', ')} maps` : 'all layers'}), aggregated ` +
      'as DAAM; word maps min–max normalised',
    meanIoU: {
      shape: mean(rows.map((r) => r.shape)),
      color: mean(rows.map((r) => r.color)),
      object: mean(rows.map((r) => r.object_)),
    },
    meanIoUOtsu: { shape: mean(otsu.shape), color: mean(otsu.color), object: mean(otsu.object) },
    rows,
  };
}

// ----------------------------------------------------------------------------------------------------------
// MasaCtrl and Plug-and-Play on a layout change

export interface FeatureResult {
  seeds: number;
  /** Over scenes whose source object is right. */
  scenes: number;
  methods: Record<
    string,
    {
      /** Target object present with the source's colour and shape, and in the target cell. */
      objectRight: number | null;
      position: number | null;
      /** Distance (8-bit RGB) between the mean colour of the target object and of the source object. */
      meanColourError: number | null;
      /** Mean abs error of the background colour statistics (outside both objects), 8-bit levels. */
      meanBackgroundError: number | null;
    }
  >;
  rows: {
    seed: number;
    source: string;
    target: string;
    valid: boolean;
    perMethod: Record<string, unknown>;
  }[];
}

function otherCell(cell: Cell, seed: number): Cell {
  const cells: Cell[] = [];
  for (let row = 0; row < 3; row++)
    for (let col = 0; col < 3; col++) if (row !== cell.row || col !== cell.col) cells.push({ row, col });
  // prefer a cell in another row and column, so the layout change is unambiguous
  const far = cells.filter((c) => c.row !== cell.row && c.col !== cell.col);
  const pool = far.length > 0 ? far : cells;
  return pool[seed % pool.length]!;
}

export function measureFeature(sd: StableDiffusion, o: ResolvedOptions): FeatureResult {
  const methods = ['masactrl', 'masactrl-mask', 'pnp', 'none'] as const;
  const items = scenes(o, 'feature', (seed) => {
    const scene = sampleScene(seed, { objects: 1 });
    const obj = scene.objects[0]!;
    const spec = (cell: Cell): SceneSpec => ({
      objects: [{ color: obj.color, shape: obj.shape, cell }],
      relations: [],
    });
    const source = captionOfSpec(spec(obj.cell)).text;
    const target = captionOfSpec(spec(otherCell(obj.cell, seed))).text;
    return { seed, source, target, words: [obj.color, obj.shape] };
  });
  const startLayer = defaultStartLayer(sd);
  // MasaCtrl from the reference's start step; a run too short for it (a quick check) starts at its last step
  const startStep = Math.min(MASACTRL_START_STEP, o.steps - 1);
  const pnpLayers = defaultPnPLayers(sd);
  const mask = {
    startStep,
    startLayer,
    maskResolution: o.maskResolution ?? defaultMaskResolution(sd),
    thres: o.maskThreshold,
  };
  const jobs = items.map(
    (it): Job => ({
      seed: it.seed,
      prompts: [it.source, it.target, it.target, it.target, it.target],
      groups: [
        { prompts: [0, 1], controllers: [new MutualSelfAttention({ startStep, startLayer })] },
        {
          prompts: [0, 2],
          controllers: [maskAutoFor(sd, [it.source, it.target], { ...mask, words: it.words })],
        },
        { prompts: [0, 3], controllers: [new PlugAndPlay(pnpLayers)] },
      ],
    }),
  );
  const images = runJobs(sd, jobs, o, (d) => o.progress('feature', d, jobs.length));
  const rows = items.slice(0, images.length).map((it, k) => {
    const [src, ...targets] = images[k]!;
    const srcObj = evaluate(src!, it.source).objects[0];
    const srcMask = maskOf(srcObj, src!);
    const [w, h] = sizeOf(src!);
    const srcColour = srcMask ? colourStats(src!, srcMask) : null;
    const perMethod: Record<
      string,
      { right: boolean; position: boolean; colourError: number | null; backgroundError: number | null }
    > = {};
    methods.forEach((m, i) => {
      const img = targets[i]!;
      const obj = evaluate(img, it.target).objects[0];
      const mask = maskOf(obj, img);
      const c = mask ? colourStats(img, mask) : null;
      const outside = dilate(
        unionMask(
          [srcMask, mask].filter((x): x is Float32Array => x !== null),
          w * h,
        ),
        w,
        h,
        2,
      ).map((v) => 1 - v);
      const bgSrc = colourStats(src!, outside);
      const bgTgt = colourStats(img, outside);
      perMethod[m] = {
        right: rightObject(obj) && obj!.position === true,
        position: obj?.position === true,
        colourError: c && srcColour ? dist(c.rgb, srcColour.rgb) : null,
        backgroundError: bgSrc && bgTgt ? meanAbsError(src!, img, outside) : null,
      };
    });
    return { seed: it.seed, source: it.source, target: it.target, valid: rightObject(srcObj), perMethod };
  });
  const valid = rows.filter((r) => r.valid);
  const summary: FeatureResult['methods'] = {};
  for (const m of methods) {
    const xs = valid.map((r) => r.perMethod[m]!);
    summary[m] = {
      objectRight: rate(xs.map((x) => x.right)),
      position: rate(xs.map((x) => x.position)),
      meanColourError: mean(xs.map((x) => x.colourError).filter((v): v is number => v !== null)),
      meanBackgroundError: mean(xs.map((x) => x.backgroundError).filter((v): v is number => v !== null)),
    };
  }
  return { seeds: rows.length, scenes: valid.length, methods: summary, rows };
}

// ----------------------------------------------------------------------------------------------------------
// inversion

export interface RealEditSummary {
  changedRate: number | null;
  /** Other objects of the edited image against their ground-truth masks. */
  othersMeanIoU: number | null;
  /** The same for the reconstruction (the source row): what "unchanged" scores through inversion. */
  othersMeanIoUReconstruction?: number | null;
  /** Mean abs error to the rendered scene outside the edited object, and that of the reconstruction. */
  maeOutside: number | null;
  maeOutsideReconstruction: number | null;
}

/** One real-image edit: object 0 changed right, the others' IoU with the truth, errors outside object 0. */
interface RealEdit {
  changed: boolean;
  others: number[];
  othersRec: number[];
  mae: number;
  maeRec: number;
}

export interface InversionResult {
  seeds: number;
  /** VAE encode → decode (the ceiling of any latent inversion). */
  vaePSNR: number | null;
  /** DDIM inversion (guidance 1) and regeneration at guidance 1 and at the edit guidance. */
  ddimPSNR: number | null;
  ddimGuidedPSNR: number | null;
  guidanceScale: number;
  nullText: {
    seeds: number;
    innerSteps: number;
    /** Adam's learning rate at the first step. */
    learningRate: number;
    /** Time of the null-text part (inversion and edit). */
    seconds: number;
    psnr: number | null;
    /** Colour swap of object 0 on the null-text-inverted scene (P2P replace). */
    edit: RealEditSummary;
    /** The same swap with LocalBlend on the two colour words. */
    editBlend: RealEditSummary;
    /** With LocalBlend, ∅_t on the source row only; the target samples with the plain '' embedding. */
    editBlendSourceOnly?: RealEditSummary;
  };
  rows: { seed: number; prompt: string; vae: number; ddim: number; ddimGuided: number; nullText?: number }[];
}

export function measureInversion(sd: StableDiffusion, o: ResolvedOptions): InversionResult {
  const items = scenes(o, 'inversion', (seed) => {
    const scene = sampleScene(seed);
    return { seed, scene, caption: captionOf(scene), rendering: renderScene(scene) };
  });
  const rows: InversionResult['rows'] = [];
  const total = items.length + Math.min(o.nullTextSeeds, items.length);
  const inversions: DDIMInversion[] = [];
  let done = 0;
  // with a deadline, the batched part takes half the time and null-text inversion the rest
  const start = performance.now();
  const pace = new Pace(o.nullTextSeeds > 0 ? start + (o.deadline - start) / 2 : o.deadline);
  for (const chunk of chunks(items, o.batchPrompts)) {
    if (!pace.fits()) break;
    const images = concat(
      chunk.map((c) => c.rendering.image),
      0,
    );
    const latents = sd.encodeImage(images);
    const vae = sd.decodeLatents(latents);
    const prompts = chunk.map((c) => c.caption.text);
    const embeds = sd.encodePrompt(prompts);
    const { trajectory, timesteps } = invertBatch(sd, latents, embeds, o.steps);
    const zT = trajectory[o.steps]!;
    chunk.forEach((_, k) => {
      if (inversions.length >= o.nullTextSeeds) return;
      const row = (x: Tensor) => x.slice(0, k, k + 1);
      inversions.push({
        trajectory: trajectory.map(row),
        timesteps,
        promptEmbeds: row(embeds),
        steps: o.steps,
      });
    });
    const regen = (w: number) =>
      sd.generate({ promptEmbeds: embeds, latents: zT, steps: o.steps, guidanceScale: w, scheduler: 'ddim' })
        .images;
    const plain = regen(1);
    const guided = regen(o.guidanceScale);
    chunk.forEach((it, k) => {
      const row = (x: Tensor) => x.slice(0, k, k + 1);
      rows.push({
        seed: it.seed,
        prompt: it.caption.text,
        vae: psnr(row(vae), it.rendering.image),
        ddim: psnr(row(plain), it.rendering.image),
        ddimGuided: psnr(row(guided), it.rendering.image),
      });
    });
    done += chunk.length;
    pace.tick();
    o.progress('inversion', done, total);
  }
  // null-text inversion of the first scenes (their DDIM trajectories from above), then a colour swap there
  const ntStart = performance.now();
  const ntPace = new Pace(o.deadline);
  const nt: typeof items = [];
  const edits: RealEdit[] = [];
  const blendEdits: RealEdit[] = [];
  const sourceOnlyEdits: RealEdit[] = [];
  const plainUncond = sd.encodePrompt(['']);
  // null-text inversion runs a batch of scenes at once (each as if alone: nullTextInversionBatch)
  for (const [ci, chunk] of chunks(inversions, o.batchPrompts).entries()) {
    if (!ntPace.fits()) break;
    const ntis = nullTextInversionBatch(sd, chunk, {
      guidanceScale: o.guidanceScale,
      numInnerSteps: o.nullTextInnerSteps,
      learningRate: o.nullTextLr,
    });
    chunk.forEach((inv, r) => {
      const k = ci * o.batchPrompts + r;
      const it = items[k]!;
      nt.push(it);
      const nti = ntis[r]!;
      const zT = inv.trajectory[o.steps]!;
      const free = COLORS.filter((c) => !it.scene.objects.some((x) => x.color === c));
      const colour: ColorName = free[it.seed % free.length]!;
      const target = swappedCaption(it.scene, 'color', colour);
      const pair = [it.caption.text, target];
      const colours = [it.caption.objects[0]!.color.word, colour];
      // rows: reconstruction + swap, the same pair with LocalBlend on the two colour words, and again with the
      // target (row 5) sampling with the plain unconditional embedding instead of ∅_t (editPrompt's
      // nullTextSourceOnly)
      const { images } = sd.generate({
        prompt: [...pair, ...pair, ...pair],
        latents: concat([zT, zT, zT, zT, zT, zT], 0),
        negativePromptEmbeds: nti.nullEmbeds.map((n) => concat([n, n, n, n, n, plainUncond], 0)),
        steps: o.steps,
        guidanceScale: o.guidanceScale,
        scheduler: 'ddim',
        controllers: [
          groupControllers([
            { prompts: [0, 1], controllers: [new AttentionReplace(editOptions(sd, pair))] },
            { prompts: [2, 3], controllers: replaceAndBlend(sd, pair, colours, o.blendThreshold) },
            { prompts: [4, 5], controllers: replaceAndBlend(sd, pair, colours, o.blendThreshold) },
          ]),
        ],
      });
      const rec = images.slice(0, 0, 1);
      rows[k]!.nullText = psnr(rec, it.rendering.image);
      const [w, h] = [it.scene.width, it.scene.height];
      const truth = it.rendering.masks.map((m) => m.mask.data as Float32Array);
      const othersIoU = (image: Tensor, caption: string) => {
        const report = evaluate(image, caption);
        return truth.slice(1).map((t, j) => {
          const m = maskOf(report.objects[j + 1], image);
          return m ? maskIoU(m, t) : 0;
        });
      };
      const othersRec = othersIoU(rec, it.caption.text);
      const score = (edited: Tensor): RealEdit => {
        const report = evaluate(edited, target);
        const outside = outsideOf([truth[0]!, maskOf(report.objects[0], edited)], w, h);
        return {
          changed: report.objects[0]!.present && report.objects[0]!.color && report.objects[0]!.shape,
          others: othersIoU(edited, target),
          othersRec,
          mae: meanAbsError(edited, it.rendering.image, outside),
          maeRec: meanAbsError(rec, it.rendering.image, outside),
        };
      };
      edits.push(score(images.slice(0, 1, 2)));
      blendEdits.push(score(images.slice(0, 3, 4)));
      sourceOnlyEdits.push(score(images.slice(0, 5, 6)));
      o.progress('inversion', items.length + k + 1, total);
    });
    ntPace.tick();
  }
  const ntSeconds = (performance.now() - ntStart) / 1000;
  const col = (f: (r: InversionResult['rows'][number]) => number | undefined) =>
    mean(rows.map(f).filter((v): v is number => v !== undefined && Number.isFinite(v)));
  return {
    seeds: rows.length,
    vaePSNR: col((r) => r.vae),
    ddimPSNR: col((r) => r.ddim),
    ddimGuidedPSNR: col((r) => r.ddimGuided),
    guidanceScale: o.guidanceScale,
    nullText: {
      seeds: nt.length,
      innerSteps: o.nullTextInnerSteps,
      learningRate: o.nullTextLr,
      seconds: ntSeconds,
      psnr: col((r) => r.nullText),
      edit: summarizeRealEdits(edits),
      editBlend: summarizeRealEdits(blendEdits),
      editBlendSourceOnly: summarizeRealEdits(sourceOnlyEdits),
    },
    rows,
  };
}

function summarizeRealEdits(edits: readonly RealEdit[]): RealEditSummary {
  return {
    changedRate: rate(edits.map((e) => e.changed)),
    othersMeanIoU: mean(edits.flatMap((e) => e.others)),
    othersMeanIoUReconstruction: mean(edits.flatMap((e) => e.othersRec)),
    maeOutside: mean(edits.map((e) => e.mae)),
    maeOutsideReconstruction: mean(edits.map((e) => e.maeRec)),
  };
}

// ----------------------------------------------------------------------------------------------------------
// all of them

interface ResolvedOptions {
  sceneOffset: number;
  seeds: number;
  steps: number;
  guidanceScale: number;
  batchPrompts: number;
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
  progress: (m: MeasurementName, done: number, total: number) => void;
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

export interface EditMeasurements {
  config: Omit<ResolvedOptions, 'progress' | 'deadline' | 'blendThreshold'> & {
    only: MeasurementName[];
    /** Absent from results written before it was an option. */
    blendThreshold?: number;
  };
  seconds: Partial<Record<MeasurementName, number>>;
  colourSwap?: SwapResult;
  shapeSwap?: SwapResult;
  reweight?: ReweightResult;
  heatMaps?: HeatMapsResult;
  feature?: FeatureResult;
  inversion?: InversionResult;
}

export function measureEdits(sd: StableDiffusion, opts: MeasureOptions = {}): EditMeasurements {
  const only = [...(opts.only ?? MEASUREMENTS)];
  for (const m of only) {
    if (!MEASUREMENTS.includes(m))
      throw new Error(`measureEdits: unknown measurement '${m}' (${MEASUREMENTS.join(', ')})`);
  }
  const steps = opts.steps ?? 25;
  const resolutions = opts.resolutions ?? defaultHeatResolutions(sd);
  const o: ResolvedOptions = {
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
  const { progress: _, deadline: __, ...config } = o;
  const out: EditMeasurements = { config: { ...config, only }, seconds: {} };
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
    if (m === 'inversion') out.inversion = measureInversion(sd, mo);
    out.seconds[m] = (performance.now() - t0) / 1000;
  });
  return out;
}

// ----------------------------------------------------------------------------------------------------------
// markdown

const f2 = (v: number | null | undefined, d = 2) => (v === null || v === undefined ? '—' : v.toFixed(d));
const pc = (v: number | null | undefined) =>
  v === null || v === undefined ? '—' : `${(100 * v).toFixed(1)}%`;
const ok = (v: number | null | undefined, pass: (x: number) => boolean) =>
  v === null || v === undefined ? 'n/a' : pass(v) ? 'pass' : 'FAIL';

function realEditRow(name: string, x: RealEditSummary): string[] {
  return [
    name,
    pc(x.changedRate),
    f2(x.othersMeanIoU, 3),
    f2(x.othersMeanIoUReconstruction, 3),
    f2(x.maeOutside),
    f2(x.maeOutsideReconstruction),
  ];
}

function table(head: string[], rows: string[][]): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** The measurements as markdown sections. */
export function editsMarkdown(r: EditMeasurements): string {
  const c = r.config;
  const out: string[] = [
    `Settings: DDIM ${c.steps} steps, guidance ${c.guidanceScale}, up to ${c.seeds} held-out scenes per measurement ` +
      `(scene seeds ≥ 10⁹; each measurement's own range${c.sceneOffset ? `, shifted by ${c.sceneOffset}: a validation run` : ''}), ` +
      `${c.batchPrompts} prompts per batch. Object masks of ` +
      "generated images are ShapesEval's detected templates; rendered scenes use their ground truth. Errors are " +
      '8-bit levels (0–255).',
    '',
  ];
  const secs = (m: MeasurementName) => (r.seconds[m] !== undefined ? `, ${r.seconds[m]!.toFixed(0)} s` : '');
  // results written before the threshold was an option: 0.6 in the shape swap, the reference's 0.3 elsewhere
  const blendTh = (m: 'colour' | 'shape') => c.blendThreshold ?? (m === 'shape' ? 0.6 : 0.3);
  if (r.colourSwap) {
    const s = r.colourSwap;
    const rep = s.methods.replace!;
    const none = s.methods.none!;
    const row = (name: string, x: SwapMethodSummary) => [
      name,
      pc(x.changedRate),
      f2(x.meanIoU, 3),
      pc(x.iouAtLeast),
      f2(x.meanMaeOutside),
      f2(x.meanIoUCopies, 3),
      f2(x.meanMaeOutsideCopies),
      f2(x.meanIoUSamePlace, 3),
    ];
    const blend = s.methods['replace+blend'];
    out.push(
      `### Colour word swap (AttentionReplace) — ${s.seeds} seeds, ${rep.scenes} with the source object right${secs('colour-swap')}`,
      '',
      table(
        [
          'method',
          'new colour',
          'object IoU with source (mean)',
          'IoU ≥ 0.8',
          'mean abs error outside object',
          'IoU, every copy of the object',
          'error outside every copy',
          "IoU, the copy in the source object's place",
        ],
        [
          row('AttentionReplace', rep),
          ...(blend
            ? [
                row(
                  `AttentionReplace + LocalBlend (the two colour words, threshold ${blendTh('colour')})`,
                  blend,
                ),
              ]
            : []),
          row('plain regeneration, same seed', none),
        ],
      ),
      '',
      `Targets: new colour ≥ 80% (${ok(rep.changedRate, (x) => x >= 0.8)}), object IoU ≥ 0.8 (${ok(rep.meanIoU, (x) => x >= 0.8)}), ` +
        `regeneration worse on layout (${ok(rep.meanIoU !== null && none.meanIoU !== null ? rep.meanIoU - none.meanIoU : null, (x) => x > 0)}).`,
      '',
      '"Every copy": the masks of all detected objects with the object\'s colour and shape (source: old colour, ' +
        'edited: new colour), because the model often draws an object twice and ShapesEval then matches either copy. ' +
        "\"The copy in the source object's place\": of the edited image's detected objects with the matched one's " +
        "colour and shape, the one that overlaps the source object's mask most.",
      '',
    );
  }
  if (r.shapeSwap) {
    const s = r.shapeSwap;
    const b = s.methods['replace+blend']!;
    out.push(
      `### Shape word swap with LocalBlend — ${s.seeds} seeds (2–3 objects), ${b.scenes} with the source object right${secs('shape-swap')}`,
      '',
      table(
        [
          'method',
          'new shape',
          'other objects: IoU (mean)',
          'others IoU ≥ 0.9',
          'edited object IoU',
          'error outside object',
          'others IoU, every copy',
          'others IoU ≥ 0.9, every copy',
          "others IoU, the copy in the source object's place",
          'others ≥ 0.9, same place',
        ],
        [
          [
            `AttentionReplace + LocalBlend (threshold ${blendTh('shape')})`,
            pc(b.changedRate),
            f2(b.othersMeanIoU, 3),
            pc(b.othersAtLeast),
            f2(b.meanIoU, 3),
            f2(b.meanMaeOutside),
            f2(b.othersMeanIoUCopies, 3),
            pc(b.othersCopiesAtLeast),
            f2(b.othersMeanIoUSamePlace, 3),
            pc(b.othersSamePlaceAtLeast),
          ],
        ],
      ),
      '',
      `Target: other objects unchanged, IoU ≥ 0.9 (${ok(b.othersMeanIoU, (x) => x >= 0.9)}; ${b.othersCount} other objects; ` +
        `every copy ${ok(b.othersMeanIoUCopies, (x) => x >= 0.9)}, the copy in the source object's place ` +
        `${ok(b.othersMeanIoUSamePlace, (x) => x >= 0.9)}).`,
      '',
    );
  }
  if (r.reweight) {
    const s = r.reweight;
    out.push(
      `### Reweight (the object's ${s.word} word) — ${s.seeds} seeds (1 object), ${s.scenes} with the object right${secs('reweight')}`,
      '',
      table(
        ['weight', ...s.weights.map(String)],
        [
          ['mean object area (px)', ...s.meanArea.map((v) => f2(v, 1))],
          ['mean saturation', ...s.meanSaturation.map((v) => f2(v, 3))],
        ],
      ),
      '',
      `Monotone increase over the ${s.weights.length} weights: area ${pc(s.monotoneArea)}, saturation ` +
        `${pc(s.monotoneSaturation)}, either ${pc(s.monotoneEither)} of scenes (weight 1 is the source image).`,
      '',
    );
  }
  if (r.heatMaps) {
    const s = r.heatMaps;
    out.push(
      `### Heat-maps per object word — ${s.seeds} rendered scenes, ${s.objects} objects${secs('heatmaps')}`,
      '',
      table(
        ['word', `mean IoU (threshold ${s.threshold})`, 'mean IoU (Otsu)'],
        [
          ['shape word', f2(s.meanIoU.shape, 3), f2(s.meanIoUOtsu.shape, 3)],
          ['colour word', f2(s.meanIoU.color, 3), f2(s.meanIoUOtsu.color, 3)],
          ['colour + shape (mean map)', f2(s.meanIoU.object, 3), f2(s.meanIoUOtsu.object, 3)],
        ],
      ),
      '',
      `Target: IoU ≥ 0.5 on average (${ok(s.meanIoU.shape, (x) => x >= 0.5)} for the shape word). Maps: ${s.source}.`,
      '',
    );
  }
  if (r.feature) {
    const s = r.feature;
    const rowOf = (name: string, m: string) => {
      const x = s.methods[m]!;
      return [
        name,
        pc(x.position),
        pc(x.objectRight),
        f2(x.meanColourError, 1),
        f2(x.meanBackgroundError, 1),
      ];
    };
    out.push(
      `### MasaCtrl and Plug-and-Play on a layout change — ${s.seeds} seeds, ${s.scenes} with the source object right${secs('feature')}`,
      '',
      'Source "a red star in the top left" → target "a red star in the bottom right" (the object moves to a cell in another row and column).',
      '',
      table(
        [
          'method',
          'target position right',
          'object right (colour, shape, cell)',
          'colour error vs source (RGB distance)',
          'background error',
        ],
        [
          rowOf('MasaCtrl', 'masactrl'),
          ...(s.methods['masactrl-mask']
            ? [rowOf('MasaCtrl, MaskAuto on the object’s words', 'masactrl-mask')]
            : []),
          rowOf('Plug-and-Play', 'pnp'),
          rowOf('plain regeneration', 'none'),
        ],
      ),
      '',
    );
  }
  if (r.inversion) {
    const s = r.inversion;
    const e = s.nullText.edit;
    out.push(
      `### Inversion of rendered scenes — ${s.seeds} scenes, null-text on ${s.nullText.seeds}${secs('inversion')}`,
      '',
      table(
        ['reconstruction', 'mean PSNR (dB)', 'target'],
        [
          ['VAE encode → decode (ceiling)', f2(s.vaePSNR), ''],
          [
            'DDIM inversion → regeneration, guidance 1',
            f2(s.ddimPSNR),
            `≥ 25 (${ok(s.ddimPSNR, (x) => x >= 25)})`,
          ],
          [`DDIM inversion → regeneration, guidance ${s.guidanceScale}`, f2(s.ddimGuidedPSNR), ''],
          [
            `null-text inversion (${s.nullText.innerSteps} inner steps, lr ${s.nullText.learningRate ?? 0.01}), guidance ${s.guidanceScale}`,
            f2(s.nullText.psnr),
            `≥ 30 (${ok(s.nullText.psnr, (x) => x >= 30)})`,
          ],
        ],
      ),
      '',
      'Colour swap on the null-text-inverted scenes (does only the named object change?):',
      '',
      table(
        [
          'method',
          'new colour',
          'other objects: IoU with ground truth',
          'reconstruction: other objects IoU',
          'error outside the object',
          'reconstruction: error outside the object',
        ],
        [
          realEditRow('AttentionReplace', e),
          // absent from results written before it was measured
          ...(s.nullText.editBlend
            ? [
                realEditRow(
                  `AttentionReplace + LocalBlend (the two colour words, threshold ${blendTh('colour')})`,
                  s.nullText.editBlend,
                ),
              ]
            : []),
          ...(s.nullText.editBlendSourceOnly
            ? [
                realEditRow(
                  `… and null-text for the source only (the target with the plain unconditional embedding)`,
                  s.nullText.editBlendSourceOnly,
                ),
              ]
            : []),
        ],
      ),
      '',
    );
  }
  return out.join('\n');
}
