// AnimateDiff's motion modules (Guo et al. 2024, "AnimateDiff: Animate Your Personalized Text-to-Image Diffusion
// Models without Specific Tuning"): temporal attention injected into a frozen image UNet. Each module attends
// along the frame axis at every spatial position of a UNet block's output, with sinusoidal frame positions, and
// adds the result back (a residual); its output projection starts at zero, so a fresh module leaves the image
// model's output unchanged. Weights and config in diffusers' `MotionAdapter` naming (diffusers 0.30.0,
// `unet_motion_model.py`): `down_blocks.i.motion_modules.j`, `mid_block.motion_modules.0`,
// `up_blocks.i.motion_modules.j`, each an `AnimateDiffTransformer3D` (norm, proj_in, transformer_blocks.N
// with two temporal self-attentions attn1 / attn2 and a GEGLU feed-forward, proj_out).
//
// Every temporal attention layer has kind 'temporal' in its AttentionCall: the tokens are the frames
// (queryTokens = keyTokens = frame count), the batch rows are the B·h·w spatial positions, and `size` is
// that (h, w) grid.

import { Attention, assignAttentionLayers } from '../attention/attention.js';
import type { AttentionContext } from '../attention/hooks.js';
import { Linear, Module, ModuleList } from '../nn/index.js';
import { zeroInit } from '../nn/init.js';
import { GroupNorm, LayerNorm } from '../nn/layers.js';
import { loadStateDict } from '../nn/module.js';
import { formatShape, Tensor } from '../tensor/index.js';
import { ConfigReader, type JsonConfig, readConfig } from './config.js';
import { type FromPretrainedOptions, pretrainedFolder, readPretrainedWeights } from './pretrained.js';
import { FeedForward } from './unet-blocks.js';

/** A MotionAdapter's config.json, read (diffusers' keys in comments). */
export interface MotionAdapterConfig {
  /** `block_out_channels`: the image UNet's channels per block. */
  blockOutChannels: number[];
  /** `motion_layers_per_block`: modules per down block (up blocks have one more). */
  layersPerBlock: number;
  /** `motion_transformer_layers_per_block`: transformer blocks per module. */
  transformerLayers: number;
  /** `motion_mid_block_layers_per_block` and `use_motion_mid_block`: modules in the mid block (0: none). */
  midLayers: number;
  /** `motion_transformer_layers_per_mid_block`. */
  midTransformerLayers: number;
  /** `motion_num_attention_heads`. */
  heads: number;
  /** `motion_norm_num_groups`. */
  normGroups: number;
  /** `motion_max_seq_length`: most frames the sinusoidal positions cover. */
  maxSeqLength: number;
}

/** Reads a MotionAdapter config.json; per-block lists and conv_in (AnimateDiff SparseCtrl) are refused by key. */
export function parseMotionAdapterConfig(json: JsonConfig, where: string): MotionAdapterConfig {
  const r = new ConfigReader(json, where);
  r.require('_class_name', ['MotionAdapter']);
  r.require('conv_in_channels', [null]);
  const blockOutChannels = r.sizes('block_out_channels', 'channels');
  const heads = r.size('motion_num_attention_heads', 'heads', 8);
  for (const c of blockOutChannels) {
    if (c % heads !== 0)
      throw r.invalid('motion_num_attention_heads', heads, `must divide every block's channels (${c})`);
  }
  const useMid = r.bool('use_motion_mid_block', true);
  return {
    blockOutChannels,
    layersPerBlock: r.size('motion_layers_per_block', 'layers', 2),
    transformerLayers: r.size('motion_transformer_layers_per_block', 'layers', 1),
    midLayers: useMid ? r.size('motion_mid_block_layers_per_block', 'layers', 1) : 0,
    midTransformerLayers: r.size('motion_transformer_layers_per_mid_block', 'layers', 1),
    heads,
    normGroups: r.size('motion_norm_num_groups', 'channels', 32),
    maxSeqLength: r.size('motion_max_seq_length', 'positions', 32),
  };
}

/**
 * Sinusoidal positions (Vaswani et al. 2017) of `frames` frames, (1, frames, dim): pe[p, 2i] = sin(p·ω_i),
 * pe[p, 2i + 1] = cos(p·ω_i), ω_i = 10000^(−2i/dim) (diffusers' `SinusoidalPositionalEmbedding`).
 */
