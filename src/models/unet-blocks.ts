// The building blocks of Stable Diffusion's UNet and VAE, with diffusers' parameter names:
// timestep embedding, ResnetBlock2D, Downsample2D / Upsample2D, Transformer2DModel and
// BasicTransformerBlock (self-attention, cross-attention, GEGLU feed-forward), and the UNet's down / up
// blocks (one class) and middle block.

import type { BlockCall, ResnetCall, TransformerCall } from '../attention/call.js';
import { type AttentionContext, type BlockBranch, blockTokenReduction } from '../attention/hooks.js';
import { Attention } from '../attention/index.js';
import { Conv2d, GroupNorm, LayerNorm, Linear, Module, ModuleList } from '../nn/index.js';
import { concat, interpolate, linearChunks, Tensor } from '../tensor/index.js';
import { gatedForward } from './subgraph-gate.js';

// timestep embedding

/**
 * Sinusoidal embedding of timesteps (DDPM / "Attention is all you need"): for i < dim/2,
 * freq_i = exp(−ln(10000)·i / (dim/2 − freqShift)); emb = [sin(t·freq), cos(t·freq)] (cos first when
 * flipSinToCos). `t` is a float32 tensor (B,), so the embedding is part of a traced graph.
 */
export function timestepEmbedding(t: Tensor, dim: number, flipSinToCos: boolean, freqShift: number): Tensor {
  const half = Math.floor(dim / 2);
  const freqs = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    // float32 arithmetic step by step, as the reference computes it
    const exponent = Math.fround(Math.fround(Math.fround(-Math.log(10000)) * i) / (half - freqShift));
    freqs[i] = Math.exp(exponent);
  }
  const args = t.reshape([-1, 1]).mul(new Tensor(freqs, [1, half])); // (B, half)
  const [sin, cos] = [args.sin(), args.cos()];
  return concat(flipSinToCos ? [cos, sin] : [sin, cos], 1);
}

export class TimestepEmbedding extends Module {
  linear_1: Linear;
  linear_2: Linear;
  constructor(inChannels: number, timeEmbedDim: number) {
    super();
    this.linear_1 = new Linear(inChannels, timeEmbedDim);
    this.linear_2 = new Linear(timeEmbedDim, timeEmbedDim);
  }
  forward(x: Tensor): Tensor {
    return this.linear_2.forward(this.linear_1.forward(x).silu());
  }
}

// ResNet block

export interface ResnetConfig {
  inChannels: number;
  outChannels: number;
  /** Channels of the time embedding; undefined for the VAE (no time conditioning). */
  tembChannels?: number;
  groups: number;
  eps: number;
  outputScaleFactor?: number;
}

/** Static facts about one ResNet or Transformer2DModel block, set once the model is built (see `assignBlocks`). */
export type BlockInfo = Pick<BlockCall, 'path' | 'place' | 'index'>;

export class ResnetBlock2D extends Module {
  info: BlockInfo = { path: '', place: 'mid', index: 0 };
  norm1: GroupNorm;
  conv1: Conv2d;
  time_emb_proj?: Linear;
  norm2: GroupNorm;
  conv2: Conv2d;
  conv_shortcut?: Conv2d;
  readonly outputScaleFactor: number;

  constructor(c: ResnetConfig) {
    super();
    this.norm1 = new GroupNorm(c.groups, c.inChannels, c.eps);
    this.conv1 = new Conv2d(c.inChannels, c.outChannels, 3, { padding: 1 });
    if (c.tembChannels !== undefined) this.time_emb_proj = new Linear(c.tembChannels, c.outChannels);
    this.norm2 = new GroupNorm(c.groups, c.outChannels, c.eps);
    this.conv2 = new Conv2d(c.outChannels, c.outChannels, 3, { padding: 1 });
    if (c.inChannels !== c.outChannels) this.conv_shortcut = new Conv2d(c.inChannels, c.outChannels, 1);
    this.outputScaleFactor = c.outputScaleFactor ?? 1;
  }

