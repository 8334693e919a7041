// UNet2DConditionModel's config: a flat diffusers config.json read once into a typed UNetConfig, and the
// nested configs of its blocks derived from it (the up path mirrors the down path).

import { ConfigReader, type JsonConfig } from './config.js';
import type { UNetBlockConfig, UNetMidBlockConfig } from './unet-blocks.js';

export type DownBlockType = 'DownBlock2D' | 'CrossAttnDownBlock2D';
export type UpBlockType = 'UpBlock2D' | 'CrossAttnUpBlock2D';

export interface UNetConfig {
  sampleSize: number;
  inChannels: number;
  outChannels: number;
  centerInputSample: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  downBlockTypes: DownBlockType[];
  upBlockTypes: UpBlockType[];
  midBlock: boolean;
  blockOutChannels: number[];
  layersPerBlock: number;
  downsamplePadding: number;
  midBlockScaleFactor: number;
  normNumGroups: number;
  normEps: number;
  crossAttentionDim: number;
  /** Heads per down block (the up path takes them reversed). */
  heads: number[];
  transformerLayersPerBlock: number[];
  onlyCrossAttention: boolean[];
  useLinearProjection: boolean;
  convInKernel: number;
  convOutKernel: number;
}

/**
 * Sides of the latent at which the UNet has cross-attention, largest first: each cross-attention down block's
 * (the up path mirrors them) and the mid block's — SD 1.x: 64, 32, 16, 8; the Shapes model: 16, 8, 4.
 */
export function crossAttentionSides(c: UNetConfig): number[] {
  const sides = c.downBlockTypes
    .map((t, i) => (t === 'CrossAttnDownBlock2D' ? c.sampleSize / 2 ** i : 0))
    .filter((s) => s > 0);
  if (c.midBlock) sides.push(c.sampleSize / 2 ** (c.downBlockTypes.length - 1));
  return [...new Set(sides)].sort((a, b) => b - a);
}

/** Reads a diffusers UNet2DConditionModel config; any setting attnkit does not implement is an error. */
export function parseUNetConfig(json: JsonConfig, where = 'unet/config.json'): UNetConfig {
  const r = new ConfigReader(json, where);
  r.require('_class_name', ['UNet2DConditionModel']);
  // settings whose non-default values change the architecture in ways not implemented here
  r.require('class_embed_type', [null]);
  r.require('addition_embed_type', [null]);
  r.require('encoder_hid_dim', [null]);
  r.require('encoder_hid_dim_type', [null]);
  r.require('time_embedding_type', ['positional']);
  r.require('time_embedding_dim', [null]);
  r.require('time_embedding_act_fn', [null]);
  r.require('timestep_post_act', [null]);
  r.require('time_cond_proj_dim', [null]);
  r.require('resnet_time_scale_shift', ['default']);
  r.require('resnet_skip_time_act', [false]);
  r.require('resnet_out_scale_factor', [1, 1.0]);
  r.require('dual_cross_attention', [false]);
  r.require('act_fn', ['silu']);
  r.require('cross_attention_norm', [null]);
  r.require('attention_type', ['default']);
  r.require('class_embeddings_concat', [false]);
  r.require('mid_block_only_cross_attention', [null, false]);
  r.require('mid_block_type', ['UNetMidBlock2DCrossAttn', null]);
  r.require('num_class_embeds', [null]);
  r.require('projection_class_embeddings_input_dim', [null]);

  const down = r.strings('down_block_types');
  const up = r.strings('up_block_types');
  const n = down.length;
  for (const t of down) {
    if (t !== 'DownBlock2D' && t !== 'CrossAttnDownBlock2D') {
      throw new Error(`${where}: down block type '${t}' in 'down_block_types' is not supported`);
    }
  }
  for (const t of up) {
    if (t !== 'UpBlock2D' && t !== 'CrossAttnUpBlock2D') {
      throw new Error(`${where}: up block type '${t}' in 'up_block_types' is not supported`);
    }
  }
  if (up.length !== n)
    throw new Error(`${where}: 'up_block_types' must have as many entries as 'down_block_types'`);
  const blockOutChannels = r.ints('block_out_channels');
  if (blockOutChannels.length !== n) {
    throw new Error(`${where}: 'block_out_channels' must have one entry per down block (${n})`);
  }
  // diffusers' naming slip: with num_attention_heads null, attention_head_dim is the number of heads
  const heads = r.has('num_attention_heads')
    ? r.perBlock('num_attention_heads', n)
    : r.perBlock('attention_head_dim', n, 8);
  const crossAttentionDim = r.cfg['cross_attention_dim'];
  if (Array.isArray(crossAttentionDim)) {
    throw new Error(`${where}: a per-block 'cross_attention_dim' list is not supported; use one number`);
  }
  return {
    sampleSize: r.int('sample_size', 64),
    inChannels: r.int('in_channels', 4),
    outChannels: r.int('out_channels', 4),
    centerInputSample: r.bool('center_input_sample', false),
    flipSinToCos: r.bool('flip_sin_to_cos', true),
    freqShift: r.number('freq_shift', 0),
    downBlockTypes: down as DownBlockType[],
    upBlockTypes: up as UpBlockType[],
    midBlock: r.cfg['mid_block_type'] !== null,
    blockOutChannels,
    layersPerBlock: r.int('layers_per_block', 2),
    downsamplePadding: r.int('downsample_padding', 1),
    midBlockScaleFactor: r.number('mid_block_scale_factor', 1),
    normNumGroups: r.int('norm_num_groups', 32),
    normEps: r.number('norm_eps', 1e-5),
    crossAttentionDim: r.int('cross_attention_dim', 1280),
    heads,
    transformerLayersPerBlock: r.perBlock('transformer_layers_per_block', n, 1),
    onlyCrossAttention: r.perBlockBool('only_cross_attention', n, false),
    useLinearProjection: r.bool('use_linear_projection', false),
    convInKernel: r.int('conv_in_kernel', 3),
    convOutKernel: r.int('conv_out_kernel', 3),
  };
}

