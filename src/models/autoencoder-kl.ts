// AutoencoderKL (Kingma & Welling 2014; Rombach et al. 2022's first stage), with diffusers' names:
// image (B, 3, H, W) in [-1, 1] → diagonal Gaussian over latents (B, 4, H/f, W/f) → image.

import { join } from 'node:path';
import { Attention, assignAttentionLayers } from '../attention/attention.js';
import type { AttentionContext, HookOptions } from '../attention/hooks.js';
import { Conv2d, GroupNorm, loadStateDict, Module, ModuleList } from '../nn/index.js';
import { formatShape, type Tensor } from '../tensor/index.js';
import { type JsonConfig, readConfig } from './config.js';
import { type FromPretrainedOptions, pretrainedFolder, readPretrainedWeights } from './pretrained.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './unet-blocks.js';
import { parseVAEConfig, type VAEConfig } from './vae-config.js';

const EPS = 1e-6;

/**
 * DownEncoderBlock2D / UpDecoderBlock2D: `resnets` ResNet blocks, then a 2× downsampler (encoder) or upsampler
 * (decoder) on all but the last block. One class serves both, as the two differ only in the resampler.
 */
class VAEBlock extends Module {
  resnets: ModuleList<ResnetBlock2D>;
  downsamplers?: ModuleList<Downsample2D>;
  upsamplers?: ModuleList<Upsample2D>;
  constructor(c: VAEConfig, input: number, out: number, resnets: number, resample: 'down' | 'up' | null) {
    super();
    this.resnets = new ModuleList(
      Array.from(
        { length: resnets },
        (_, j) =>
          new ResnetBlock2D({
            inChannels: j === 0 ? input : out,
            outChannels: out,
            groups: c.normNumGroups,
            eps: EPS,
          }),
      ),
    );
    if (resample === 'down') this.downsamplers = new ModuleList([new Downsample2D(out, 0)]);
    if (resample === 'up') this.upsamplers = new ModuleList([new Upsample2D(out)]);
  }
  forward(x: Tensor): Tensor {
    for (const r of this.resnets) x = r.forward(x);
    if (this.downsamplers) return this.downsamplers.at(0).forward(x);
    return this.upsamplers ? this.upsamplers.at(0).forward(x) : x;
  }
}

/** UNetMidBlock2D of the VAE: resnet, single-head spatial self-attention with residual, resnet. */
class VAEMidBlock extends Module {
  attentions: ModuleList<Attention>;
  resnets: ModuleList<ResnetBlock2D>;
  constructor(c: VAEConfig, channels: number) {
    super();
    const resnet = () =>
      new ResnetBlock2D({ inChannels: channels, outChannels: channels, groups: c.normNumGroups, eps: EPS });
    this.attentions = new ModuleList([
      new Attention({
        queryDim: channels,
        heads: 1,
        dimHead: channels,
        qkvBias: true,
        normGroups: c.normNumGroups,
        normEps: EPS,
        residualConnection: true,
      }),
    ]);
    this.resnets = new ModuleList([resnet(), resnet()]);
  }
  forward(x: Tensor, ctx?: AttentionContext): Tensor {
    x = this.resnets.at(0).forward(x);
    x = this.attentions.at(0).forwardSpatial(x, { ctx });
    return this.resnets.at(1).forward(x);
  }
}

export class Encoder extends Module {
  conv_in: Conv2d;
  down_blocks: ModuleList<VAEBlock>;
  mid_block: VAEMidBlock;
  conv_norm_out: GroupNorm;
  conv_out: Conv2d;
  constructor(c: VAEConfig) {
    super();
    const boc = c.blockOutChannels;
    const last = boc[boc.length - 1] as number;
    this.conv_in = new Conv2d(c.inChannels, boc[0] as number, 3, { padding: 1 });
    this.down_blocks = new ModuleList(
      boc.map(
        (out, i) =>
          new VAEBlock(
            c,
            i === 0 ? (boc[0] as number) : (boc[i - 1] as number),
            out,
            c.layersPerBlock,
            i < boc.length - 1 ? 'down' : null,
          ),
      ),
    );
    this.mid_block = new VAEMidBlock(c, last);
    this.conv_norm_out = new GroupNorm(c.normNumGroups, last, EPS);
    this.conv_out = new Conv2d(last, 2 * c.latentChannels, 3, { padding: 1 });
  }
  forward(x: Tensor, ctx?: AttentionContext): Tensor {
    x = this.conv_in.forward(x);
    for (const b of this.down_blocks) x = b.forward(x);
    x = this.mid_block.forward(x, ctx);
    return this.conv_out.forward(this.conv_norm_out.forward(x).silu());
  }
}

