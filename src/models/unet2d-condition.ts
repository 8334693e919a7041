// UNet2DConditionModel (Rombach et al. 2022, the Stable Diffusion denoiser), with diffusers' names.
// A flat diffusers config.json is read once into a typed, nested UNetConfig.

import { assignAttentionLayers } from '../attention/attention.js';
import type { AttentionContext } from '../attention/hooks.js';
import { Conv2d, GroupNorm, loadStateDict, Module, ModuleList } from '../nn/index.js';
import { formatShape, Tensor } from '../tensor/index.js';
import { ConfigReader, type JsonConfig } from './config.js';
import {
  assignBlocks,
  catChannels,
  Downsample2D,
  ResnetBlock2D,
  TimestepEmbedding,
  Transformer2DModel,
  timestepEmbedding,
  Upsample2D,
} from './unet-blocks.js';

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

interface BlockConfig {
  inChannels: number;
  outChannels: number;
  tembChannels: number;
  numLayers: number;
  heads: number;
  transformerLayers: number;
  onlyCrossAttention: boolean;
  cross: boolean;
}

function transformer(c: UNetConfig, channels: number, b: BlockConfig): Transformer2DModel {
  return new Transformer2DModel({
    heads: b.heads,
    headDim: channels / b.heads,
    inChannels: channels,
    numLayers: b.transformerLayers,
    crossAttentionDim: c.crossAttentionDim,
    groups: c.normNumGroups,
    useLinearProjection: c.useLinearProjection,
    onlyCrossAttention: b.onlyCrossAttention,
  });
}

/** DownBlock2D / CrossAttnDownBlock2D: resnets (each followed by a transformer if cross), then downsample. */
export class DownBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  attentions?: ModuleList<Transformer2DModel>;
  downsamplers?: ModuleList<Downsample2D>;

  constructor(c: UNetConfig, b: BlockConfig, addDownsample: boolean) {
    super();
    this.resnets = new ModuleList(
      Array.from(
        { length: b.numLayers },
        (_, j) =>
          new ResnetBlock2D({
            inChannels: j === 0 ? b.inChannels : b.outChannels,
            outChannels: b.outChannels,
            tembChannels: b.tembChannels,
            groups: c.normNumGroups,
            eps: c.normEps,
          }),
      ),
    );
    if (b.cross) {
      this.attentions = new ModuleList(
        Array.from({ length: b.numLayers }, () => transformer(c, b.outChannels, b)),
      );
    }
    if (addDownsample)
      this.downsamplers = new ModuleList([new Downsample2D(b.outChannels, c.downsamplePadding)]);
  }

  /** Returns the output and every intermediate state the up path takes as a skip connection. */
  forward(x: Tensor, temb: Tensor, context: Tensor, ctx?: AttentionContext): [Tensor, Tensor[]] {
    const skips: Tensor[] = [];
    this.resnets.items.forEach((resnet, j) => {
      x = resnet.forward(x, temb, ctx);
      if (this.attentions) x = this.attentions.at(j).forward(x, context, ctx);
      skips.push(x);
    });
    if (this.downsamplers) {
      x = this.downsamplers.at(0).forward(x);
      skips.push(x);
    }
    return [x, skips];
  }
}

/** UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet) pairs. */
export class MidBlock extends Module {
  attentions: ModuleList<Transformer2DModel>;
  resnets: ModuleList<ResnetBlock2D>;

  constructor(c: UNetConfig, b: BlockConfig) {
    super();
    const resnet = () =>
      new ResnetBlock2D({
        inChannels: b.inChannels,
        outChannels: b.inChannels,
        tembChannels: b.tembChannels,
        groups: c.normNumGroups,
        eps: c.normEps,
        outputScaleFactor: c.midBlockScaleFactor,
      });
    this.attentions = new ModuleList([transformer(c, b.inChannels, b)]);
    this.resnets = new ModuleList([resnet(), resnet()]);
  }

  forward(x: Tensor, temb: Tensor, context: Tensor, ctx?: AttentionContext): Tensor {
    x = this.resnets.at(0).forward(x, temb, ctx);
    this.attentions.items.forEach((attn, i) => {
      x = attn.forward(x, context, ctx);
      x = this.resnets.at(i + 1).forward(x, temb, ctx);
    });
    return x;
  }
}

