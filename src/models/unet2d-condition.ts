// UNet2DConditionModel (Rombach et al. 2022, the Stable Diffusion denoiser), with diffusers' names.
// Its config is read by unet2d-config.ts.

import { join } from 'node:path';
import { assignAttentionLayers } from '../attention/attention.js';
import type { AttentionContext, HookOptions } from '../attention/hooks.js';
import { Conv2d, GroupNorm, loadStateDict, Module, ModuleList } from '../nn/index.js';
import { concat, formatShape, Tensor } from '../tensor/index.js';
import { type JsonConfig, readConfig } from './config.js';
import type { MotionAdapter, MotionModules } from './motion-module.js';
import { type FromPretrainedOptions, pretrainedFolder, readPretrainedWeights } from './pretrained.js';
import { gatedForward } from './subgraph-gate.js';
import {
  assignBlocks,
  type BlockMotion,
  TimestepEmbedding,
  timestepEmbedding,
  UNetBlock2D,
  UNetMidBlock2D,
} from './unet-blocks.js';
import { parseUNetConfig, type UNetConfig, unetBlockConfigs } from './unet2d-config.js';

/**
 * SDXL's added conditions (diffusers' `added_cond_kwargs`): the pooled text embedding (B, D) and the
 * micro-conditioning time ids (B, n) — original size, crop top-left, target size (n = 6 for SDXL base).
 */
export interface AddedConditions {
  textEmbeds: Tensor;
  timeIds: Tensor;
}

function placeOf(path: string): 'down' | 'mid' | 'up' {
  return path.startsWith('down_blocks') ? 'down' : path.startsWith('mid_block') ? 'mid' : 'up';
}

/** The options of `UNet2DConditionModel.forward`: the hook context and SDXL's added conditions. */
export interface UNetForwardOptions extends HookOptions {
  added?: AddedConditions;
  /**
   * AnimateDiff's temporal layers: a MotionAdapter's modules run after every block's spatial transformers, on
   * a batch of clips of `frames` frames each (each clip's frames consecutive).
   */
  motion?: { adapter: MotionAdapter; frames: number };
}

/**
 * The conditional UNet of Stable Diffusion (diffusers' `UNet2DConditionModel`): predicts noise (or v, or x₀)
 * from noisy latents, the timestep and the text states.
 */
export class UNet2DConditionModel extends Module {
  readonly config: UNetConfig;
  conv_in: Conv2d;
  time_embedding: TimestepEmbedding;
  /** SDXL (`addition_embed_type` "text_time"): the pooled text and time ids to the time embedding's size. */
  add_embedding?: TimestepEmbedding;
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
    if (c.textTime) this.add_embedding = new TimestepEmbedding(c.textTime.inputDim, (boc[0] as number) * 4);
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

  /** A UNet with fresh parameters from a diffusers `config.json`. */
  static fromConfig(json: JsonConfig): UNet2DConditionModel {
    return new UNet2DConditionModel(parseUNetConfig(json));
  }

  /**
   * Reads `config.json` and `diffusion_pytorch_model[.variant].safetensors` (or its sharded set) from `dir`
   * (or `dir/subfolder`), as diffusers' `from_pretrained`; loading is strict.
   */
  static fromPretrained(dir: string, opts: FromPretrainedOptions = {}): UNet2DConditionModel {
    const folder = pretrainedFolder(dir, opts);
    const config = parseUNetConfig(readConfig(folder), join(folder, 'config.json'));
    return new UNet2DConditionModel(config).load(
      readPretrainedWeights(folder, 'diffusion_pytorch_model', opts.variant),
    );
  }

  /** Sets the weights from a state dict, strictly (every key used, every shape checked). */
  load(tensors: ReadonlyMap<string, Tensor>): this {
    loadStateDict(this, tensors, { what: 'unet' });
    return this;
  }

