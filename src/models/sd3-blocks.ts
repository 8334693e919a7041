// The pieces of SD3's MM-DiT (Esser et al. 2024, "Scaling Rectified Flow Transformers for High-Resolution Image
// Synthesis", Fig. 2), with diffusers 0.30.0's module names: the patch embedding with 2-D sin-cos positions
// cropped from a larger table, the timestep + pooled-text conditioning vector, adaptive layer norms, and the
// joint transformer block whose attention runs over image and text tokens as one sequence.

import { attend, type JointStream } from '../attention/attention.js';
import type { AttentionLayerInfo, BlockCall, TransformerCall } from '../attention/call.js';
import { type AttentionContext, blockTokenReduction, type HookOptions } from '../attention/hooks.js';
import { Conv2d, Linear, Module, ModuleList, Parameter } from '../nn/index.js';
import { concat, formatShape, layerNorm, linearChunks, Tensor } from '../tensor/index.js';
import { TimestepEmbedding, timestepEmbedding } from './unet-blocks.js';

/** LayerNorm without affine over the last axis, ε = 1e-6 (SD3's norms; the modulation supplies scale and shift). */
const norm = (x: Tensor): Tensor => layerNorm(x, null, null, 1e-6);

/** adaLN modulation: x · (1 + scale) + shift, with scale and shift (B, D) per batch row. */
function modulate(x: Tensor, shift: Tensor, scale: Tensor): Tensor {
  const [b, d] = shift.shape as [number, number];
  return x.mul(scale.add(1).reshape([b, 1, d])).add(shift.reshape([b, 1, d]));
}

/** gate (B, D) · x (B, T, D), the adaLN-Zero gate on a residual branch. */
function gated(gate: Tensor, x: Tensor): Tensor {
  const [b, d] = gate.shape as [number, number];
  return x.mul(gate.reshape([b, 1, d]));
}

/**
 * The 2-D sin-cos position table of MAE / DiT (diffusers' `get_2d_sincos_pos_embed`): for a grid × grid table,
 * the first half of each vector encodes the column, the second half the row, each as [sin(p ω), cos(p ω)] with
 * ω_i = 10000^(−i/(D/4)) and positions p = index · baseSize / grid. Returns (grid², D), rows in raster order.
 */
export function sinCosPositions(dim: number, grid: number, baseSize: number): Tensor {
  if (dim % 4 !== 0) throw new Error(`sinCosPositions: the embedding width ${dim} must be a multiple of 4`);
  const quarter = dim / 4;
  const omega = Array.from({ length: quarter }, (_, i) => 1 / 10000 ** (i / quarter));
  // positions in float32 as numpy computes them: arange / (grid / baseSize) / interpolation_scale (1)
  const step = Math.fround(grid / baseSize);
  const pos = Array.from({ length: grid }, (_, i) => Math.fround(i / step));
  const out = new Float32Array(grid * grid * dim);
  for (let r = 0; r < grid; r++) {
    for (let c = 0; c < grid; c++) {
      const row = out.subarray((r * grid + c) * dim, (r * grid + c + 1) * dim);
      for (const [half, p] of [
        [0, pos[c]!],
        [1, pos[r]!],
      ] as const) {
        for (let i = 0; i < quarter; i++) {
          row[half * 2 * quarter + i] = Math.sin(p * omega[i]!);
          row[half * 2 * quarter + quarter + i] = Math.cos(p * omega[i]!);
        }
      }
    }
  }
  return new Tensor(out, [grid * grid, dim]);
}

/**
 * The position table as a parameter: the 2-D sin-cos values, computed on first read unless a checkpoint set the
 * table before (so building a model to load it allocates nothing here).
 */
class SinCosTable extends Parameter {
  #filled = false;
  constructor(
    readonly dim: number,
    readonly grid: number,
    readonly baseSize: number,
  ) {
    super([1, grid * grid, dim]);
  }
  override get value(): Tensor {
    if (!this.#filled) this.value = sinCosPositions(this.dim, this.grid, this.baseSize).reshape(this.shape);
    return super.value;
  }
  override set value(t: Tensor) {
    super.value = t;
    this.#filled = true;
  }
}

/**
 * `pos_embed`: a p × p convolution with stride p turns the latent into tokens (B, h·w, D), plus the 2-D sin-cos
 * positions of the centred h × w crop of a posEmbedMaxSize² table (SD3's cropping, so one table serves every
 * resolution). The table is a checkpoint entry (`pos_embed.pos_embed`, (1, max², D)).
 */
export class PatchEmbed extends Module {
  proj: Conv2d;
  pos_embed: Parameter;
  constructor(
    readonly patchSize: number,
    inChannels: number,
    readonly dim: number,
    readonly posEmbedMaxSize: number,
    baseSize: number,
  ) {
    super();
    this.proj = new Conv2d(inChannels, dim, patchSize, { stride: patchSize });
    this.pos_embed = new SinCosTable(dim, posEmbedMaxSize, baseSize);
  }