export class Decoder extends Module {
  conv_in: Conv2d;
  mid_block: VAEMidBlock;
  up_blocks: ModuleList<VAEBlock>;
  conv_norm_out: GroupNorm;
  conv_out: Conv2d;
  constructor(c: VAEConfig) {
    super();
    const rev = [...c.blockOutChannels].reverse();
    const first = rev[0] as number;
    this.conv_in = new Conv2d(c.latentChannels, first, 3, { padding: 1 });
    this.mid_block = new VAEMidBlock(c, first);
    this.up_blocks = new ModuleList(
      rev.map(
        (out, i) =>
          new VAEBlock(
            c,
            i === 0 ? first : (rev[i - 1] as number),
            out,
            c.layersPerBlock + 1,
            i < rev.length - 1 ? 'up' : null,
          ),
      ),
    );
    const base = c.blockOutChannels[0] as number;
    this.conv_norm_out = new GroupNorm(c.normNumGroups, base, EPS);
    this.conv_out = new Conv2d(base, c.outChannels, 3, { padding: 1 });
  }
  forward(z: Tensor, ctx?: AttentionContext): Tensor {
    let x = this.conv_in.forward(z);
    x = this.mid_block.forward(x, ctx);
    for (const b of this.up_blocks) x = b.forward(x);
    return this.conv_out.forward(this.conv_norm_out.forward(x).silu());
  }
}

/** The diagonal Gaussian q(z|x) = N(mean, exp(logvar)). */
export interface LatentDistribution {
  mean: Tensor;
  logvar: Tensor;
}

/**
 * The VAE of Stable Diffusion (Rombach et al. 2022; diffusers' `AutoencoderKL`): images to latent
 * distributions and latents back to images.
 */
export class AutoencoderKL extends Module {
  readonly config: VAEConfig;
  encoder: Encoder;
  decoder: Decoder;
  quant_conv: Conv2d;
  post_quant_conv: Conv2d;

  constructor(config: VAEConfig) {
    super();
    this.config = config;
    this.encoder = new Encoder(config);
    this.decoder = new Decoder(config);
    this.quant_conv = new Conv2d(2 * config.latentChannels, 2 * config.latentChannels, 1);
    this.post_quant_conv = new Conv2d(config.latentChannels, config.latentChannels, 1);
    assignAttentionLayers(this, () => 'vae');
  }

  /** A VAE with fresh parameters from a diffusers `config.json`. */
  static fromConfig(json: JsonConfig): AutoencoderKL {
    return new AutoencoderKL(parseVAEConfig(json));
  }

  /**
   * Reads `config.json` and `diffusion_pytorch_model[.variant].safetensors` (or its sharded set) from `dir`
   * (or `dir/subfolder`), as diffusers' `from_pretrained`; loading is strict.
   */
  static fromPretrained(dir: string, opts: FromPretrainedOptions = {}): AutoencoderKL {
    const folder = pretrainedFolder(dir, opts);
    const config = parseVAEConfig(readConfig(folder), join(folder, 'config.json'));
    return new AutoencoderKL(config).load(
      readPretrainedWeights(folder, 'diffusion_pytorch_model', opts.variant),
    );
  }

  /** Sets the weights from a state dict, strictly (every key used, every shape checked). */
  load(tensors: ReadonlyMap<string, Tensor>): this {
    loadStateDict(this, tensors, { what: 'vae' });
    return this;
  }

  /** Spatial downscale factor between image and latents. */
  get scaleFactor(): number {
    return 2 ** (this.config.blockOutChannels.length - 1);
  }

  /** Encodes images (B, 3, H, W) in [-1, 1] to the diagonal Gaussian over latents (unscaled). */
  encode(image: Tensor, { ctx }: HookOptions = {}): LatentDistribution {
    if (image.rank !== 4 || image.shape[1] !== this.config.inChannels) {
      throw new Error(
        `vae.encode: expected an image (B, ${this.config.inChannels}, H, W), got ${formatShape(image.shape)}`,
      );
    }
    const f = this.scaleFactor;
    if ((image.shape[2] as number) % f !== 0 || (image.shape[3] as number) % f !== 0) {
      throw new Error(
        `vae.encode: image size ${image.shape[2]}×${image.shape[3]} must be a multiple of ${f}`,
      );
    }
    const moments = this.quant_conv.forward(this.encoder.forward(image, ctx));
    const [mean, logvar] = moments.split(2, 1) as [Tensor, Tensor];
    return { mean, logvar: logvar.clamp(-30, 20) };
  }

  /** Decodes latents (B, C, h, w) (unscaled) to images (B, 3, H, W) in [-1, 1]. */
  decode(z: Tensor, { ctx }: HookOptions = {}): Tensor {
    if (z.rank !== 4 || z.shape[1] !== this.config.latentChannels) {
      throw new Error(
        `vae.decode: expected latents (B, ${this.config.latentChannels}, h, w), got ${formatShape(z.shape)}`,
      );
    }
    return this.decoder.forward(this.post_quant_conv.forward(z), ctx);
  }
}