export function sinusoidalPositions(frames: number, dim: number): Tensor {
  const pe = new Float32Array(frames * dim);
  for (let p = 0; p < frames; p++) {
    for (let i = 0; 2 * i < dim; i++) {
      const w = Math.exp(-(2 * i) * (Math.log(10000) / dim));
      pe[p * dim + 2 * i] = Math.sin(p * w);
      if (2 * i + 1 < dim) pe[p * dim + 2 * i + 1] = Math.cos(p * w);
    }
  }
  return new Tensor(pe, [1, frames, dim]);
}

/** A temporal attention layer: diffusers' Attention whose tokens are frames. */
function temporalAttention(dim: number, heads: number): Attention {
  const a = new Attention({ queryDim: dim, heads, dimHead: dim / heads });
  a.info = { ...a.info, kind: 'temporal' };
  return a;
}

/** BasicTransformerBlock with `double_self_attention` and sinusoidal positions: both attentions temporal. */
export class TemporalTransformerBlock extends Module {
  norm1: LayerNorm;
  attn1: Attention;
  norm2: LayerNorm;
  attn2: Attention;
  norm3: LayerNorm;
  ff: FeedForward;

  constructor(dim: number, heads: number) {
    super();
    this.norm1 = new LayerNorm(dim);
    this.attn1 = temporalAttention(dim, heads);
    this.norm2 = new LayerNorm(dim);
    this.attn2 = temporalAttention(dim, heads);
    this.norm3 = new LayerNorm(dim);
    this.ff = new FeedForward(dim);
  }

  /** x: (B·h·w, F, C) one row per spatial position; pe: (1, F, C). */
  forward(x: Tensor, pe: Tensor, size: readonly [number, number], ctx?: AttentionContext): Tensor {
    // temporal self-attention, twice, each on positions added to its normalised input
    let h = this.attn1.forward(this.norm1.forward(x).add(pe), { size, ctx }).add(x);
    h = this.attn2.forward(this.norm2.forward(h).add(pe), { size, ctx }).add(h);
    // feed-forward
    return this.ff.forward(this.norm3.forward(h)).add(h);
  }
}

/** diffusers' AnimateDiffTransformer3D: one motion module. */
export class AnimateDiffTransformer3D extends Module {
  norm: GroupNorm;
  proj_in: Linear;
  transformer_blocks: ModuleList<TemporalTransformerBlock>;
  proj_out: Linear;
  readonly maxSeqLength: number;

  constructor(
    channels: number,
    c: { heads: number; normGroups: number; layers: number; maxSeqLength: number },
  ) {
    super();
    this.maxSeqLength = c.maxSeqLength;
    this.norm = new GroupNorm(c.normGroups, channels, 1e-6);
    this.proj_in = new Linear(channels, channels);
    this.transformer_blocks = new ModuleList(
      Array.from({ length: c.layers }, () => new TemporalTransformerBlock(channels, c.heads)),
    );
    this.proj_out = new Linear(channels, channels);
  }

  /** x: (B·F, C, h, w), frames of each clip consecutive; returns x + the temporal branch. */
  forward(x: Tensor, frames: number, ctx?: AttentionContext): Tensor {
    const [bf, c, h, w] = x.shape as [number, number, number, number];
    if (x.rank !== 4 || !Number.isInteger(frames) || frames < 1 || bf % frames !== 0)
      throw new Error(`motion module: ${formatShape(x.shape)} is not (B·F, C, h, w) for ${frames} frames`);
    if (frames > this.maxSeqLength)
      throw new Error(
        `motion module: ${frames} frames, but its positions cover at most ${this.maxSeqLength} (motion_max_seq_length)`,
      );
    const b = bf / frames;
    // group norm over each clip's channels groups, all frames and positions together: (B, C, F·h·w)
    let y = x
      .reshape([b, frames, c, h * w])
      .permute([0, 2, 1, 3])
      .reshape([b, c, frames * h * w]);
    y = this.norm.forward(y);
    // (B, C, F, h·w) → (B, h·w, F, C) → (B·h·w, F, C)
    y = y
      .reshape([b, c, frames, h * w])
      .permute([0, 3, 2, 1])
      .reshape([b * h * w, frames, c]);
    y = this.proj_in.forward(y);
    const pe = sinusoidalPositions(frames, c);
    for (const block of this.transformer_blocks) y = block.forward(y, pe, [h, w], ctx);
    y = this.proj_out.forward(y);
    // (B, h·w, F, C) → (B, F, C, h·w) → (B·F, C, h, w)
    y = y
      .reshape([b, h * w, frames, c])
      .permute([0, 2, 3, 1])
      .reshape([bf, c, h, w]);
    return y.add(x);
  }
}

