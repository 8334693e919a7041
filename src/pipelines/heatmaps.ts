// Text-to-image with an attention store on the cross-attention layers, then DAAM's global heat map of the
// prompt: what `attnkit maps` and `attnkit segment` run. Only the conditional row is read, as DAAM.

import { AttentionStore } from '../methods/map/attention-store.js';
import { aggregateCrossAttention, GlobalHeatMap } from '../methods/map/heatmap.js';
import { selfAttentionComponents } from '../methods/map/self-attention-components.js';
import type { ResizeMode } from '../methods/map/upsample.js';
import type { SchedulerName } from '../schedulers/index.js';
import type { Tensor } from '../tensor/index.js';
import type { StableDiffusion, StepEvent } from './stable-diffusion.js';

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
  /** Also the principal components of the self-attention maps of side `res` (default the largest ≤ 32). */
  selfComponents?: { maxCom: number; res?: number };
  onStep?: (e: StepEvent) => void;
}

export interface HeatMapRun {
  /** (1, 3, H, W) in [-1, 1]. */
  image: Tensor;
  heatMap: GlobalHeatMap;
  store: AttentionStore;
  /** (res, res) images in [0, 1], when asked for. */
  selfComponents?: Tensor[];
}

export function generateWithHeatMaps(sd: StableDiffusion, opts: HeatMapRunOptions): HeatMapRun {
  const self = opts.selfComponents;
  const selfTokens = self?.res ? self.res ** 2 : 32 ** 2;
  const store = new AttentionStore({
    kinds: self ? ['cross', 'self'] : ['cross'],
    maxTokens: opts.maxTokens ?? Number.POSITIVE_INFINITY,
    steps: opts.stepRange,
    layers: (c) =>
      c.kind === 'self'
        ? c.queryTokens <= selfTokens && (!self?.res || c.size![0] === self.res)
        : !opts.resolutions || opts.resolutions.includes(c.size![0]),
  });
  const { images, latents } = sd.generate({
    prompt: opts.prompt,
    negativePrompt: opts.negativePrompt,
    seed: opts.seed,
    steps: opts.steps,
    guidanceScale: opts.guidanceScale,
    scheduler: opts.scheduler,
    controllers: [store],
    onStep: opts.onStep,
  });
  if (store.numSteps === 0) {
    throw new Error(
      `heat-maps: no cross-attention map was recorded (steps ${opts.stepRange?.join(':') ?? 'all'}, ` +
        `resolutions ${opts.resolutions?.join(',') ?? 'all'}); widen the step range or the resolutions`,
    );
  }
  const [, , h, w] = latents.shape as [number, number, number, number];
  const heat = aggregateCrossAttention(store.maps(), { latentSize: [h, w], mode: opts.mode });
  const heatMap = new GlobalHeatMap(sd.tokenizer, opts.prompt, heat);
  if (!self) return { image: images, heatMap, store };
  const selfMaps = store.maps((m) => m.kind === 'self');
  const res = self.res ?? Math.max(...selfMaps.map((m) => m.size[0]));
  const fromWhere = selfMaps.some((m) => m.place !== 'mid' && m.size[0] === res)
    ? undefined
    : (['mid'] as const);
  const selfComponents = selfAttentionComponents(selfMaps, { res, maxCom: self.maxCom, fromWhere });
  return { image: images, heatMap, store, selfComponents };
}
