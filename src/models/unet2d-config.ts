// UNet2DConditionModel's config: a flat diffusers config.json read once into a typed UNetConfig, and the
// nested configs of its blocks derived from it (the up path mirrors the down path).

import { jsonPreview } from '../io/json-preview.js';
import { CONFIG_LIMITS, ConfigReader, type JsonConfig } from './config.js';
import type { UNetBlockConfig, UNetMidBlockConfig } from './unet-blocks.js';

/** A UNet down block: plain ResNets or ResNets with cross-attention transformers. */
export type DownBlockType = 'DownBlock2D' | 'CrossAttnDownBlock2D';
/** A UNet up block: plain ResNets or ResNets with cross-attention transformers. */
export type UpBlockType = 'UpBlock2D' | 'CrossAttnUpBlock2D';

/** A UNet's `config.json` read into typed fields (channels, blocks, attention, conditioning). */
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
  /** SDXL's added conditioning (`addition_embed_type` "text_time"); undefined for SD 1.x / 2.x. */
  textTime?: TextTimeConfig;
}

/**
 * SDXL's micro-conditioning embedding (diffusers' `add_time_proj` + `add_embedding`): each time id through the
 * sinusoidal embedding of `timeEmbedDim` features, flattened per row after the pooled text embedding, then a
 * TimestepEmbedding from `inputDim` features to the time embedding's.
 */
export interface TextTimeConfig {
  /** addition_time_embed_dim: features of each time id's sinusoid. */
  timeEmbedDim: number;
  /** projection_class_embeddings_input_dim: pooled text features + time ids × timeEmbedDim. */
  inputDim: number;
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
  r.require('addition_embed_type', [null, 'text_time']);
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
  const textTime = readTextTime(r);
  // upcast_attention (SD 2.x: true) makes diffusers compute q·kᵀ and the softmax in float32 when the model runs
  // in float16; attnkit computes in float32 throughout, so true and false give the same result. Accepted
  // either way, checked to be a boolean (docs/design.md, Model formats).
  r.bool('upcast_attention', false);

  const down = r.strings('down_block_types');
  const up = r.strings('up_block_types');
  const n = down.length;
  if (n < 1 || n > CONFIG_LIMITS.blocks) {
    throw new Error(
      `${where}: config key 'down_block_types' has ${n} entries; attnkit's limit is 1 to ${CONFIG_LIMITS.blocks} ` +
        '(CONFIG_LIMITS.blocks), far above any real model: fix the file',
    );
  }
  for (const [key, list, types] of [
    ['down_block_types', down, ['DownBlock2D', 'CrossAttnDownBlock2D']],
    ['up_block_types', up, ['UpBlock2D', 'CrossAttnUpBlock2D']],
  ] as const) {
    const bad = list.find((t) => !(types as readonly string[]).includes(t));
    if (bad !== undefined) {
      throw new Error(
        `${where}: block type ${jsonPreview(bad)} in '${key}' is not supported (supported: ${types.join(', ')})`,
      );
    }
  }
  if (up.length !== n)
    throw new Error(`${where}: 'up_block_types' must have as many entries as 'down_block_types'`);
  const blockOutChannels = r.sizes('block_out_channels', 'channels');
  if (blockOutChannels.length !== n) {
    throw new Error(`${where}: 'block_out_channels' must have one entry per down block (${n})`);
  }
  // diffusers' naming slip: with num_attention_heads null, attention_head_dim is the number of heads
  const headsKey = r.has('num_attention_heads') ? 'num_attention_heads' : 'attention_head_dim';
  const heads = r.perBlockSize(headsKey, n, 'heads', 8);
  const crossAttentionDim = r.cfg['cross_attention_dim'];
  if (Array.isArray(crossAttentionDim)) {
    throw new Error(`${where}: a per-block 'cross_attention_dim' list is not supported; use one number`);
  }
  const c: UNetConfig = {
    sampleSize: r.size('sample_size', 'latentSampleSize', 64),
    inChannels: r.size('in_channels', 'channels', 4),
    outChannels: r.size('out_channels', 'channels', 4),
    centerInputSample: r.bool('center_input_sample', false),
    flipSinToCos: r.bool('flip_sin_to_cos', true),
    freqShift: r.number('freq_shift', 0),
    downBlockTypes: down as DownBlockType[],
    upBlockTypes: up as UpBlockType[],
    midBlock: r.cfg['mid_block_type'] !== null,
    blockOutChannels,
    layersPerBlock: r.size('layers_per_block', 'layers', 2),
    downsamplePadding: r.int('downsample_padding', 1),
    midBlockScaleFactor: r.positive('mid_block_scale_factor', 1),
    normNumGroups: r.size('norm_num_groups', 'channels', 32),
    normEps: r.positive('norm_eps', 1e-5),
    crossAttentionDim: r.size('cross_attention_dim', 'channels', 1280),
    heads,
    transformerLayersPerBlock: r.perBlockSize('transformer_layers_per_block', n, 'layers', 1),
    onlyCrossAttention: r.perBlockBool('only_cross_attention', n, false),
    useLinearProjection: r.bool('use_linear_projection', false),
    convInKernel: r.size('conv_in_kernel', 'kernel', 3),
    convOutKernel: r.size('conv_out_kernel', 'kernel', 3),
    ...(textTime ? { textTime } : {}),
  };
  checkUNetValues(r, c, headsKey);
  return c;
}

