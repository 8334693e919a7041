// UNet2DConditionModel (Rombach et al. 2022, the Stable Diffusion denoiser), with diffusers' names.
// Its config is read by unet2d-config.ts.

import { assignAttentionLayers } from '../attention/attention.js';
import type { AttentionContext } from '../attention/hooks.js';
import { Conv2d, GroupNorm, loadStateDict, Module, ModuleList } from '../nn/index.js';
import { formatShape, Tensor } from '../tensor/index.js';
import type { JsonConfig } from './config.js';
import {
  assignBlocks,
  TimestepEmbedding,
  timestepEmbedding,
  UNetBlock2D,
  UNetMidBlock2D,
} from './unet-blocks.js';
import { parseUNetConfig, type UNetConfig, unetBlockConfigs } from './unet2d-config.js';

function placeOf(path: string): 'down' | 'mid' | 'up' {
  return path.startsWith('down_blocks') ? 'down' : path.startsWith('mid_block') ? 'mid' : 'up';
}

export class UNet2DConditionModel extends Module {
  readonly config: UNetConfig;
  conv_in: Conv2d;
  time_embedding: TimestepEmbedding;
  down_blocks: ModuleList<UNetBlock2D>;
  mid_block?: UNetMidBlock2D;
  up_blocks: ModuleList<UNetBlock2D>;
  conv_norm_out: GroupNorm;
  conv_out: Conv2d;

  constructor(config: UNetConfig) {
    super();
    this.config = config;
    const c = config;
    const boc = c.blockOutChannels;
    const blocks = unetBlockConfigs(c);
    this.conv_in = new Conv2d(c.inChannels, boc[0] as number, c.convInKernel, {
      padding: (c.convInKernel - 1) / 2,
    });
    this.time_embedding = new TimestepEmbedding(boc[0] as number, (boc[0] as number) * 4);
    this.down_blocks = new ModuleList(blocks.down.map((b) => new UNetBlock2D(b)));
    if (blocks.mid) this.mid_block = new UNetMidBlock2D(blocks.mid);
    this.up_blocks = new ModuleList(blocks.up.map((b) => new UNetBlock2D(b)));
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
      [x] = block.forward(x, temb, context, ctx, taken, upsampleSize);
    });

    // out
    return this.conv_out.forward(this.conv_norm_out.forward(x).silu());
  }
}