/** UpBlock2D / CrossAttnUpBlock2D: each resnet takes the next skip connection concatenated on channels. */
export class UpBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  attentions?: ModuleList<Transformer2DModel>;
  upsamplers?: ModuleList<Upsample2D>;

  constructor(c: UNetConfig, b: BlockConfig & { prevOutputChannels: number }, addUpsample: boolean) {
    super();
    this.resnets = new ModuleList(
      Array.from({ length: b.numLayers }, (_, j) => {
        const skipChannels = j === b.numLayers - 1 ? b.inChannels : b.outChannels;
        const resnetIn = j === 0 ? b.prevOutputChannels : b.outChannels;
        return new ResnetBlock2D({
          inChannels: resnetIn + skipChannels,
          outChannels: b.outChannels,
          tembChannels: b.tembChannels,
          groups: c.normNumGroups,
          eps: c.normEps,
        });
      }),
    );
    if (b.cross) {
      this.attentions = new ModuleList(
        Array.from({ length: b.numLayers }, () => transformer(c, b.outChannels, b)),
      );
    }
    if (addUpsample) this.upsamplers = new ModuleList([new Upsample2D(b.outChannels)]);
  }

  /** `skips` is consumed from its end; `upsampleSize` is the spatial size of the next skip. */
  forward(
    x: Tensor,
    skips: Tensor[],
    temb: Tensor,
    context: Tensor,
    ctx: AttentionContext | undefined,
    upsampleSize?: readonly [number, number],
  ): Tensor {
    this.resnets.items.forEach((resnet, j) => {
      const skip = skips.pop() as Tensor;
      x = resnet.forward(catChannels(x, skip), temb, ctx);
      if (this.attentions) x = this.attentions.at(j).forward(x, context, ctx);
    });
    if (this.upsamplers) x = this.upsamplers.at(0).forward(x, upsampleSize);
    return x;
  }
}

function placeOf(path: string): 'down' | 'mid' | 'up' {
  return path.startsWith('down_blocks') ? 'down' : path.startsWith('mid_block') ? 'mid' : 'up';
}

export class UNet2DConditionModel extends Module {
  readonly config: UNetConfig;
  conv_in: Conv2d;
  time_embedding: TimestepEmbedding;
  down_blocks: ModuleList<DownBlock>;
  mid_block?: MidBlock;
  up_blocks: ModuleList<UpBlock>;
  conv_norm_out: GroupNorm;
  conv_out: Conv2d;

  constructor(config: UNetConfig) {
    super();
    this.config = config;
    const c = config;
    const boc = c.blockOutChannels;
    const n = boc.length;
    const tembChannels = (boc[0] as number) * 4;
    this.conv_in = new Conv2d(c.inChannels, boc[0] as number, c.convInKernel, {
      padding: (c.convInKernel - 1) / 2,
    });
    this.time_embedding = new TimestepEmbedding(boc[0] as number, tembChannels);

    // down path
    const downs: DownBlock[] = [];
    let out = boc[0] as number;
    c.downBlockTypes.forEach((type, i) => {
      const input = out;
      out = boc[i] as number;
      downs.push(
        new DownBlock(
          c,
          {
            inChannels: input,
            outChannels: out,
            tembChannels,
            numLayers: c.layersPerBlock,
            heads: c.heads[i] as number,
            transformerLayers: c.transformerLayersPerBlock[i] as number,
            onlyCrossAttention: c.onlyCrossAttention[i] as boolean,
            cross: type === 'CrossAttnDownBlock2D',
          },
          i < n - 1,
        ),
      );
    });
    this.down_blocks = new ModuleList(downs);

    // middle
    if (c.midBlock) {
      this.mid_block = new MidBlock(c, {
        inChannels: boc[n - 1] as number,
        outChannels: boc[n - 1] as number,
        tembChannels,
        numLayers: 1,
        heads: c.heads[n - 1] as number,
        transformerLayers: c.transformerLayersPerBlock[n - 1] as number,
        onlyCrossAttention: false,
        cross: true,
      });
    }

    // up path: everything reversed
    const rev = [...boc].reverse();
    const revHeads = [...c.heads].reverse();
    const revLayers = [...c.transformerLayersPerBlock].reverse();
    const revOnlyCross = [...c.onlyCrossAttention].reverse();
    const ups: UpBlock[] = [];
    out = rev[0] as number;
    c.upBlockTypes.forEach((type, i) => {
      const prev = out;
      out = rev[i] as number;
      const input = rev[Math.min(i + 1, n - 1)] as number;
      ups.push(
        new UpBlock(
          c,
          {
            inChannels: input,
            outChannels: out,
            prevOutputChannels: prev,
            tembChannels,
            numLayers: c.layersPerBlock + 1,
            heads: revHeads[i] as number,
            transformerLayers: revLayers[i] as number,
            onlyCrossAttention: revOnlyCross[i] as boolean,
            cross: type === 'CrossAttnUpBlock2D',
          },
          i < n - 1,
        ),
      );
    });
    this.up_blocks = new ModuleList(ups);

    this.conv_norm_out = new GroupNorm(c.normNumGroups, boc[0] as number, c.normEps);
    this.conv_out = new Conv2d(boc[0] as number, c.outChannels, c.convOutKernel, {
      padding: (c.convOutKernel - 1) / 2,
    });
    assignAttentionLayers(this, placeOf);
    assignBlocks(this, placeOf);
  }