/**
 * SDXL's `addition_embed_type` "text_time" needs both of its sizes; without it the projection size must be
 * null (its other use, `class_embed_type` "projection", is not implemented). The sinusoid of a time id has
 * as many features as `addition_time_embed_dim`, so that must be even (diffusers pads an odd one with a zero).
 */
function readTextTime(r: ConfigReader): TextTimeConfig | undefined {
  if (r.cfg['addition_embed_type'] !== 'text_time') {
    r.require('projection_class_embeddings_input_dim', [null]);
    return undefined;
  }
  for (const key of ['addition_time_embed_dim', 'projection_class_embeddings_input_dim']) {
    if (!r.has(key))
      throw r.invalid(key, r.cfg[key] ?? null, "must be set when addition_embed_type is 'text_time'");
  }
  const timeEmbedDim = r.size('addition_time_embed_dim', 'channels');
  if (timeEmbedDim % 2 !== 0) throw r.invalid('addition_time_embed_dim', timeEmbedDim, 'must be even');
  const inputDim = r.size('projection_class_embeddings_input_dim', 'channels');
  if (inputDim <= timeEmbedDim) {
    throw r.invalid(
      'projection_class_embeddings_input_dim',
      inputDim,
      `must exceed addition_time_embed_dim (${timeEmbedDim}): it holds the pooled text and the time ids`,
    );
  }
  return { timeEmbedDim, inputDim };
}

/** The rules between values that keep the model's shapes whole, each error naming the key. */
function checkUNetValues(r: ConfigReader, c: UNetConfig, headsKey: string): void {
  const n = c.blockOutChannels.length;
  const bad = c.blockOutChannels.find((ch) => ch % c.normNumGroups !== 0);
  if (bad !== undefined) {
    throw r.invalid(
      'norm_num_groups',
      c.normNumGroups,
      `must divide every entry of 'block_out_channels' (${bad})`,
    );
  }
  // the sinusoidal time embedding has block_out_channels[0] features: half sines, half cosines
  const half = (c.blockOutChannels[0] as number) / 2;
  if (!Number.isInteger(half)) {
    throw r.invalid(
      'block_out_channels',
      c.blockOutChannels[0],
      'must be even in its first entry (the time embedding)',
    );
  }
  if (c.freqShift >= half) throw r.invalid('freq_shift', c.freqShift, `must be less than ${half}`);
  // the heads split the channels of every block with attention (the up path mirrors the down path)
  for (let d = 0; d < n; d++) {
    const attends =
      c.downBlockTypes[d] === 'CrossAttnDownBlock2D' ||
      c.upBlockTypes[n - 1 - d] === 'CrossAttnUpBlock2D' ||
      (d === n - 1 && c.midBlock);
    const [ch, h] = [c.blockOutChannels[d] as number, c.heads[d] as number];
    if (attends && ch % h !== 0) {
      throw r.invalid(
        headsKey,
        h,
        `(heads of block ${d}) must divide its channels (block_out_channels ${ch})`,
      );
    }
  }
  // every down block but the last halves the latent; the up path must meet the same sides
  const factor = 2 ** (n - 1);
  if (c.sampleSize % factor !== 0) {
    throw r.invalid('sample_size', c.sampleSize, `must be a multiple of ${factor} (${n - 1} downsamplings)`);
  }
  for (const key of ['conv_in_kernel', 'conv_out_kernel'] as const) {
    const k = key === 'conv_in_kernel' ? c.convInKernel : c.convOutKernel;
    if (k % 2 !== 1) throw r.invalid(key, k, 'must be an odd kernel size (the output keeps the input side)');
  }
  if (c.downsamplePadding !== 0 && c.downsamplePadding !== 1) {
    throw r.invalid('downsample_padding', c.downsamplePadding, 'must be 0 or 1');
  }
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