  /**
   * `ctx` hands the residual branch to the controllers' `resnet` hooks (UNet blocks only). Without such a hook
   * the block runs as one cached subgraph session (models/subgraph-gate.ts).
   */
  forward(x: Tensor, temb?: Tensor, ctx?: AttentionContext): Tensor {
    const t = this.time_emb_proj && temb;
    return gatedForward({
      module: this,
      name: this.info.path || 'resnet',
      inputs: t ? [x, t] : [x],
      ctx,
      blockHooks: ['resnet'],
      eager: (c) => [this.#forward(x, t || undefined, c)],
    })[0] as Tensor;
  }

  #forward(x: Tensor, temb?: Tensor, ctx?: AttentionContext): Tensor {
    let h = this.conv1.forward(this.norm1.forward(x).silu());
    if (this.time_emb_proj && temb) {
      const t = this.time_emb_proj.forward(temb.silu()); // (B, C)
      h = h.add(t.reshape([t.shape[0] as number, -1, 1, 1]));
    }
    h = this.conv2.forward(this.norm2.forward(h).silu());
    if (ctx?.controllers.some((c) => c.resnet)) h = this.#resnetHooks(h, ctx);
    const skip = this.conv_shortcut ? this.conv_shortcut.forward(x) : x;
    const out = skip.add(h);
    return this.outputScaleFactor === 1 ? out : out.div(this.outputScaleFactor);
  }

  #resnetHooks(h: Tensor, ctx: AttentionContext): Tensor {
    const call: ResnetCall = blockCall(this.info, h, ctx);
    for (const c of ctx.controllers) if (c.resnet) h = c.resnet(call, h);
    return h;
  }
}

/** The hook record of a block from its static info, its output h (B, C, h, w) and the forward pass. */
function blockCall(info: BlockInfo, h: Tensor, ctx: AttentionContext): BlockCall {
  const { step, numSteps, timestep, batch } = ctx;
  return { ...info, size: [h.shape[2] as number, h.shape[3] as number], step, numSteps, timestep, batch };
}

/**
 * Gives every ResNet block and Transformer2DModel of a model its module path, place and ordinal among the
 * blocks of its kind (declaration = forward order).
 */
export function assignBlocks(model: Module, placeOf: (path: string) => BlockInfo['place']): void {
  let resnets = 0;
  let transformers = 0;
  for (const [path, m] of model.namedModules()) {
    if (m instanceof ResnetBlock2D) m.info = { path, place: placeOf(path), index: resnets++ };
    if (m instanceof Transformer2DModel) m.info = { path, place: placeOf(path), index: transformers++ };
  }
}

// resampling

export class Downsample2D extends Module {
  conv: Conv2d;
  /** padding 0 means "pad right and bottom by one, then convolve" (the VAE's convention). */
  readonly padding: number;
  constructor(channels: number, padding: number) {
    super();
    this.padding = padding;
    this.conv = new Conv2d(channels, channels, 3, { stride: 2, padding });
  }
  forward(x: Tensor): Tensor {
    return gatedForward({
      module: this,
      name: 'downsample',
      inputs: [x],
      eager: () => [this.conv.forward(this.padding === 0 ? x.pad([0, 0, 0, 0, 0, 0, 1, 1]) : x)],
    })[0] as Tensor;
  }
}

export class Upsample2D extends Module {
  conv: Conv2d;
  constructor(channels: number) {
    super();
    this.conv = new Conv2d(channels, channels, 3, { padding: 1 });
  }
  /** Nearest-neighbour ×2 (or to `size`, to match a skip connection), then a 3×3 conv. */
  forward(x: Tensor, size?: readonly [number, number]): Tensor {
    const up = () => (size ? interpolate(x, { size: [size[0], size[1]] }) : interpolate(x, { scale: 2 }));
    return gatedForward({
      module: this,
      name: 'upsample',
      key: size ? size.join('x') : '',
      inputs: [x],
      eager: () => [this.conv.forward(up())],
    })[0] as Tensor;
  }
}

// transformer

/** GEGLU (Shazeer 2020): proj to 2·inner, then hidden ⊙ gelu(gate). */
export class GEGLU extends Module {
  proj: Linear;
  constructor(dim: number, inner: number) {
    super();
    this.proj = new Linear(dim, inner * 2);
  }
  forward(x: Tensor): Tensor {
    const { weight, bias } = this.proj;
    const [hidden, gate] = linearChunks(x, weight.value, bias?.value ?? null, 2) as [Tensor, Tensor];
    return hidden.mul(gate.gelu());
  }
}