  static fromConfig(json: JsonConfig): UNet2DConditionModel {
    return new UNet2DConditionModel(parseUNetConfig(json));
  }

  load(tensors: ReadonlyMap<string, Tensor>): this {
    loadStateDict(this, tensors, { what: 'unet' });
    return this;
  }

  /**
   * ε (or v) prediction. sample (B, C, H, W); timestep one number or one per row; context (B, T, D).
   * `ctx` carries the controllers, the step and the batch layout to every attention layer.
   */
  forward(
    sample: Tensor,
    timestep: number | readonly number[] | Tensor,
    context: Tensor,
    ctx?: AttentionContext,
  ): Tensor {
    const c = this.config;
    if (sample.rank !== 4 || sample.shape[1] !== c.inChannels) {
      throw new Error(`unet: expected a sample (B, ${c.inChannels}, H, W), got ${formatShape(sample.shape)}`);
    }
    const b = sample.shape[0] as number;
    if (context.rank !== 3 || context.shape[0] !== b || context.shape[2] !== c.crossAttentionDim) {
      throw new Error(
        `unet: expected encoder hidden states (${b}, T, ${c.crossAttentionDim}), got ${formatShape(context.shape)}`,
      );
    }
    const ts =
      timestep instanceof Tensor
        ? timestep.reshape([-1]).expand([b])
        : Tensor.from(typeof timestep === 'number' ? new Array<number>(b).fill(timestep) : timestep);
    if (ts.size !== b) throw new Error(`unet: ${ts.size} timesteps for a batch of ${b}`);

    // time embedding
    const tEmb = timestepEmbedding(ts, c.blockOutChannels[0] as number, c.flipSinToCos, c.freqShift);
    const temb = this.time_embedding.forward(tEmb);

    // down
    let x = c.centerInputSample ? sample.mul(2).sub(1) : sample;
    x = this.conv_in.forward(x);
    const skips: Tensor[] = [x];
    for (const block of this.down_blocks) {
      const [y, s] = block.forward(x, temb, context, ctx);
      x = y;
      skips.push(...s);
    }

    // middle
    if (this.mid_block) x = this.mid_block.forward(x, temb, context, ctx);

    // up
    this.up_blocks.items.forEach((block, i) => {
      const taken = skips.splice(skips.length - block.resnets.length);
      const next = skips[skips.length - 1];
      const upsampleSize =
        i < this.up_blocks.length - 1 && next
          ? ([next.shape[2], next.shape[3]] as [number, number])
          : undefined;
      x = block.forward(x, taken, temb, context, ctx, upsampleSize);
    });

    // out
    return this.conv_out.forward(this.conv_norm_out.forward(x).silu());
  }
}