  /** Latent (B, C, H, W) → tokens (B, h·w, D) with positions, h = H/p, w = W/p. */
  forward(latent: Tensor): Tensor {
    const [b, , H, W] = latent.shape as [number, number, number, number];
    const [h, w] = [H / this.patchSize, W / this.patchSize];
    const max = this.posEmbedMaxSize;
    if (h > max || w > max) {
      throw new Error(
        `sd3 transformer: a ${H}×${W} latent is ${h}×${w} patches, more than pos_embed_max_size (${max}) a side; ` +
          'generate at a smaller size',
      );
    }
    const tokens = this.proj
      .forward(latent)
      .reshape([b, this.dim, h * w])
      .transpose(1, 2); // (B, h·w, D)
    const [top, left] = [Math.floor((max - h) / 2), Math.floor((max - w) / 2)];
    const crop = this.pos_embed.value
      .reshape([max, max, this.dim])
      .slice(0, top, top + h)
      .slice(1, left, left + w)
      .reshape([1, h * w, this.dim]); // (1, h·w, D)
    return tokens.add(crop);
  }
}

/** PixArt-α's caption projection as SD3 uses it for the pooled text: linear, SiLU, linear. */
export class TextProjection extends Module {
  linear_1: Linear;
  linear_2: Linear;
  constructor(inFeatures: number, hidden: number) {
    super();
    this.linear_1 = new Linear(inFeatures, hidden);
    this.linear_2 = new Linear(hidden, hidden);
  }
  /** The pooled text (B, pooledDim) → (B, D). */
  forward(x: Tensor): Tensor {
    return this.linear_2.forward(this.linear_1.forward(x).silu());
  }
}

/** `time_text_embed`: the conditioning vector c = MLP(sinusoid₂₅₆(t)) + MLP(pooled text) (SD3, Fig. 2a). */
export class CombinedTimestepTextProjEmbeddings extends Module {
  timestep_embedder: TimestepEmbedding;
  text_embedder: TextProjection;
  constructor(dim: number, pooledDim: number) {
    super();
    this.timestep_embedder = new TimestepEmbedding(256, dim);
    this.text_embedder = new TextProjection(pooledDim, dim);
  }
  /** t (B), pooled (B, pooledDim) → (B, D). */
  forward(t: Tensor, pooled: Tensor): Tensor {
    const tEmb = this.timestep_embedder.forward(timestepEmbedding(t, 256, true, 0)); // cos first, shift 0
    return tEmb.add(this.text_embedder.forward(pooled));
  }
}

/** adaLN-Zero (DiT, Peebles & Xie 2023): six modulation vectors from c; returns the modulated norm and the rest. */
export class AdaLayerNormZero extends Module {
  linear: Linear;
  constructor(dim: number) {
    super();
    this.linear = new Linear(dim, 6 * dim);
  }
  /** x (B, T, D), c (B, D) → norm(x)·(1 + scale) + shift, and the attention gate and feed-forward modulation. */
  forward(
    x: Tensor,
    c: Tensor,
  ): { x: Tensor; gateMsa: Tensor; shiftMlp: Tensor; scaleMlp: Tensor; gateMlp: Tensor } {
    const { weight, bias } = this.linear;
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = linearChunks(
      c.silu(),
      weight.value,
      bias?.value ?? null,
      6,
    ) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
    return { x: modulate(norm(x), shiftMsa, scaleMsa), gateMsa, shiftMlp, scaleMlp, gateMlp };
  }
}

/** Continuous adaLN (no gate): scale and shift from c (diffusers' `AdaLayerNormContinuous`, scale first). */
export class AdaLayerNormContinuous extends Module {
  linear: Linear;
  constructor(dim: number, conditioningDim: number) {
    super();
    this.linear = new Linear(conditioningDim, 2 * dim);
  }
  /** x (B, T, D), c (B, D) → norm(x)·(1 + scale) + shift. */
  forward(x: Tensor, c: Tensor): Tensor {
    const { weight, bias } = this.linear;
    const [scale, shift] = linearChunks(c.silu(), weight.value, bias?.value ?? null, 2) as [Tensor, Tensor];
    return modulate(norm(x), shift, scale);
  }
}

/** `ff.net.0`: the linear before the tanh-approximated GELU (diffusers' `GELU` module, `proj`). */
export class GeluProj extends Module {
  proj: Linear;
  constructor(dim: number, inner: number) {
    super();
    this.proj = new Linear(dim, inner);
  }
}
/** `ff.net`: 0 is a linear with tanh-approximated GELU (`net.0.proj`), 1 dropout, 2 the output linear. */
export class GeluFeedForwardNet extends Module {
  '0': GeluProj;
  '2': Linear;
  constructor(dim: number, inner: number) {
    super();
    this['0'] = new GeluProj(dim, inner);
    this['2'] = new Linear(inner, dim);
  }
}

/** SD3's feed-forward: D → 4D, GELU (tanh), → D. */
export class GeluFeedForward extends Module {
  net: GeluFeedForwardNet;
  constructor(dim: number) {
    super();
    this.net = new GeluFeedForwardNet(dim, 4 * dim);
  }
  /** x (B, T, D) → (B, T, D). */
  forward(x: Tensor): Tensor {
    return this.net['2'].forward(this.net['0'].proj.forward(x).gelu('tanh'));
  }
}

/**
 * diffusers' `Attention` as MM-DiT configures it: image projections to_q / to_k / to_v / to_out.0, text
 * projections add_q_proj / add_k_proj / add_v_proj / to_add_out (none in a context-pre-only block), all with
 * bias. One call of kind 'joint' attends over [image; text].
 */
export class JointAttention extends Module {
  /** Set once the model is built (see `assignAttentionLayers`). */
  info: AttentionLayerInfo = { path: '', kind: 'joint', place: 'mid', index: 0 };
  to_q: Linear;
  to_k: Linear;
  to_v: Linear;
  to_out: ModuleList<Linear>;
  add_q_proj: Linear;
  add_k_proj: Linear;
  add_v_proj: Linear;
  to_add_out?: Linear;
  constructor(
    dim: number,
    readonly heads: number,
    headDim: number,
    contextPreOnly: boolean,
  ) {
    super();
    const inner = heads * headDim;
    this.to_q = new Linear(dim, inner);
    this.to_k = new Linear(dim, inner);
    this.to_v = new Linear(dim, inner);
    this.to_out = new ModuleList([new Linear(inner, dim)]);
    this.add_q_proj = new Linear(dim, inner);
    this.add_k_proj = new Linear(dim, inner);
    this.add_v_proj = new Linear(dim, inner);
    if (!contextPreOnly) this.to_add_out = new Linear(inner, dim);
  }