/** diffusers' MotionModules: the motion modules of one UNet block. */
export class MotionModules extends Module {
  motion_modules: ModuleList<AnimateDiffTransformer3D>;
  constructor(count: number, channels: number, c: ConstructorParameters<typeof AnimateDiffTransformer3D>[1]) {
    super();
    this.motion_modules = new ModuleList(
      Array.from({ length: count }, () => new AnimateDiffTransformer3D(channels, c)),
    );
  }
}

const placeOf = (path: string) => (path.startsWith('down') ? 'down' : path.startsWith('up') ? 'up' : 'mid');

/** diffusers' MotionAdapter: every motion module of an image UNet, by block. */
export class MotionAdapter extends Module {
  readonly config: MotionAdapterConfig;
  down_blocks: ModuleList<MotionModules>;
  mid_block?: MotionModules;
  up_blocks: ModuleList<MotionModules>;

  /** Parameters unset: load them, or initialise them and call `zeroOutputs` (AnimateDiff's start). */
  constructor(config: MotionAdapterConfig) {
    super();
    this.config = config;
    const c = (layers: number) => ({ ...config, layers });
    const chans = config.blockOutChannels;
    this.down_blocks = new ModuleList(
      chans.map((ch) => new MotionModules(config.layersPerBlock, ch, c(config.transformerLayers))),
    );
    if (config.midLayers > 0)
      this.mid_block = new MotionModules(
        config.midLayers,
        chans[chans.length - 1]!,
        c(config.midTransformerLayers),
      );
    this.up_blocks = new ModuleList(
      [...chans]
        .reverse()
        .map((ch) => new MotionModules(config.layersPerBlock + 1, ch, c(config.transformerLayers))),
    );
    assignAttentionLayers(this, placeOf);
  }

  /** Zeroes every module's output projection: each module then adds nothing (AnimateDiff's start). */
  zeroOutputs(): this {
    for (const [, m] of this.namedModules()) if (m instanceof AnimateDiffTransformer3D) zeroInit(m.proj_out);
    return this;
  }

  /** Loads a MotionAdapter folder (config.json, diffusion_pytorch_model[.variant].safetensors). */
  static fromPretrained(dir: string, opts: FromPretrainedOptions = {}): MotionAdapter {
    const folder = pretrainedFolder(dir, opts);
    const config = parseMotionAdapterConfig(readConfig(folder), `${folder}/config.json`);
    return new MotionAdapter(config).load(
      readPretrainedWeights(folder, 'diffusion_pytorch_model', opts.variant),
    );
  }

  /**
   * Sets the weights strictly. diffusers also saves each block's sinusoidal table (`…pos_embed.pe`, a buffer);
   * it must equal the table attnkit computes, and is then set aside.
   */
  load(tensors: ReadonlyMap<string, Tensor>): this {
    const weights = new Map<string, Tensor>();
    for (const [key, t] of tensors) {
      if (!key.endsWith('.pos_embed.pe')) {
        weights.set(key, t);
        continue;
      }
      const [, n, dim] = t.shape as [number, number, number];
      const expected = sinusoidalPositions(n, dim).data as Float32Array;
      const data = t.cast('float32').data as Float32Array;
      if (
        t.rank !== 3 ||
        n > this.config.maxSeqLength ||
        data.some((v, i) => Math.abs(v - expected[i]!) > 1e-4)
      )
        throw new Error(
          `loading motion adapter: ${key} ${formatShape(t.shape)} is not the sinusoidal table of ` +
            `motion_max_seq_length ${this.config.maxSeqLength} positions`,
        );
    }
    loadStateDict(this, weights, { what: 'motion adapter' });
    return this;
  }
}
