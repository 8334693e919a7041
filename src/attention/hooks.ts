// The five levels of the survey's taxonomy as hook points, and the controller that implements them.
//
//   weights   → Wq, Wk, Wv, Wout (LoRA, Custom Diffusion)               weight level
//   features  → Q, K, V split in heads (MasaCtrl, PnP, cross-frame)     feature level
//   scores    → Q·Kᵀ·scale before softmax (paint-with-words, masks)     map level (pre-softmax)
//   map       → softmax probabilities (Prompt-to-Prompt, stores)        map level
//   fn        → how attention is computed (softmax, flash, linear…)     function level
//   output / tokens / step callbacks (masks, ToMe, caching, guidance)   application level
//   resnet    → a UNet ResNet block's residual branch (PnP's feature injection): the feature level
//               extended from attention layers to the convolutional blocks between them

import type { Tensor } from '../tensor/index.js';
import type { AttentionCall, ResnetCall, StepInfo } from './call.js';
import type { AttentionFunction } from './functions.js';

export interface Projection {
  weight: Tensor;
  bias?: Tensor;
}

/** The projections of one attention layer, in PyTorch layout (out, in). */
export interface ProjectionWeights {
  q: Projection;
  k: Projection;
  v: Projection;
  out: Projection;
}

/** Q, K, V split in heads: each (batch, heads, tokens, headDim). */
export interface Features {
  q: Tensor;
  k: Tensor;
  v: Tensor;
}

/** A token set reduced before a block's branch and restored after it (ToMe). */
export interface TokenReduction {
  x: Tensor;
  restore(y: Tensor): Tensor;
}

/** What a step callback sees. */
export interface StepState extends StepInfo {
  latents: Tensor;
}

/**
 * A method: any subset of the hooks. Hooks run in the order of the controller list; each gets the
 * `AttentionCall` and returns the (possibly changed) value. Return the input unchanged to pass.
 */
export interface Controller {
  /** Shown in errors and logs. */
  readonly name: string;
  /** Layers this controller acts on (default: all). Probabilities are only computed where a
   *  `scores` or `map` hook applies, so a narrow filter keeps other layers fast. */
  appliesTo?(call: AttentionCall): boolean;
  weights?(call: AttentionCall, w: ProjectionWeights): ProjectionWeights;
  features?(call: AttentionCall, f: Features): Features;
  /** Logits (batch, heads, Tq, Tk), already scaled and masked. */
  scores?(call: AttentionCall, s: Tensor): Tensor;
  /** Probabilities (batch, heads, Tq, Tk). */
  map?(call: AttentionCall, p: Tensor): Tensor;
  /** The attention function for this call, or undefined to leave it. */
  fn?(call: AttentionCall): AttentionFunction | undefined;
  /** The layer's output (batch, Tq, channels) after the out projection. */
  output?(call: AttentionCall, out: Tensor): Tensor;
  /** Reduce the token set (batch, T, C) before a transformer block's branch; restore after. */
  tokens?(call: AttentionCall, x: Tensor): TokenReduction | undefined;
  /**
   * The residual branch (batch, C, h, w) of a UNet ResNet block: after conv2, before the skip is added
   * (where Plug-and-Play injects its features). Runs for every ResNet block of the denoiser, in controller
   * order; `appliesTo` does not filter it (it sees attention calls): select blocks by `call.path`.
   */
  resnet?(call: ResnetCall, h: Tensor): Tensor;
  beforeStep?(state: StepState): void;
  /** May return new latents (e.g. LocalBlend). */
  afterStep?(state: StepState): Tensor | undefined;
}

/** Everything an attention layer needs to know about the current forward pass. */
export interface AttentionContext extends StepInfo {
  controllers: readonly Controller[];
}
