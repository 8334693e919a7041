// Prompt-to-Prompt editing of a generated image (Hertz et al. 2022): the source and the target prompt run as
// one batch from the same starting latents, with an attention editor (and optionally LocalBlend) between them.
// Reference defaults (google/prompt-to-prompt, predict.py): cross_replace_steps 0.8, self_replace_steps 0.4.

import type { Controller } from '../attention/hooks.js';
import { LocalBlend, type LocalBlendOptions } from '../methods/application/local-blend.js';
import type { AttentionEdit, AttentionEditOptions } from '../methods/map/attention-edit.js';
import { AttentionRefine } from '../methods/map/attention-refine.js';
import { AttentionReplace } from '../methods/map/attention-replace.js';
import { AttentionReweight } from '../methods/map/attention-reweight.js';
import type { CrossReplaceSteps, StepBounds } from '../methods/map/token-alignment.js';
import type { SchedulerName } from '../schedulers/index.js';
import { concat, formatShape, type Tensor } from '../tensor/index.js';
import { randn } from '../tensor/random.js';
import type { StableDiffusion, StepEvent } from './stable-diffusion.js';

/** `none` regenerates both prompts from the same latents with no attention control (the baseline). */
export type PromptEditMethod = 'replace' | 'refine' | 'reweight' | 'none';

export interface EditPromptOptions {
  source: string;
  /** Default: the source (a pure reweighting). */
  target?: string;
  /** Default 'auto': reweight when the prompts are equal, replace when they have as many words, else refine. */
  method?: PromptEditMethod | 'auto';
  crossReplaceSteps?: CrossReplaceSteps;
  selfReplaceSteps?: StepBounds;
  selfReplaceMaxTokens?: number;
  /** Word → weight; with replace or refine, applied on top of that edit (the reference's `prev_controller`). */
  reweight?: Readonly<Record<string, number>>;
  /** Words whose attention region may change (LocalBlend), or LocalBlend's options but the prompts. */
  blend?: readonly string[] | Omit<LocalBlendOptions, 'tokenizer' | 'prompts'>;
  seed?: number;
  steps?: number;
  guidanceScale?: number;
  scheduler?: SchedulerName;
  negativePrompt?: string;
  /** Starting latents (1, C, h, w), already scaled by the scheduler's initial sigma; default seeded noise. */
  latents?: Tensor;
  /** More controllers, run after the editor and the blend. */
  controllers?: readonly Controller[];
  onStep?: (e: StepEvent) => void;
}

export interface EditPromptResult {
  /** (1, 3, H, W) each, in [-1, 1]. */
  source: Tensor;
  target: Tensor;
  /** Final latents (2, C, h, w): source, target. */
  latents: Tensor;
  method: PromptEditMethod;
  /** The controllers that ran (editor, blend, extra), e.g. to read LocalBlend's last mask. */
  controllers: readonly Controller[];
}

/** The method 'auto' picks for a prompt pair. */
export function autoEditMethod(sd: StableDiffusion, source: string, target: string): PromptEditMethod {
  if (source === target) return 'reweight';
  const words = (p: string) => sd.tokenizer.wordTokens(p).length;
  return words(source) === words(target) ? 'replace' : 'refine';
}

/** The attention editor of a method for the prompts [source, target] (undefined for 'none'). */
export function promptEditor(
  sd: StableDiffusion,
  method: PromptEditMethod,
  opts: Omit<AttentionEditOptions, 'tokenizer'> & { reweight?: Readonly<Record<string, number>> },
): AttentionEdit | undefined {
  const base = { ...opts, tokenizer: sd.tokenizer };
  const edit =
    method === 'replace'
      ? new AttentionReplace(base)
      : method === 'refine'
        ? new AttentionRefine(base)
        : undefined;
  if (method === 'reweight' && !opts.reweight)
    throw new Error("editPrompt: method 'reweight' needs reweight");
  if (!opts.reweight || method === 'none') return edit;
  return new AttentionReweight({ ...base, equalizer: opts.reweight, controller: edit });
}

export function editPrompt(sd: StableDiffusion, opts: EditPromptOptions): EditPromptResult {
  const target = opts.target ?? opts.source;
  const method =
    !opts.method || opts.method === 'auto' ? autoEditMethod(sd, opts.source, target) : opts.method;
  const prompts = [opts.source, target];
  const editor = promptEditor(sd, method, {
    prompts,
    crossReplaceSteps: opts.crossReplaceSteps ?? 0.8,
    selfReplaceSteps: opts.selfReplaceSteps ?? 0.4,
    selfReplaceMaxTokens: opts.selfReplaceMaxTokens,
    reweight: opts.reweight,
  });
  const blend = opts.blend
    ? new LocalBlend({
        ...(isWordList(opts.blend) ? { words: opts.blend } : opts.blend),
        tokenizer: sd.tokenizer,
        prompts,
      })
    : undefined;
  const controllers = [...(editor ? [editor] : []), ...(blend ? [blend] : []), ...(opts.controllers ?? [])];

  const z = opts.latents ?? initialNoise(sd, opts.seed ?? 0, opts.scheduler);
  if (z.rank !== 4 || z.shape[0] !== 1) {
    throw new Error(`editPrompt: latents must be one row (1, C, h, w), got ${formatShape(z.shape)}`);
  }
  const { images, latents } = sd.generate({
    prompt: prompts,
    negativePrompt: opts.negativePrompt,
    latents: concat([z, z], 0),
    steps: opts.steps,
    guidanceScale: opts.guidanceScale,
    scheduler: opts.scheduler,
    controllers,
    onStep: opts.onStep,
  });
  const [source, edited] = images.split(2, 0) as [Tensor, Tensor];
  return { source, target: edited, latents, method, controllers };
}

/** Seeded Gaussian latents (1, C, h, w) of the model's default size, × the scheduler's initial sigma. */
export function initialNoise(sd: StableDiffusion, seed: number, scheduler?: SchedulerName): Tensor {
  const side = sd.unet.config.sampleSize;
  return randn([1, sd.unet.config.inChannels, side, side], seed).mul(sd.scheduler(scheduler).initNoiseSigma);
}

function isWordList(b: EditPromptOptions['blend']): b is readonly string[] {
  return Array.isArray(b);
}
