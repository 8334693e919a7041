// Object-Shape Variations (Patashnik et al. 2023; reference orpatashnik/local-prompt-mixing, main.py): a sweep of
// proxy words gives several shapes of one object, the rest of the image kept.
//
// 1. The source is generated (or a real image DDIM-inverted and reconstructed) with an attention store; the
//    object word's aggregated cross-attention, min–max normalised and thresholded, is the object's region.
// 2. The source and one row per proxy run as one batch from the same latents: prompt-mixing in the variation
//    rows (the proxy's cross-attention values in steps 7 … 17 of 50), the source's self-attention outside the
//    object's region (shape localisation, the first 40 of 50 steps), and at step 35 of 50 the reference's
//    background blend: outside the dilated union of the source's and the variation's object regions, the
//    variation's latents become the source's.
// The reference finds its background by clustering self-attention (5 segments labelled by nouns' maps); here
// the object word's cross-attention region stands for it (Shapes scenes have no background nouns).

import type { Controller, StepState } from '../attention/hooks.js';
import { maxPool3 } from '../methods/application/attention-mask.js';
import { AttentionStore } from '../methods/map/attention-store.js';
import { aggregateCrossAttention, GlobalHeatMap } from '../methods/map/heatmap.js';
import type { TokenRegion } from '../methods/map/map-composition.js';
import {
  OBJECT_MASK_THRESHOLD,
  PromptMixing,
  proxyPrompts,
  SHAPE_LOCALIZATION_STEPS,
  shapeLocalization,
} from '../methods/map/prompt-mixing.js';
import { boundsOf, checkStepBounds, type StepBounds } from '../methods/map/token-alignment.js';
import type { SchedulerName } from '../schedulers/index.js';
import { concat, formatShape, Tensor } from '../tensor/index.js';
import { ddimInvert, followTrajectory } from './inversion.js';
import { initialNoise, type SamplingOptions, type StableDiffusion } from './stable-diffusion.js';

/** The reference's background blend: after step 35 of 50 (`background_blend_timestep`). */
export const BACKGROUND_BLEND_STEP = 35 / 50;

/** Options of `shapeVariations`: the prompt, its object word, the proxies and the method's step ranges. */
export interface ShapeVariationsOptions extends SamplingOptions {
  /** The source prompt; it holds `word`. */
  source: string;
  /** The object word whose shape varies. */
  word: string;
  /** Proxy words, one variation each (see `rankProxyWords` for the reference's choice). */
  proxies: readonly string[];
  /** Steps with the proxies' values (default 7 … 17 of 50). */
  mixSteps?: StepBounds;
  /** Steps with the source's self-attention outside the object (default the first 40 of 50); 0: none. */
  localizationSteps?: StepBounds;
  /** Threshold on the object word's normalised map (default 0.05, the reference's). */
  maskThreshold?: number;
  /** Fraction of steps after which the background is blended in (default 35/50); false: no blend. */
  backgroundBlend?: number | false;
  /**
   * Which text positions take the proxy's values: 'all' (default, the reference's whole proxy prompt) or 'word'
   * (the object word's tokens only; every other word's values stay the source's).
   */
  proxyTokens?: 'all' | 'word';
  /**
   * Steps after each of which the variation rows take the source's latents outside the object (the same region
   * as the background blend), as Prompt-to-Prompt's LocalBlend does; default none (the reference blends once).
   */
  localBlend?: StepBounds;
  /** A real image (1, 3, H, W) in [-1, 1]: DDIM-inverted with the source prompt, its row pinned to the inversion. */
  image?: Tensor;
  scheduler?: SchedulerName;
  negativePrompt?: string;
  /** Starting noise (1, C, h, w) instead of the seed's. */
  latents?: Tensor;
}

/** What `shapeVariations` returns: the source, one image per proxy, the object's region and the prompts. */
export interface ShapeVariationsResult {
  /** (1, 3, H, W) in [-1, 1]. */
  source: Tensor;
  /** One (1, 3, H, W) per proxy. */
  variations: Tensor[];
  /** The variation prompts, one per proxy. */
  prompts: string[];
  /** The object's region on the latent grid (0/1). */
  object: TokenRegion;
  /** The latents the batch started from (1, C, h, w), for a baseline from the same noise. */
  start: Tensor;
}

/**
 * Object-Shape Variations (Patashnik et al. 2023): prompt-mixing with proxy words and attention-based shape
 * localisation; one variation of the object's shape per proxy, the rest of the image kept.
 */
