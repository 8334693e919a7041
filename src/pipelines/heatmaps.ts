// Text-to-image with an attention store on the cross-attention layers, then DAAM's global heat map of the
// prompt: what `attnkit maps` and `attnkit segment` run. Only the conditional row is read, as DAAM. For a given
// image, the maps come from the UNet passes of its DDIM inversion with the prompt (`imageHeatMaps`).

import type { Controller } from '../attention/hooks.js';
import type { LatentGuidance } from '../methods/application/score-guidance.js';
import { AttentionStore, type StoredMap } from '../methods/map/attention-store.js';
import { aggregateCrossAttention, GlobalHeatMap } from '../methods/map/heatmap.js';
import { selfAttentionComponents } from '../methods/map/self-attention-components.js';
import type { ResizeMode } from '../methods/map/upsample.js';
import { crossAttentionSides } from '../models/unet2d-config.js';
import type { SchedulerName } from '../schedulers/index.js';
import { formatShape, type Tensor } from '../tensor/index.js';
import { inversionStepRange, invertBatch } from './inversion.js';
import type { StableDiffusion, StepEvent } from './stable-diffusion.js';

/** Options of `generateWithHeatMaps`: the prompt, sampling, and which steps and map sides are aggregated. */
export interface HeatMapRunOptions {
  prompt: string;
  seed?: number;
  steps?: number;
  guidanceScale?: number;
  scheduler?: SchedulerName;
  negativePrompt?: string;
  /** Steps aggregated, [start, end) indices (default all). */
  stepRange?: readonly [number, number];
  /** Map sides aggregated, e.g. [16, 8] (default all). */
  resolutions?: readonly number[];
  /** Maps with more queries are not recorded (default: none skipped; prompt-to-prompt's store skips > 32²). */
  maxTokens?: number;
  mode?: ResizeMode;
  /** Also aggregate the mid block's maps (default false: DAAM hooks the down and up blocks only). */
  midBlock?: boolean;
  /** Which recorded cross-attention layers are aggregated (e.g. by `place` or `path`); default all. */
  layers?: (m: StoredMap) => boolean;
  /** Heads aggregated, e.g. [0] for one head; default the mean over all. */
  heads?: readonly number[];
  /** Also the principal components of the self-attention maps of side `res` (default the largest ≤ 32). */
  selfComponents?: { maxCom: number; res?: number };
  /** Score-driven guidance and more controllers for the generation (the maps are then those after guidance). */
  guidance?: readonly LatentGuidance[];
  controllers?: readonly Controller[];
  /** Called after each denoising step (e.g. to advance a progress bar). */
  onStep?: (e: StepEvent) => void;
}

/**
 * A heat-map run: the image, DAAM's global heat map of the prompt, the attention store, and self-attention
 * components when asked for.
 */
export interface HeatMapRun {
  /** (1, 3, H, W) in [-1, 1]. */
  image: Tensor;
  heatMap: GlobalHeatMap;
  store: AttentionStore;
  /** (res, res) images in [0, 1], when asked for. */
  selfComponents?: Tensor[];
}

/** The store of a heat-map run: cross-attention of the chosen sides (and self-attention, for its components). */
function heatMapStore(
  opts: Pick<HeatMapRunOptions, 'resolutions' | 'maxTokens' | 'selfComponents'>,
  steps: readonly [number, number] | undefined,
): AttentionStore {
  const self = opts.selfComponents;
  const selfTokens = self?.res ? self.res ** 2 : 32 ** 2;
  return new AttentionStore({
    kinds: self ? ['cross', 'self'] : ['cross'],
    maxTokens: opts.maxTokens ?? Number.POSITIVE_INFINITY,
    steps,
    layers: (c) =>
      c.kind === 'self'
        ? c.queryTokens <= selfTokens && (!self?.res || c.size![0] === self.res)
        : !opts.resolutions || opts.resolutions.includes(c.size![0]),
  });
}

/** The heat map (and self-attention components) of what `store` recorded over latents of `latentShape`. */
function heatMapRun(
  sd: StableDiffusion,
  opts: Pick<
    HeatMapRunOptions,
    'prompt' | 'stepRange' | 'resolutions' | 'mode' | 'selfComponents' | 'midBlock' | 'layers' | 'heads'
  >,
  store: AttentionStore,
  image: Tensor,
  latentShape: readonly number[],
): HeatMapRun {
  if (store.numSteps === 0) {
    throw new Error(
      `heat-maps: no cross-attention map was recorded (steps ${opts.stepRange?.join(':') ?? 'all'}, ` +
        `resolutions ${opts.resolutions?.join(',') ?? 'all'}); widen the step range or the resolutions`,
    );
  }
  const [, , h, w] = latentShape as [number, number, number, number];
  const heat = aggregateCrossAttention(store.maps(), {
    latentSize: [h, w],
    mode: opts.mode,
    midBlock: opts.midBlock,
    layers: opts.layers,
    heads: opts.heads,
  });
  const heatMap = new GlobalHeatMap(sd.tokenizer, opts.prompt, heat);
  const self = opts.selfComponents;
  if (!self) return { image, heatMap, store };
  const selfMaps = store.maps((m) => m.kind === 'self');
  const res = self.res ?? Math.max(...selfMaps.map((m) => m.size[0]));
  const fromWhere = selfMaps.some((m) => m.place !== 'mid' && m.size[0] === res)
    ? undefined
    : (['mid'] as const);
  const selfComponents = selfAttentionComponents(selfMaps, { res, maxCom: self.maxCom, fromWhere });
  return { image, heatMap, store, selfComponents };
}