/** `ff.net`: index 0 is GEGLU, 1 is dropout (no parameters), 2 the output Linear. */
class FeedForwardNet extends Module {
  '0': GEGLU;
  '2': Linear;
  constructor(dim: number, inner: number) {
    super();
    this['0'] = new GEGLU(dim, inner);
    this['2'] = new Linear(inner, dim);
  }
}

export class FeedForward extends Module {
  net: FeedForwardNet;
  constructor(dim: number, mult = 4) {
    super();
    this.net = new FeedForwardNet(dim, dim * mult);
  }
  forward(x: Tensor): Tensor {
    // no hook inside: a cached subgraph unless gradients are recorded (models/subgraph-gate.ts)
    return gatedForward({
      module: this,
      name: 'ff',
      inputs: [x],
      eager: () => [this.net['2'].forward(this.net['0'].forward(x))],
    })[0] as Tensor;
  }
}

export interface TransformerConfig {
  heads: number;
  headDim: number;
  inChannels: number;
  numLayers: number;
  crossAttentionDim: number;
  groups: number;
  useLinearProjection: boolean;
  onlyCrossAttention: boolean;
}

export class BasicTransformerBlock extends Module {
  norm1: LayerNorm;
  attn1: Attention;
  norm2: LayerNorm;
  attn2: Attention;
  norm3: LayerNorm;
  ff: FeedForward;
  readonly onlyCrossAttention: boolean;

  constructor(dim: number, c: TransformerConfig) {
    super();
    this.onlyCrossAttention = c.onlyCrossAttention;
    this.norm1 = new LayerNorm(dim);
    this.attn1 = new Attention(
      {
        queryDim: dim,
        heads: c.heads,
        dimHead: c.headDim,
        crossAttentionDim: c.onlyCrossAttention ? c.crossAttentionDim : undefined,
      },
      c.onlyCrossAttention ? 'cross' : 'self',
    );
    this.norm2 = new LayerNorm(dim);
    this.attn2 = new Attention(
      { queryDim: dim, heads: c.heads, dimHead: c.headDim, crossAttentionDim: c.crossAttentionDim },
      'cross',
    );
    this.norm3 = new LayerNorm(dim);
    this.ff = new FeedForward(dim);
  }

  /** x: (B, HW, C) image tokens; context: (B, Tk, Cc) text states. */
  forward(x: Tensor, context: Tensor, size: readonly [number, number], ctx?: AttentionContext): Tensor {
    const selfContext = this.onlyCrossAttention ? context : undefined;
    // token reduction (ToMe): made once from the block's input; reduces the branches it names, restores after
    const heads = this.attn1.heads;
    const headDim = (this.attn1.to_q.weight.shape[0] as number) / heads;
    const keyTokens = (selfContext ?? x).shape[1] as number;
    const r = ctx && blockTokenReduction(ctx, this.attn1.info, x, { size, heads, headDim, keyTokens });
    const reduce = (b: BlockBranch, t: Tensor) => (r?.branches.includes(b) ? r.reduce(t) : t);
    const restore = (b: BlockBranch, t: Tensor) => (r?.branches.includes(b) ? r.restore(t) : t);
    // self-attention (or cross-attention only)
    const a1 = this.attn1.forward(reduce('attn1', this.norm1.forward(x)), {
      context: selfContext,
      size,
      ctx,
    });
    let h = restore('attn1', a1).add(x);
    // cross-attention
    h = restore(
      'attn2',
      this.attn2.forward(reduce('attn2', this.norm2.forward(h)), { context, size, ctx }),
    ).add(h);
    // feed-forward
    return restore('ff', this.ff.forward(reduce('ff', this.norm3.forward(h)))).add(h);
  }
}

export class Transformer2DModel extends Module {
  info: BlockInfo = { path: '', place: 'mid', index: 0 };
  norm: GroupNorm;
  proj_in: Conv2d | Linear;
  transformer_blocks: ModuleList<BasicTransformerBlock>;
  proj_out: Conv2d | Linear;
  readonly useLinearProjection: boolean;

  constructor(c: TransformerConfig) {
    super();
    const inner = c.heads * c.headDim;
    this.useLinearProjection = c.useLinearProjection;
    this.norm = new GroupNorm(c.groups, c.inChannels, 1e-6);
    this.proj_in = c.useLinearProjection
      ? new Linear(c.inChannels, inner)
      : new Conv2d(c.inChannels, inner, 1);
    this.transformer_blocks = new ModuleList(
      Array.from({ length: c.numLayers }, () => new BasicTransformerBlock(inner, c)),
    );
    this.proj_out = c.useLinearProjection
      ? new Linear(inner, c.inChannels)
      : new Conv2d(inner, c.inChannels, 1);
  }

