// Stage 1: the AutoencoderKL of the Shapes model (Rombach et al. 2022, §3 and appendix G), 64×64×3 →
// 16×16×4, trained with an L2 reconstruction loss and a small KL term towards N(0, I):
//
//   L = [Σ (x − D(z))² + β · KL(q(z|x) ‖ N(0, I))] / (3·H·W),  z = μ + σ·ε  (reparameterisation),  β = 1e-6
//   KL = ½ Σ (μ² + σ² − 1 − log σ²), summed over the latent's elements, averaged over the batch
//
// i.e. LDM's weighting (reconstruction summed over pixels against β · KL), divided by the pixel count so
// that the loss reads as a per-pixel MSE. (β on a per-pixel mean instead is 12288× stronger: with Adam it
// drove σ of three of the four latent channels up to ~0.7 and the VAE lost colour.)
//
// (no perceptual or adversarial loss: the Shapes world's flat colours do not need them). L2 rather than L1:
// under L1 an object the latent does not yet encode is best drawn as background (the median), which gives
// the encoder no signal; L2 draws it as a faint mean, and the model leaves that plateau much sooner.

import {
  AutoencoderKL,
  type Generator,
  initParameters,
  type JsonConfig,
  type LatentDistribution,
  noGrad,
  Tensor,
} from '../index.js';

/**
 * The VAE stage's model and loss: channels, latent channels, the KL weight β, the weight on objects and the
 * decoder's latent noise.
 */
export interface VAETrainConfig {
  blockOutChannels: number[];
  normNumGroups: number;
  layersPerBlock: number;
  /** Channels of the latent (Stable Diffusion 1.x/2.x: 4; SD3: 16); absent: 4. */
  latentChannels?: number;
  klWeight: number;
  /**
   * Extra weight of the reconstruction error on the objects (their coverage grown by a pixel): per-pixel
   * weight 1 + objectWeight there, 1 elsewhere, normalised by the mean weight. 0 = plain MSE.
   */
  objectWeight?: number;
  /**
   * Decoder stage: Gaussian noise of this standard deviation (in raw latent units) added to the sampled latent
   * before decoding, so that the decoder learns to draw latents a little off the encoder's (as a UNet's are).
   * 0 or absent: none.
   */
  latentNoise?: number;
}

/** The VAE stage's defaults. */
export const VAE_DEFAULTS: VAETrainConfig = {
  blockOutChannels: [16, 32, 64],
  normNumGroups: 16,
  layersPerBlock: 1,
  klWeight: 1e-6,
};

/** The diffusers config.json of the VAE. */
export function vaeConfigJson(c: VAETrainConfig, scalingFactor = 1): JsonConfig {
  return {
    _class_name: 'AutoencoderKL',
    in_channels: 3,
    out_channels: 3,
    down_block_types: c.blockOutChannels.map(() => 'DownEncoderBlock2D'),
    up_block_types: c.blockOutChannels.map(() => 'UpDecoderBlock2D'),
    block_out_channels: c.blockOutChannels,
    layers_per_block: c.layersPerBlock,
    act_fn: 'silu',
    latent_channels: c.latentChannels ?? 4,
    norm_num_groups: c.normNumGroups,
    sample_size: 64,
    scaling_factor: scalingFactor,
  };
}

/** z = μ + σ·ε with ε from `gen`. */
export function sampleLatent(q: LatentDistribution, gen: Generator): Tensor {
  return q.mean.add(q.logvar.mul(0.5).exp().mul(gen.randn(q.mean.shape)));
}

/** KL(q ‖ N(0, I)) summed over each latent, averaged over the batch. */
export function klDivergence(q: LatentDistribution): Tensor {
  const b = q.mean.shape[0] as number;
  return q.mean
    .mul(q.mean)
    .add(q.logvar.exp())
    .sub(1)
    .sub(q.logvar)
    .sum()
    .mul(0.5 / b);
}

/** The VAE stage's loss and the values logged with it. */
export interface VAELoss {
  loss: Tensor;
  logs: Record<string, number>;
}

/** The stage-1 loss on images (B, 3, H, W) in [-1, 1]; record gradients around it. */
export function vaeLoss(
  vae: AutoencoderKL,
  images: Tensor,
  gen: Generator,
  klWeight: number,
  weighting?: { objects: Tensor; objectWeight: number },
  latentNoise = 0,
): VAELoss {
  const q = vae.encode(images);
  let z = sampleLatent(q, gen);
  if (latentNoise > 0) z = z.add(gen.randn(z.shape).mul(latentNoise));
  const recon = vae.decode(z);
  const err = recon.sub(images).pow(2);
  let rec = err.mean();
  if (weighting && weighting.objectWeight > 0) {
    const w = weighting.objects.mul(weighting.objectWeight).add(1); // (B, 1, H, W), broadcast over RGB
    rec = err.mul(w).mean().div(w.mean());
  }
  const kl = klDivergence(q);
  const pixels = images.size / (images.shape[0] as number);
  return { loss: rec.add(kl.mul(klWeight / pixels)), logs: { rec: rec.item(), kl: kl.item() } };
}

/**
 * The latent scaling factor as Stable Diffusion chose its 0.18215: 1 / std of sampled latents over
 * `images`, so that scaled latents have unit variance.
 */
export function measureScalingFactor(vae: AutoencoderKL, images: Tensor, gen: Generator): number {
  return noGrad(() => {
    const z = sampleLatent(vae.encode(images), gen).data as Float32Array;
    let s = 0;
    let s2 = 0;
    for (const x of z) {
      s += x;
      s2 += x * x;
    }
    const mean = s / z.length;
    return 1 / Math.sqrt(s2 / z.length - mean * mean);
  });
}

/** A fresh AutoencoderKL of this config. */
export function buildVAE(c: VAETrainConfig, scalingFactor = 1): AutoencoderKL {
  return AutoencoderKL.fromConfig(vaeConfigJson(c, scalingFactor));
}

/** log σ² that q(z|x) starts from: σ ≈ 0.007, so early training decodes nearly deterministic latents. */
export const INITIAL_LOGVAR = -10;

/** Sets the log-variance half of quant_conv to weight 0, bias INITIAL_LOGVAR (σ ≈ 0.007 everywhere). */
export function resetPosteriorVariance(vae: AutoencoderKL): void {
  const c = vae.config.latentChannels;
  const bias = vae.quant_conv.bias;
  if (!bias) throw new Error('resetPosteriorVariance: quant_conv has no bias');
  const b = Float32Array.from(bias.value.data as Float32Array);
  b.fill(INITIAL_LOGVAR, c);
  bias.value = new Tensor(b, bias.shape);
  const w = Float32Array.from(vae.quant_conv.weight.value.data as Float32Array);
  w.fill(0, (w.length / (2 * c)) * c);
  vae.quant_conv.weight.value = new Tensor(w, vae.quant_conv.weight.shape);
}

/**
 * PyTorch's default init (nn/init.ts), except the log-variance half of quant_conv (resetPosteriorVariance).
 * From log σ² ≈ 0 (σ = 1 against means of size ~0.1) the decoder would see mostly noise and learn the mean
 * image, and the encoder would take thousands of steps to shrink σ by itself.
 */
export function initVAE(vae: AutoencoderKL, gen: Generator): void {
  initParameters(vae, gen);
  resetPosteriorVariance(vae);
}
