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
import { ddimInvert, followTrajectory, type NullTextOptions, nullTextInversion } from './inversion.js';
import {
  type EditedPair,
  initialNoise,
  type SamplingOptions,
  type StableDiffusion,
} from './stable-diffusion.js';

/** `none` regenerates both prompts from the same latents with no attention control (the baseline). */
export type PromptEditMethod = 'replace' | 'refine' | 'reweight' | 'none';

/**
 * Options of `editPrompt` (Prompt-to-Prompt): prompts, the edit method and its step ranges, reweighting,
 * LocalBlend, and a real image with (null-text) inversion.
 */
export interface EditPromptOptions extends SamplingOptions {
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
  scheduler?: SchedulerName;
  negativePrompt?: string;
  /** Starting noise (1, C, h, w), × the scheduler's initial sigma as in `generate`; default seeded noise. */
  latents?: Tensor;
  /**
   * A real image (1, 3, H, W) in [-1, 1] to edit instead of a generated one: DDIM-inverted with the source
   * prompt (the scheduler is then DDIM). Without `nullText` the source row is pinned to the inversion
   * trajectory (so it is the image's own reconstruction); with it, null-text inversion (the reference's
   * null_text_w_ptp) optimises ∅_t per step and both rows sample with them.
   */
  image?: Tensor;
  nullText?: boolean | NullTextOptions;
  /**
   * With `nullText`: only the source row samples with the optimised ∅_t, the target with the plain
   * unconditional embedding (of `negativePrompt`, default ''). ∅_t is fitted to the source prompt's
   * reconstruction and can hold the old look against the edit: on Shapes scenes the colour swap drew the new
   * colour in 7 of 16 validation scenes with ∅_t on both rows, 16 of 16 with it on the source alone
   * (docs/feature-editing.md, "Null-text for the source only").
   */
  nullTextSourceOnly?: boolean;
}

/** What `editPrompt` returns: source and target images, the method used and the controllers that ran. */
export interface EditPromptResult extends EditedPair {
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

/**
 * Prompt-to-Prompt editing (Hertz et al. 2022): the source and target prompts generated from the same noise,
 * the target with the source's attention maps (replace, refine or reweight), optionally with LocalBlend;
 * `image` edits a real image through DDIM (or null-text) inversion.
 */
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
  if (opts.nullTextSourceOnly && !(opts.image && opts.nullText))
    throw new Error('editPrompt: nullTextSourceOnly applies to null-text inversion; give image and nullText');
  const real = opts.image ? invertForEdit(sd, opts) : undefined;
  const plainUncond = opts.nullTextSourceOnly ? sd.encodePrompt([opts.negativePrompt ?? '']) : undefined;
  const nullEmbeds =
    real?.nullEmbeds && plainUncond
      ? real.nullEmbeds.map((n) => concat([n, plainUncond], 0))
      : real?.nullEmbeds;
  const controllers = [
    ...(editor ? [editor] : []),
    ...(blend ? [blend] : []),
    ...(real?.pin ? [real.pin] : []),
    ...(opts.controllers ?? []),
  ];

  const z = real?.latents ?? opts.latents ?? initialNoise(sd, opts.seed ?? 0);
  if (z.rank !== 4 || z.shape[0] !== 1) {
    throw new Error(`editPrompt: latents must be one row (1, C, h, w), got ${formatShape(z.shape)}`);
  }
  const { images, latents } = sd.generate({
    prompt: prompts,
    negativePrompt: opts.negativePrompt,
    ...(nullEmbeds ? { negativePromptEmbeds: nullEmbeds } : {}),
    ...(real?.nullPooled ? { negativePooledPromptEmbeds: real.nullPooled } : {}),
    latents: concat([z, z], 0),
    steps: opts.steps,
    guidanceScale: opts.guidanceScale,
    scheduler: real ? 'ddim' : opts.scheduler,
    controllers,
    onStep: opts.onStep,
  });
  const [source, edited] = images.split(2, 0) as [Tensor, Tensor];
  return { source, target: edited, latents, method, controllers };
}

/** DDIM inversion of `opts.image` (and null-text inversion when asked) for editPrompt. */
function invertForEdit(
  sd: StableDiffusion,
  opts: EditPromptOptions,
): { latents: Tensor; pin?: Controller; nullEmbeds?: Tensor[]; nullPooled?: Tensor } {
  if (opts.scheduler && opts.scheduler !== 'ddim') {
    throw new Error(
      `editPrompt: editing an image needs the DDIM scheduler (its inversion), got '${opts.scheduler}'`,
    );
  }
  if (opts.latents) throw new Error('editPrompt: give either image or latents, not both');
  const steps = opts.steps ?? 50;
  const inv = ddimInvert(sd, { image: opts.image, prompt: opts.source, steps });
  const latents = inv.trajectory[steps] as Tensor;
  if (!opts.nullText) return { latents, pin: followTrajectory(inv, 0) };
  const nt = nullTextInversion(sd, inv, {
    ...(opts.nullText === true ? {} : opts.nullText),
    ...(opts.guidanceScale !== undefined ? { guidanceScale: opts.guidanceScale } : {}),
    ...(opts.negativePrompt !== undefined ? { negativePrompt: opts.negativePrompt } : {}),
  });
  return { latents, nullEmbeds: nt.nullEmbeds, ...(nt.nullPooled ? { nullPooled: nt.nullPooled } : {}) };
}

function isWordList(b: EditPromptOptions['blend']): b is readonly string[] {
  return Array.isArray(b);
}