  /** image (B, N, D), text (B, M, D), the image's (h, w) grid → image out (B, N, D) and text out (B, M, ·). */
  forward(
    image: Tensor,
    text: Tensor,
    size: readonly [number, number],
    { ctx }: HookOptions = {},
  ): { image: Tensor; text: Tensor } {
    const p = (l: Linear) => ({ weight: l.weight.value, bias: l.bias?.value });
    const joint: JointStream = {
      x: text,
      weights: {
        q: p(this.add_q_proj),
        k: p(this.add_k_proj),
        v: p(this.add_v_proj),
        ...(this.to_add_out && { out: p(this.to_add_out) }),
      },
    };
    const out = attend({
      info: this.info,
      ctx,
      x: image,
      heads: this.heads,
      weights: { q: p(this.to_q), k: p(this.to_k), v: p(this.to_v), out: p(this.to_out.at(0)) },
      size,
      joint,
    }); // (B, N + M, D)
    const n = image.shape[1] as number;
    return { image: out.slice(1, 0, n), text: out.slice(1, n) };
  }
}

/**
 * One MM-DiT block (SD3, Fig. 2b; diffusers' `JointTransformerBlock`): each stream has its own adaLN-Zero
 * modulation and feed-forward, and both meet in one joint attention. The last block is "context pre-only": its
 * text stream only feeds the attention (continuous adaLN, no text output, feed-forward or to_add_out).
 *
 * The UNet's block-level hooks reach it as they reach a UNet's attention block: token merging (`tokens`, on the
 * image stream before the joint attention and the feed-forward, as ToMe on a UNet's self-attention), and block
 * caching (`transformer` / `reuseTransformer`) on the block's residual branch, here both streams' updates packed
 * as (B, N + M, D), image tokens first (N alone for the context-pre-only block).
 */
export class JointTransformerBlock extends Module {
  /** Path, place and ordinal of the block among the model's blocks (set by SD3Transformer2DModel). */
  info: Pick<BlockCall, 'path' | 'place' | 'index'> = { path: '', place: 'mid', index: 0 };
  norm1: AdaLayerNormZero;
  norm1_context: AdaLayerNormZero | AdaLayerNormContinuous;
  attn: JointAttention;
  ff: GeluFeedForward;
  ff_context?: GeluFeedForward;
  constructor(
    dim: number,
    heads: number,
    headDim: number,
    readonly contextPreOnly: boolean,
  ) {
    super();
    this.norm1 = new AdaLayerNormZero(dim);
    this.norm1_context = contextPreOnly ? new AdaLayerNormContinuous(dim, dim) : new AdaLayerNormZero(dim);
    this.attn = new JointAttention(dim, heads, headDim, contextPreOnly);
    this.ff = new GeluFeedForward(dim);
    if (!contextPreOnly) this.ff_context = new GeluFeedForward(dim);
  }