  /**
   * ε (or v) prediction. sample (B, C, H, W); timestep one number or one per row; context (B, T, D).
   * `ctx` carries the controllers, the step and the batch layout to every attention layer. `added`: SDXL's
   * pooled text embedding and time ids, required by (and only by) a `text_time` model.
   */
  forward(
    sample: Tensor,
    timestep: number | readonly number[] | Tensor,
    context: Tensor,
    opts: UNetForwardOptions = {},
  ): Tensor {
    const { ctx, added } = opts;
    const c = this.config;
    const motion = opts.motion && this.#motionOf(opts.motion, sample.shape[0] as number);
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
    if (motion) return this.#forward(sample, ts, context, ctx, added, motion);
    // no hook anywhere: the whole UNet as one cached subgraph session (models/subgraph-gate.ts)
    const extra = added ? [added.textEmbeds, added.timeIds] : [];
    return gatedForward({
      module: this,
      name: 'unet',
      inputs: [sample, ts, context, ...extra],
      ctx,
      blockHooks: ['resnet', 'transformer', 'reuseTransformer'],
      eager: (c) => [this.#forward(sample, ts, context, c, added)],
    })[0] as Tensor;
  }

  #forward(
    sample: Tensor,
    ts: Tensor,
    context: Tensor,
    ctx: AttentionContext | undefined,
    added: AddedConditions | undefined,
    motion?: { down: BlockMotion[]; mid?: BlockMotion; up: BlockMotion[] },
  ): Tensor {
    const c = this.config;
    const b = sample.shape[0] as number;

    // time embedding
    const tEmb = timestepEmbedding(ts, c.blockOutChannels[0] as number, c.flipSinToCos, c.freqShift);
    let temb = this.time_embedding.forward(tEmb);
    if (this.add_embedding) temb = temb.add(this.#addedEmbedding(b, added));
    else if (added)
      throw new Error("unet: added conditions given to a model without addition_embed_type 'text_time'");

    // down
    let x = c.centerInputSample ? sample.mul(2).sub(1) : sample;
    x = this.conv_in.forward(x);
    const skips: Tensor[] = [x];
    for (const [i, block] of this.down_blocks.items.entries()) {
      const [y, s] = block.forward(x, temb, context, ctx, undefined, undefined, motion?.down[i]);
      x = y;
      skips.push(...s);
    }

    // middle
    if (this.mid_block) x = this.mid_block.forward(x, temb, context, ctx, motion?.mid);

    // up
    this.up_blocks.items.forEach((block, i) => {
      const taken = skips.splice(skips.length - block.resnets.length);
      const next = skips[skips.length - 1];
      const upsampleSize =
        i < this.up_blocks.length - 1 && next
          ? ([next.shape[2], next.shape[3]] as [number, number])
          : undefined;
      [x] = block.forward(x, temb, context, ctx, taken, upsampleSize, motion?.up[i]);
    });

    // out
    return this.conv_out.forward(this.conv_norm_out.forward(x).silu());
  }

  /** The adapter's modules per block, checked against this UNet's blocks (channels, one module per resnet). */
  #motionOf(m: { adapter: MotionAdapter; frames: number }, batch: number) {
    const { adapter, frames } = m;
    if (!Number.isInteger(frames) || frames < 1 || batch % frames !== 0)
      throw new Error(`unet: a batch of ${batch} is not whole clips of ${frames} frames`);
    const check = (where: string, modules: MotionModules | undefined, channels: number, resnets: number) => {
      const list = modules?.motion_modules.items ?? [];
      const ch = list[0]?.proj_in.inFeatures;
      if (list.length !== resnets || ch !== channels)
        throw new Error(
          `unet: the motion adapter's ${where} has ${list.length} modules of ${ch ?? 0} channels; this UNet's ` +
            `block needs ${resnets} of ${channels} (its layers and block_out_channels)`,
        );
      return { frames, modules: list };
    };
    const n = this.down_blocks.length;
    if (adapter.down_blocks.length !== n || adapter.up_blocks.length !== this.up_blocks.length)
      throw new Error(`unet: the motion adapter has ${adapter.down_blocks.length} blocks, this UNet ${n}`);
    return {
      down: this.down_blocks.items.map((b, i) =>
        check(
          `down_blocks.${i}`,
          adapter.down_blocks.at(i),
          b.resnets.at(0).conv2.outChannels,
          b.resnets.length,
        ),
      ),
      mid: this.mid_block
        ? check(
            'mid_block',
            adapter.mid_block,
            this.mid_block.resnets.at(0).conv2.outChannels,
            this.mid_block.attentions.length,
          )
        : undefined,
      up: this.up_blocks.items.map((b, i) =>
        check(`up_blocks.${i}`, adapter.up_blocks.at(i), b.resnets.at(0).conv2.outChannels, b.resnets.length),
      ),
    };
  }

  /** SDXL's micro-conditioning: [pooled text, sinusoid of each time id] (B, inputDim) → (B, temb). */
  #addedEmbedding(b: number, added?: AddedConditions): Tensor {
    const tt = this.config.textTime;
    if (!added || !tt || !this.add_embedding) {
      throw new Error(
        "unet: this model (addition_embed_type 'text_time', SDXL) needs added conditions: the pooled text " +
          'embedding (B, D) and the time ids (B, n)',
      );
    }
    const { textEmbeds, timeIds } = added;
    const [d, n] = [textEmbeds.shape[1] as number, timeIds.shape[1] as number];
    if (
      textEmbeds.rank !== 2 ||
      timeIds.rank !== 2 ||
      textEmbeds.shape[0] !== b ||
      timeIds.shape[0] !== b ||
      d + n * tt.timeEmbedDim !== tt.inputDim
    ) {
      throw new Error(
        `unet: added conditions text embeds ${formatShape(textEmbeds.shape)} and time ids ` +
          `${formatShape(timeIds.shape)} must be (${b}, D) and (${b}, n) with D + n · ${tt.timeEmbedDim} ` +
          `(addition_time_embed_dim) = ${tt.inputDim} (projection_class_embeddings_input_dim)`,
      );
    }
    const c = this.config;
    const ids = timestepEmbedding(timeIds.reshape([-1]), tt.timeEmbedDim, c.flipSinToCos, c.freqShift); // (B·n, dim)
    return this.add_embedding.forward(concat([textEmbeds, ids.reshape([b, -1])], 1)); // (B, D + n·dim) → (B, temb)
  }
}