  /**
   * The block's output. Where no hook applies to it (none of its attention calls, no block hook), it runs as
   * one cached subgraph session (models/subgraph-gate.ts).
   */
  forward(x: Tensor, context: Tensor, ctx?: AttentionContext): Tensor {
    return gatedForward({
      module: this,
      name: this.info.path || 'transformer',
      inputs: [x, context],
      ctx,
      blockHooks: ['transformer', 'reuseTransformer'],
      eager: (c) => [this.#forward(x, context, c)],
    })[0] as Tensor;
  }

  #forward(x: Tensor, context: Tensor, ctx?: AttentionContext): Tensor {
    if (!ctx?.controllers.some((c) => c.transformer || c.reuseTransformer))
      return this.#branch(x, context, ctx).add(x);
    // block hooks: a reused branch (block caching) skips the computation; `transformer` hooks see either
    const call: TransformerCall = blockCall(this.info, x, ctx);
    let y: Tensor | undefined;
    for (const c of ctx.controllers) {
      y = c.reuseTransformer?.(call);
      if (!y) continue;
      if (y.shape.some((d, i) => d !== x.shape[i]))
        throw new Error(
          `${this.info.path}: ${c.name} reused a branch of shape [${y.shape.join(', ')}], ` +
            `expected [${x.shape.join(', ')}]`,
        );
      break;
    }
    y ??= this.#branch(x, context, ctx);
    for (const c of ctx.controllers) if (c.transformer) y = c.transformer(call, y);
    return y.add(x);
  }

  /** The residual branch: norm, proj_in, transformer blocks, proj_out (B, C, H, W). */
  #branch(x: Tensor, context: Tensor, ctx?: AttentionContext): Tensor {
    const [b, , h, w] = x.shape as [number, number, number, number];
    let y = this.norm.forward(x);
    // (B, C, H, W) → (B, HW, inner)
    if (this.useLinearProjection) {
      y = this.proj_in.forward(y.permute([0, 2, 3, 1]).reshape([b, h * w, -1]));
    } else {
      y = this.proj_in.forward(y);
      y = y.permute([0, 2, 3, 1]).reshape([b, h * w, -1]);
    }
    for (const block of this.transformer_blocks) y = block.forward(y, context, [h, w], ctx);
    // (B, HW, inner) → (B, C, H, W)
    if (this.useLinearProjection) {
      return this.proj_out.forward(y).reshape([b, h, w, -1]).permute([0, 3, 1, 2]);
    }
    return this.proj_out.forward(y.reshape([b, h, w, -1]).permute([0, 3, 1, 2]));
  }
}

// UNet blocks

/** One down or up block of the UNet (diffusers' DownBlock2D, CrossAttnDownBlock2D, UpBlock2D, CrossAttnUpBlock2D). */
export interface UNetBlockConfig {
  inChannels: number;
  outChannels: number;
  /** Up blocks only: the previous block's output channels. Its presence makes the block an up block. */
  prevOutputChannels?: number;
  tembChannels: number;
  numLayers: number;
  groups: number;
  eps: number;
  /** The Transformer2DModel after each resnet (the CrossAttn… blocks); undefined for plain blocks. */
  transformer?: TransformerConfig;
  /** Whether the block ends with a Downsample2D (down) or an Upsample2D (up). */
  resample: boolean;
  /** The Downsample2D's padding (down blocks). */
  downsamplePadding: number;
}

/**
 * Temporal modules for one block (AnimateDiff's motion modules, models/motion-module.ts): module j runs after the
 * block's j-th resnet (and its transformer), on (B·frames, C, h, w) with each clip's frames consecutive.
 */
export interface BlockMotion {
  frames: number;
  modules: readonly { forward(x: Tensor, frames: number, ctx?: AttentionContext): Tensor }[];
}

/**
 * A down or up block (as mlx-examples' UNetBlock2D): resnets, each followed by a transformer in the
 * CrossAttn… blocks, then a resampler. An up block's resnets each take the next skip connection
 * concatenated on channels; a down block hands every intermediate state on as a skip connection.
 */