/**
 * Text to image with an attention store on the cross-attention layers, then DAAM's global heat map of the
 * prompt (Tang et al. 2023, "What the DAAM").
 */
export function generateWithHeatMaps(sd: StableDiffusion, opts: HeatMapRunOptions): HeatMapRun {
  const store = heatMapStore(opts, opts.stepRange);
  const { images, latents } = sd.generate({
    prompt: opts.prompt,
    negativePrompt: opts.negativePrompt,
    seed: opts.seed,
    steps: opts.steps,
    guidanceScale: opts.guidanceScale,
    scheduler: opts.scheduler,
    controllers: [...(opts.controllers ?? []), store],
    guidance: opts.guidance,
    onStep: opts.onStep,
  });
  return heatMapRun(sd, opts, store, images, latents.shape);
}

/**
 * Options of `imageHeatMaps`: a given image and its prompt, whose maps come from the UNet passes of DDIM
 * inversion.
 */
export interface ImageHeatMapOptions
  extends Pick<
    HeatMapRunOptions,
    'prompt' | 'stepRange' | 'resolutions' | 'maxTokens' | 'mode' | 'selfComponents' | 'midBlock'
  > {
  /** The image (1, 3, H, W) in [-1, 1], H and W multiples of the VAE's downsampling. */
  image: Tensor;
  /** DDIM inversion steps (default 50, the reference's). */
  steps?: number;
  /** After each inversion step (0 … steps − 1). */
  onStep?: (step: number) => void;
}

/**
 * Heat-maps of a given image: the cross-attention of the UNet passes of its DDIM inversion with the prompt
 * (guidance 1, so the conditional pass DAAM reads). Inversion visits the timesteps from clean to noisy, so
 * sampling step s is inversion step steps − 1 − s; `stepRange` is in sampling order, as generateWithHeatMaps'
 * (on rendered Shapes scenes the shape word's map matches the object's mask at IoU 0.62, docs/results.md).
 */
export function imageHeatMaps(sd: StableDiffusion, opts: ImageHeatMapOptions): HeatMapRun {
  const steps = opts.steps ?? 50;
  if (!Number.isInteger(steps) || steps < 1)
    throw new Error(`heat-maps: steps must be a positive integer, got ${steps}`);
  if (opts.image.rank !== 4 || opts.image.shape[0] !== 1 || opts.image.shape[1] !== 3) {
    throw new Error(`heat-maps: give one RGB image (1, 3, H, W), got ${formatShape(opts.image.shape)}`);
  }
  const store = heatMapStore(opts, opts.stepRange && inversionStepRange(opts.stepRange, steps));
  const latents = sd.encodeImage(opts.image);
  invertBatch(sd, latents, sd.encodeText([opts.prompt]), steps, [store], opts.onStep);
  return heatMapRun(sd, opts, store, opts.image, latents.shape);
}

/**
 * Threshold of min–max normalised heat-maps in `attnkit eval` and `measure edits`. DAAM's 0.4 over all steps and
 * layers marked about twice each object on Shapes scenes; session 7 chose 0.7 on the last third of the steps
 * (all layers); session 13, on the session-12 model, 0.5 on the 16 × 16 maps of the last third — validation
 * prompts 1000–1127: shape-word IoU 0.438 → 0.499, rendered validation scenes 0.571 → 0.659 (docs/training.md).
 */
export const HEAT_MAP_THRESHOLD = 0.5;

/** Side of the cross-attention maps the heat-map measurements read by default (see `defaultHeatResolutions`). */
export const HEAT_MAP_SIDE = 16;

/**
 * The cross-attention sides heat-maps are aggregated from by default: the 16 × 16 maps where the UNet has
 * them (the Shapes model's full latent side, where its 8 × 8 and 4 × 4 maps blur small objects; on SD the side
 * prompt-to-prompt's notebooks show), else every side.
 */
export function defaultHeatResolutions(sd: StableDiffusion): number[] | undefined {
  return crossAttentionSides(sd.unet.config).includes(HEAT_MAP_SIDE) ? [HEAT_MAP_SIDE] : undefined;
}

/**
 * The denoising steps [a, b) heat-maps are aggregated over, in sampling order: `given`, checked, or by default
 * the last third (the cleanest steps; at least one).
 */
export function heatStepRange(
  steps: number,
  given: readonly [number, number] | undefined,
  caller: string,
): [number, number] {
  const [a, b] = given ?? [steps - Math.max(1, Math.round(steps / 3)), steps];
  if (!(Number.isInteger(a) && Number.isInteger(b) && 0 <= a && a < b && b <= steps))
    throw new Error(`${caller}: heatSteps [${a}, ${b}) is not a range of the ${steps} steps`);
  return [a, b];
}