/** The configs of the UNet's blocks in forward order: down blocks, the middle (if any), up blocks. */
export function unetBlockConfigs(c: UNetConfig): {
  down: UNetBlockConfig[];
  mid?: UNetMidBlockConfig;
  up: UNetBlockConfig[];
} {
  const boc = c.blockOutChannels;
  const n = boc.length;
  const tembChannels = (boc[0] as number) * 4;
  const shared = { tembChannels, groups: c.normNumGroups, eps: c.normEps };
  // the transformer of a block at `channels` with the settings of down block d (the up path mirrors them)
  const transformer = (channels: number, d: number, onlyCross = c.onlyCrossAttention[d] as boolean) => ({
    heads: c.heads[d] as number,
    headDim: channels / (c.heads[d] as number),
    inChannels: channels,
    numLayers: c.transformerLayersPerBlock[d] as number,
    crossAttentionDim: c.crossAttentionDim,
    groups: c.normNumGroups,
    useLinearProjection: c.useLinearProjection,
    onlyCrossAttention: onlyCross,
  });

  // down path: each block from the previous block's channels to its own
  const down = c.downBlockTypes.map(
    (type, i): UNetBlockConfig => ({
      ...shared,
      inChannels: boc[Math.max(i - 1, 0)] as number,
      outChannels: boc[i] as number,
      numLayers: c.layersPerBlock,
      transformer: type === 'CrossAttnDownBlock2D' ? transformer(boc[i] as number, i) : undefined,
      resample: i < n - 1,
      downsamplePadding: c.downsamplePadding,
    }),
  );

  // middle: the last down block's channels and heads, never cross-attention only
  const last = boc[n - 1] as number;
  const mid: UNetMidBlockConfig | undefined = c.midBlock
    ? {
        ...shared,
        channels: last,
        outputScaleFactor: c.midBlockScaleFactor,
        transformer: transformer(last, n - 1, false),
      }
    : undefined;

  // up path: up block i mirrors down block n−1−i; each resnet also takes a skip connection of the down path
  const rev = [...boc].reverse();
  const up = c.upBlockTypes.map(
    (type, i): UNetBlockConfig => ({
      ...shared,
      inChannels: rev[Math.min(i + 1, n - 1)] as number,
      outChannels: rev[i] as number,
      prevOutputChannels: rev[Math.max(i - 1, 0)] as number,
      numLayers: c.layersPerBlock + 1,
      transformer: type === 'CrossAttnUpBlock2D' ? transformer(rev[i] as number, n - 1 - i) : undefined,
      resample: i < n - 1,
      downsamplePadding: c.downsamplePadding,
    }),
  );
  return { down, mid, up };
}