  /** x (B, N, D) image tokens, text (B, M, D), c (B, D) → the new streams (text undefined after the last block). */
  forward(
    x: Tensor,
    text: Tensor,
    c: Tensor,
    size: readonly [number, number],
    opts: HookOptions = {},
  ): { x: Tensor; text?: Tensor } {
    if (x.rank !== 3 || text.rank !== 3) {
      throw new Error(
        `sd3 block: expected image (B, N, D) and text (B, M, D), got ${formatShape(x.shape)} and ${formatShape(text.shape)}`,
      );
    }
    const { ctx } = opts;
    if (!ctx?.controllers.some((k) => k.transformer || k.reuseTransformer))
      return this.#streams(x, text, c, size, opts);
    return this.#cached(x, text, c, size, ctx);
  }

  /** Block hooks on the residual branch (B, N + M, D): a reused branch skips the block; hooks see either. */
  #cached(
    x: Tensor,
    text: Tensor,
    c: Tensor,
    size: readonly [number, number],
    ctx: AttentionContext,
  ): { x: Tensor; text?: Tensor } {
    const { step, numSteps, timestep, batch } = ctx;
    const call: TransformerCall = { ...this.info, size, step, numSteps, timestep, batch };
    const n = x.shape[1] as number;
    const expected = [x.shape[0], n + (this.contextPreOnly ? 0 : (text.shape[1] as number)), x.shape[2]];
    let branch: Tensor | undefined;
    for (const k of ctx.controllers) {
      branch = k.reuseTransformer?.(call);
      if (!branch) continue;
      if (branch.shape.some((d, i) => d !== expected[i]) || branch.rank !== 3)
        throw new Error(
          `${this.info.path}: ${k.name} reused a branch of shape ${formatShape(branch.shape)}, expected ` +
            `[${expected.join(', ')}] (image then text tokens)`,
        );
      break;
    }
    const out = branch ? undefined : this.#streams(x, text, c, size, { ctx });
    const computed = out && (out.text ? concat([out.x.sub(x), out.text.sub(text)], 1) : out.x.sub(x));
    let y = (branch ?? computed) as Tensor;
    for (const k of ctx.controllers) if (k.transformer) y = k.transformer(call, y);
    if (out && y === computed) return out; // computed and left as it is: the streams themselves, bit for bit
    return { x: x.add(y.slice(1, 0, n)), ...(this.contextPreOnly ? {} : { text: text.add(y.slice(1, n)) }) };
  }

  /** The block itself: joint attention and feed-forwards of both streams (token merging on the image's). */
  #streams(
    x: Tensor,
    text: Tensor,
    c: Tensor,
    size: readonly [number, number],
    opts: HookOptions,
  ): { x: Tensor; text?: Tensor } {
    // joint attention, each stream modulated by its adaLN
    const img = this.norm1.forward(x, c);
    const ctxNorm = this.norm1_context.forward(text, c);
    const txtIn = ctxNorm instanceof Tensor ? ctxNorm : ctxNorm.x;
    // token merging (ToMe) of the image tokens: 'attn1' the joint attention's image queries, 'ff' the feed-forward
    const { heads } = this.attn;
    const headDim = (this.attn.to_q.weight.shape[0] as number) / heads;
    const keyTokens = (x.shape[1] as number) + (text.shape[1] as number);
    const r =
      opts.ctx && blockTokenReduction(opts.ctx, this.attn.info, img.x, { size, heads, headDim, keyTokens });
    const reduce = (b: 'attn1' | 'ff', t: Tensor) => (r?.branches.includes(b) ? r.reduce(t) : t);
    const restore = (b: 'attn1' | 'ff', t: Tensor) => (r?.branches.includes(b) ? r.restore(t) : t);
    const attn = this.attn.forward(reduce('attn1', img.x), txtIn, size, opts);

    // image stream: gated attention residual, then the gated, modulated feed-forward
    x = x.add(gated(img.gateMsa, restore('attn1', attn.image)));
    const ffIn = reduce('ff', modulate(norm(x), img.shiftMlp, img.scaleMlp));
    x = x.add(gated(img.gateMlp, restore('ff', this.ff.forward(ffIn))));
    if (ctxNorm instanceof Tensor || !this.ff_context) return { x };

    // text stream: the same with its own modulation
    text = text.add(gated(ctxNorm.gateMsa, attn.text));
    const ff = this.ff_context.forward(modulate(norm(text), ctxNorm.shiftMlp, ctxNorm.scaleMlp));
    return { x, text: text.add(gated(ctxNorm.gateMlp, ff)) };
  }
}