export class UNetBlock2D extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  attentions?: ModuleList<Transformer2DModel>;
  downsamplers?: ModuleList<Downsample2D>;
  upsamplers?: ModuleList<Upsample2D>;

  constructor(b: UNetBlockConfig) {
    super();
    const up = b.prevOutputChannels !== undefined;
    this.resnets = new ModuleList(
      Array.from({ length: b.numLayers }, (_, j) => {
        // down: in → out, then out → out; up: (previous block's out, then out) + the skip's channels
        const first = up ? (b.prevOutputChannels as number) : b.inChannels;
        const skip = up ? (j === b.numLayers - 1 ? b.inChannels : b.outChannels) : 0;
        return new ResnetBlock2D({
          inChannels: (j === 0 ? first : b.outChannels) + skip,
          outChannels: b.outChannels,
          tembChannels: b.tembChannels,
          groups: b.groups,
          eps: b.eps,
        });
      }),
    );
    const t = b.transformer;
    if (t)
      this.attentions = new ModuleList(Array.from({ length: b.numLayers }, () => new Transformer2DModel(t)));
    if (b.resample && up) this.upsamplers = new ModuleList([new Upsample2D(b.outChannels)]);
    if (b.resample && !up)
      this.downsamplers = new ModuleList([new Downsample2D(b.outChannels, b.downsamplePadding)]);
  }

  /**
   * Up blocks consume `skips` from its end and upsample to `upsampleSize` (the next skip's spatial size).
   * Returns the output and the states a down block hands to the up path as skip connections.
   */
  forward(
    x: Tensor,
    temb: Tensor,
    context: Tensor,
    ctx?: AttentionContext,
    skips?: Tensor[],
    upsampleSize?: readonly [number, number],
    motion?: BlockMotion,
  ): [Tensor, Tensor[]] {
    const states: Tensor[] = [];
    this.resnets.items.forEach((resnet, j) => {
      const input = skips ? catChannels(x, skips.pop() as Tensor) : x;
      x = resnet.forward(input, temb, ctx);
      if (this.attentions) x = this.attentions.at(j).forward(x, context, ctx);
      // temporal attention (AnimateDiff), after the spatial transformer
      if (motion) x = (motion.modules[j] as BlockMotion['modules'][number]).forward(x, motion.frames, ctx);
      states.push(x);
    });
    if (this.downsamplers) {
      x = this.downsamplers.at(0).forward(x);
      states.push(x);
    }
    if (this.upsamplers) x = this.upsamplers.at(0).forward(x, upsampleSize);
    return [x, states];
  }
}

/** UNetMidBlock2DCrossAttn: at the bottom of the UNet, channels unchanged. */
export interface UNetMidBlockConfig {
  channels: number;
  tembChannels: number;
  groups: number;
  eps: number;
  outputScaleFactor: number;
  transformer: TransformerConfig;
}

/** UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet) pairs. */
export class UNetMidBlock2D extends Module {
  attentions: ModuleList<Transformer2DModel>;
  resnets: ModuleList<ResnetBlock2D>;

  constructor(b: UNetMidBlockConfig) {
    super();
    const resnet = () =>
      new ResnetBlock2D({
        inChannels: b.channels,
        outChannels: b.channels,
        tembChannels: b.tembChannels,
        groups: b.groups,
        eps: b.eps,
        outputScaleFactor: b.outputScaleFactor,
      });
    this.attentions = new ModuleList([new Transformer2DModel(b.transformer)]);
    this.resnets = new ModuleList([resnet(), resnet()]);
  }

  forward(x: Tensor, temb: Tensor, context: Tensor, ctx?: AttentionContext, motion?: BlockMotion): Tensor {
    x = this.resnets.at(0).forward(x, temb, ctx);
    this.attentions.items.forEach((attn, i) => {
      x = attn.forward(x, context, ctx);
      if (motion) x = (motion.modules[i] as BlockMotion['modules'][number]).forward(x, motion.frames, ctx);
      x = this.resnets.at(i + 1).forward(x, temb, ctx);
    });
    return x;
  }
}

/** Concatenates along channels (skip connections of the up path). */
export function catChannels(a: Tensor, b: Tensor): Tensor {
  return concat([a, b], 1);
}