export function shapeVariations(sd: StableDiffusion, opts: ShapeVariationsOptions): ShapeVariationsResult {
  const steps = opts.steps ?? 50;
  const prompts = proxyPrompts(sd.tokenizer, opts.source, opts.word, opts.proxies);
  if (prompts.length === 0) throw new Error('shapeVariations: give at least one proxy word');
  if (opts.image && opts.latents) throw new Error('shapeVariations: give either image or latents, not both');
  const inv = opts.image ? ddimInvert(sd, { image: opts.image, prompt: opts.source, steps }) : undefined;
  const z = inv ? (inv.trajectory[steps] as Tensor) : (opts.latents ?? initialNoise(sd, opts.seed ?? 0));
  if (z.rank !== 4 || z.shape[0] !== 1)
    throw new Error(`shapeVariations: latents must be one row (1, C, h, w), got ${formatShape(z.shape)}`);
  const grid = [z.shape[2], z.shape[3]] as [number, number];
  const sampling = {
    steps,
    guidanceScale: opts.guidanceScale,
    negativePrompt: opts.negativePrompt,
    scheduler: inv ? ('ddim' as const) : opts.scheduler,
  };
  const pin = inv ? [followTrajectory(inv, 0)] : [];

  // 1. the source and its object region
  const store = new AttentionStore({ kinds: ['cross'] });
  sd.generate({ ...sampling, prompt: [opts.source], latents: z, controllers: [store, ...pin] });
  const th = opts.maskThreshold ?? OBJECT_MASK_THRESHOLD;
  const object = wordRegion(sd, store, opts.source, opts.word, grid, th, 0);

  // 2. the variations beside the source
  const variations = prompts.map((_, i) => i + 1);
  const at = wordIndex(opts.source, opts.word);
  const tokens = opts.proxyTokens === 'word' ? sd.tokenizer.keptTokenIndices(opts.source, at) : undefined;
  const controllers: Controller[] = [new PromptMixing({ variations, mixSteps: opts.mixSteps, tokens })];
  const loc = opts.localizationSteps ?? SHAPE_LOCALIZATION_STEPS;
  if (loc !== 0) {
    const c = shapeLocalization({ object, variations, steps: loc });
    c.checkLatentSize(grid);
    controllers.push(c);
  }
  const once = opts.backgroundBlend === false ? undefined : (opts.backgroundBlend ?? BACKGROUND_BLEND_STEP);
  if (once !== undefined && !(once >= 0 && once <= 1))
    throw new Error(`shapeVariations: backgroundBlend must be in [0, 1], got ${once}`);
  if (opts.localBlend !== undefined) checkStepBounds(opts.localBlend, 'shapeVariations: localBlend');
  if (once !== undefined || opts.localBlend !== undefined) {
    const [a, b] = opts.localBlend === undefined ? [0, 0] : boundsOf(opts.localBlend);
    const blendsAt = (step: number, n: number) =>
      step === Math.floor(n * (once ?? -1)) || (step >= Math.floor(n * a) && step < Math.floor(n * b));
    controllers.push(...backgroundBlend(sd, at, prompts, object, blendsAt, th));
  }
  const { images } = sd.generate({
    ...sampling,
    prompt: [opts.source, ...prompts],
    latents: concat(new Array(prompts.length + 1).fill(z), 0),
    controllers: [...controllers, ...pin, ...(opts.controllers ?? [])],
    onStep: opts.onStep,
  });
  const rows = images.split(prompts.length + 1, 0);
  return { source: rows[0]!, variations: rows.slice(1), prompts, object, start: z };
}

/** Index of `word` among the prompt's whitespace-separated words. */
function wordIndex(prompt: string, word: string): number {
  return prompt
    .split(/\s+/)
    .filter((w) => w.length > 0)
    .indexOf(word);
}

/** A word's region on the latent grid: its aggregated map (DAAM), min–max normalised, above `threshold`. */
function wordRegion(
  sd: StableDiffusion,
  store: AttentionStore,
  prompt: string,
  word: string | number,
  grid: [number, number],
  threshold: number,
  row: number,
): TokenRegion {
  const heat = aggregateCrossAttention(store.maps(), { latentSize: grid, prompt: row });
  const map = new GlobalHeatMap(sd.tokenizer, prompt, heat).wordHeatMap(word).toArray();
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of map) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
  const data = Uint8Array.from(map, (v) => (hi > lo && (v - lo) / (hi - lo) > threshold ? 1 : 0));
  if (!data.includes(1))
    throw new Error(`shapeVariations: the word '${word}' has no attention region in "${prompt}"`);
  return { size: grid, data };
}

/**
 * The reference's background blend after the steps `blendsAt` picks (the reference: step 35 of 50 only): each
 * variation row outside the dilated union of the source's and its own object region (the object word's
 * cross-attention so far) takes the source row's latents.
 */
function backgroundBlend(
  sd: StableDiffusion,
  word: number,
  prompts: readonly string[],
  object: TokenRegion,
  blendsAt: (step: number, numSteps: number) => boolean,
  threshold: number,
): Controller[] {
  const store = new AttentionStore({ kinds: ['cross'] });
  const blend: Controller = {
    name: 'ShapeVariationsBackgroundBlend',
    afterStep(s: StepState): Tensor | undefined {
      if (!blendsAt(s.step, s.numSteps)) return undefined;
      const [, c, h, w] = s.latents.shape as [number, number, number, number];
      const rows = s.latents.split(s.latents.shape[0] as number, 0);
      prompts.forEach((p, k) => {
        const own = wordRegion(sd, store, p, word, [h, w], threshold, k + 1);
        const union = Float32Array.from(own.data, (v, i) => Math.max(v, object.data[i]!));
        const m = new Tensor(maxPool3(union, h, w), [1, 1, h, w]).expand([1, c, h, w]);
        rows[k + 1] = rows[k + 1]!.mul(m).add(rows[0]!.mul(m.neg().add(1)));
      });
      return concat(rows, 0);
    },
  };
  return [store, blend];
}
