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
//   transformer / reuseTransformer → a UNet attention block's (Transformer2DModel's) residual branch, and
//               reusing it instead of computing it (block caching): the application level around a whole
//               attention block

import type { Tensor } from '../tensor/index.js';
import type { AttentionCall, AttentionLayerInfo, ResnetCall, StepInfo, TransformerCall } from './call.js';
import type { AttentionFunction } from './functions.js';

/** One linear projection's weight (out, in) and optional bias. */
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

/** The three branches of a transformer block: self-attention, cross-attention, feed-forward. */
export type BlockBranch = 'attn1' | 'attn2' | 'ff';

/**
 * A transformer block's token set reduced before some of its branches and restored after each (ToMe:
 * merge before, unmerge after). Made once per block from the block's input.
 */
export interface TokenReduction {
  /** The branches whose (normalised) input is reduced and whose output is restored. */
  readonly branches: readonly BlockBranch[];
  /** (batch, T, C) → (batch, T′, C). */
  reduce(x: Tensor): Tensor;
  /** (batch, T′, C′) → (batch, T, C′). */
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
  /**
   * Weight level: the layer's projection weights → the weights used for this call (LoRA, Custom Diffusion).
   */
  weights?(call: AttentionCall, w: ProjectionWeights): ProjectionWeights;
  /**
   * Feature level: Q, K, V after projection, split in heads → replaced or mixed (MasaCtrl, Plug-and-Play).
   */
  features?(call: AttentionCall, f: Features): Features;
  /** Logits (batch, heads, Tq, Tk), already scaled and masked. */
  scores?(call: AttentionCall, s: Tensor): Tensor;
  /** Probabilities (batch, heads, Tq, Tk). */
  map?(call: AttentionCall, p: Tensor): Tensor;
  /** The attention function for this call, or undefined to leave it. */
  fn?(call: AttentionCall): AttentionFunction | undefined;
  /** The layer's output (batch, Tq, channels) after the out projection. */
  output?(call: AttentionCall, out: Tensor): Tensor;
  /**
   * An output (batch, Tq, channels) to use instead of computing this call (attention caching): the layer
   * then skips its projections, its function and every hook but `output`, which runs on the reused value.
   * Return undefined to compute the layer. The first controller that returns one wins.
   */
  reuse?(call: AttentionCall): Tensor | undefined;
  /**
   * A token reduction for one transformer block, from its input x (batch, T, C); `call` is the block's
   * self-attention (attn1) layer. At most one controller may reduce a block's tokens.
   */
  tokens?(call: AttentionCall, x: Tensor): TokenReduction | undefined;
  /**
   * The residual branch (batch, C, h, w) of a UNet ResNet block: after conv2, before the skip is added
   * (where Plug-and-Play injects its features). Runs for every ResNet block of the denoiser, in controller
   * order; `appliesTo` does not filter it (it sees attention calls): select blocks by `call.path`.
   */
  resnet?(call: ResnetCall, h: Tensor): Tensor;
  /**
   * The residual branch (batch, C, h, w) of a UNet Transformer2DModel (`down_blocks.0.attentions.0`): after
   * `proj_out`, before the block's input is added. Runs in controller order for every such block of the
   * denoiser, also on a reused branch; `appliesTo` does not filter it: select blocks by `call.path`.
   */
  transformer?(call: TransformerCall, h: Tensor): Tensor;
  /**
   * A residual branch (batch, C, h, w) to use instead of computing a Transformer2DModel (block caching): the
   * block then skips its norm, projections and transformer blocks, so none of its attention hooks run;
   * `transformer` hooks run on the reused value. The first controller that returns one wins.
   */
  reuseTransformer?(call: TransformerCall): Tensor | undefined;
  /** Called before each denoising step with its step, timestep and latents. */
  beforeStep?(state: StepState): void;
  /** May return new latents (e.g. LocalBlend). */
  afterStep?(state: StepState): Tensor | undefined;
}

/** Everything an attention layer needs to know about the current forward pass. */
export interface AttentionContext extends StepInfo {
  controllers: readonly Controller[];
}

/**
 * How a model's entry point takes the context: in its trailing options object, `{ ctx }`, beside any other
 * options (UNet2DConditionModel.forward, AutoencoderKL.encode / decode, CLIPTextModel.forward, Attention).
 */
export interface HookOptions {
  /** Controllers and step facts for the attention layers; none: every layer runs plain. */
  ctx?: AttentionContext;
}

/**
 * The token reduction of a transformer block (the `tokens` hook of the controllers that apply to its
 * self-attention layer `info`), or undefined. Two reductions of one block are refused: each is made from
 * the block's own tokens, so they cannot be chained.
 */
export function blockTokenReduction(
  ctx: AttentionContext,
  info: AttentionLayerInfo,
  x: Tensor,
  layer: { size: readonly [number, number]; heads: number; headDim: number; keyTokens: number },
): TokenReduction | undefined {
  if (!ctx.controllers.some((c) => c.tokens)) return undefined;
  const { step, numSteps, timestep, batch } = ctx;
  const call: AttentionCall = {
    ...info,
    step,
    numSteps,
    timestep,
    batch,
    ...layer,
    queryTokens: x.shape[1] as number,
  };
  let found: { r: TokenReduction; by: string } | undefined;
  for (const c of ctx.controllers) {
    if (!c.tokens || (c.appliesTo && !c.appliesTo(call))) continue;
    const r = c.tokens(call, x);
    if (!r) continue;
    if (found) {
      throw new Error(
        `transformer block of ${call.path}: two token reductions, by ${found.by} and ${c.name}; ` +
          'restrict one of them with appliesTo()',
      );
    }
    found = { r, by: c.name };
  }
  return found?.r;
}
