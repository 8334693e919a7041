// Stage 2: a CLIP-architecture text encoder and a UNet2DConditionModel trained jointly on the frozen VAE's
// latents with the DDPM ε-objective (Ho et al. 2020, eq. 14; Rombach et al. 2022, eq. 2):
//
//   L = E_{z₀, c, ε, t} ‖ε − ε_θ(√ᾱ_t z₀ + √(1 − ᾱ_t) ε, t, τ_θ(c))‖²,  t ~ U{0, …, 999}
//
// z₀ = scaling_factor · (a sample of q(z|x)); ᾱ_t from Stable Diffusion's scaled_linear betas; the caption
// c is replaced by the empty caption with probability 0.1, so one model gives both terms of
// classifier-free guidance (Ho & Salimans 2022).
// Optional terms: Min-SNR-γ weighting, object weighting, a timestep bias, an x₀-weight floor, and TokenCompose's
// grounding of the cross-attention maps (methods/map/token-grounding.ts).
//
// Or the v-objective on a zero-terminal-SNR schedule (Lin et al. 2024, "Common Diffusion Noise Schedules and
// Sample Steps are Flawed"): the target is v = √ᾱ ε − √(1 − ᾱ) z₀ (Salimans & Ho 2022) and the betas are
// rescaled so that ᾱ_999 = 0. On SD's schedule ᾱ_999 ≈ 0.0047: the training input at t = 999 still holds
// 7 % of the image, enough to show where the objects are, so the model learns to read the layout from the
// noise and never from the caption — sampling from pure noise then puts objects wherever the noise has a
// bump, whatever the prompt says (docs/training.md, session 9).

import {
  type AutoencoderKL,
  CLIPTextModel,
  type CLIPTokenizer,
  DDPMScheduler,
  type Generator,
  type JsonConfig,
  noGrad,
  perRow,
  Tensor,
  TokenGrounding,
  UNet2DConditionModel,
} from '../index.js';
import type { ObjectWord } from './data.js';
import { sampleLatent } from './vae.js';

/**
 * The text-to-image stage's model and objective: UNet and text-encoder sizes, vocabulary, noise schedule and
 * prediction target.
 */
export interface TextToImageConfig {
  blockOutChannels: number[];
  /** ResNet (+ transformer) layers per UNet block (diffusers' `layers_per_block`); absent: 1. */
  layersPerBlock?: number;
  /** Latent size the UNet is trained at (its config's `sample_size`): 64 / the VAE's down-sampling. */
  sampleSize?: number;
  /** The VAE's latent channels: the UNet's in and out channels; absent: 4. */
  latentChannels?: number;
  /** Heads per block (diffusers' `attention_head_dim`). */
  heads: number;
  normNumGroups: number;
  textHidden: number;
  textLayers: number;
  textHeads: number;
  /** Token length of the text encoder (and the tokenizer's model_max_length). */
  maxLength: number;
  captionDropout: number;
  /** Images the latent scaling factor is measured on. */
  scalingImages: number;
  /**
   * Min-SNR-γ loss weighting (Hang et al. 2023, "Efficient Diffusion Training via Min-SNR Weighting
   * Strategy"): each example's ε-MSE × min(SNR(t), γ) / SNR(t), SNR = ᾱ/(1 − ᾱ). 0 or absent: unweighted.
   */
  minSnrGamma?: number;
  /**
   * A floor under the weight each timestep gives its x₀ error. The ε-loss weighs an x₀ error by SNR(t) (and
   * Min-SNR-γ by min(SNR, γ)): ≈ 0.005 at t = 999, where the layout of a sample is decided. With a floor f the
   * example's weight becomes max(min(SNR, γ), f) / SNR (γ = ∞ without Min-SNR): every x₀ error weighs ≥ f.
   * 0 or absent: none.
   */
  x0WeightFloor?: number;
  /**
   * TokenCompose's grounding terms (methods/map/token-grounding.ts): weights of the token and pixel losses of
   * the object words' cross-attention maps against their objects' masks; 0 or absent: none.
   */
  grounding?: { token: number; pixel: number; place?: number };
  /** Extra ε-loss weight on latent pixels covering an object (as the VAE's `objectWeight`); 0 or absent: none. */
  objectWeight?: number;
  /** Timesteps drawn with a bias toward the noisy or the clean end; absent: uniformly. */
  timestepBias?: TimestepBias;
  /** Decay of an exponential moving average of the weights (ema.ts), exported instead of them; absent: none. */
  ema?: number;
  /** What the UNet predicts: ε (absent) or v = √ᾱ ε − √(1 − ᾱ) z₀; the exported scheduler says the same. */
  prediction?: PredictionTarget;
  /** Betas rescaled to a zero terminal SNR (needs `prediction: 'v_prediction'`); exported with trailing steps. */
  zeroTerminalSnr?: boolean;
}

/** What the UNet is trained to predict: the noise ε, or v (Salimans & Ho 2022). */
export type PredictionTarget = 'epsilon' | 'v_prediction';

/** The text-to-image stage's defaults. */
export const TEXT_TO_IMAGE_DEFAULTS: TextToImageConfig = {
  blockOutChannels: [32, 64],
  heads: 4,
  normNumGroups: 32,
  textHidden: 64,
  textLayers: 2,
  textHeads: 4,
  maxLength: 32,
  captionDropout: 0.1,
  scalingImages: 128,
};

/** Stable Diffusion's training noise schedule (scaled_linear, β from 0.00085 to 0.012, 1000 steps). */
export const SD_NOISE_SCHEDULE = {
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
} as const;

export function unetConfigJson(c: TextToImageConfig): JsonConfig {
  return {
    _class_name: 'UNet2DConditionModel',
    sample_size: c.sampleSize ?? 16,
    in_channels: c.latentChannels ?? 4,
    out_channels: c.latentChannels ?? 4,
    down_block_types: c.blockOutChannels.map(() => 'CrossAttnDownBlock2D'),
    up_block_types: c.blockOutChannels.map(() => 'CrossAttnUpBlock2D'),
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    block_out_channels: c.blockOutChannels,
    layers_per_block: c.layersPerBlock ?? 1,
    attention_head_dim: c.heads,
    cross_attention_dim: c.textHidden,
    norm_num_groups: c.normNumGroups,
    act_fn: 'silu',
    flip_sin_to_cos: true,
    freq_shift: 0,
  };
}

export function textEncoderConfigJson(c: TextToImageConfig, vocabSize: number): JsonConfig {
  // CLIP's layout puts <|startoftext|>, <|endoftext|> last (see bpe.ts)
  return {
    architectures: ['CLIPTextModel'],
    model_type: 'clip_text_model',
    vocab_size: vocabSize,
    hidden_size: c.textHidden,
    intermediate_size: 4 * c.textHidden,
    num_hidden_layers: c.textLayers,
    num_attention_heads: c.textHeads,
    max_position_embeddings: c.maxLength,
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
    bos_token_id: vocabSize - 2,
    eos_token_id: vocabSize - 1,
    pad_token_id: vocabSize - 1,
  };
}

/**
 * The models of the text-to-image stage: UNet, text encoder and tokenizer trained, the frozen VAE and its
 * scaling factor, the noise schedule.
 */
export interface TextToImageModels {
  unet: UNet2DConditionModel;
  textEncoder: CLIPTextModel;
  tokenizer: CLIPTokenizer;
  vae: AutoencoderKL;
  scalingFactor: number;
  noise: DDPMScheduler;
}

/** A fresh UNet and CLIP text encoder of this config (PyTorch's default initialisation). */
export function buildTextToImage(
  c: TextToImageConfig,
  vocabSize: number,
): { unet: UNet2DConditionModel; textEncoder: CLIPTextModel } {
  return {
    unet: UNet2DConditionModel.fromConfig(unetConfigJson(c)),
    textEncoder: CLIPTextModel.fromConfig(textEncoderConfigJson(c, vocabSize)),
  };
}

/** The training schedule: SD's betas, rescaled to a zero terminal SNR when asked. */
export function trainingNoiseSchedule(c: { zeroTerminalSnr?: boolean } = {}): DDPMScheduler {
  return DDPMScheduler.fromConfig({
    _class_name: 'DDPMScheduler',
    ...SD_NOISE_SCHEDULE,
    ...(c.zeroTerminalSnr ? { rescale_betas_zero_snr: true } : {}),
  });
}

/** Rejects a prediction target / schedule pair that cannot be trained. */
export function checkPrediction(c: { prediction?: PredictionTarget; zeroTerminalSnr?: boolean }): void {
  const p = c.prediction ?? 'epsilon';
  if (p !== 'epsilon' && p !== 'v_prediction')
    throw new Error(`prediction must be epsilon or v_prediction, got '${p}'`);
  if (c.zeroTerminalSnr && p === 'epsilon')
    throw new Error(
      'a zero terminal SNR needs the v-prediction target: at SNR 0 the input is pure noise, so predicting ε ' +
        'is trivial and says nothing about the image (use --prediction v_prediction)',
    );
}

/** Captions with each replaced by '' with probability `p` (one uniform draw per caption from `gen`). */
export function dropCaptions(captions: readonly string[], p: number, gen: Generator): string[] {
  const u = gen.rand([captions.length]).data as Float32Array;
  return captions.map((c, i) => ((u[i] as number) < p ? '' : c));
}

/**
 * A bias of the training timesteps, as the `--timestep_bias_strategy` of diffusers' SDXL training script:
 * the sampling weight of the `portion` of timesteps at the noisy end (`later`, large t) or the clean end
 * (`earlier`) is multiplied by `multiplier`. Layout is decided at the noisy end, where the ε-loss weighs
 * an error in the predicted image by SNR(t) ≈ 0.01 only.
 */
export interface TimestepBias {
  strategy: 'later' | 'earlier';
  multiplier: number;
  portion: number;
}

/** The sampling probability of each of the `n` training timesteps under `bias`. */
export function timestepProbabilities(n: number, bias: TimestepBias): Float64Array {
  const { strategy, multiplier, portion } = bias;
  if (!(multiplier > 0) || !(portion > 0 && portion <= 1))
    throw new Error(
      `timestep bias: multiplier must be > 0 and portion in (0, 1], got ${multiplier} and ${portion}`,
    );
  const k = Math.round(n * portion);
  const p = new Float64Array(n).fill(1);
  const [from, to] = strategy === 'later' ? [n - k, n] : [0, k];
  for (let t = from; t < to; t++) p[t] = multiplier;
  const total = p.reduce((a, b) => a + b, 0);
  return p.map((x) => x / total);
}

/** `b` training timesteps in [0, n): uniform without a bias, else drawn from timestepProbabilities. */
export function sampleTimesteps(gen: Generator, b: number, n: number, bias?: TimestepBias): number[] {
  if (!bias) return gen.randint([b], 0, n).toArray();
  const cdf = timestepProbabilities(n, bias);
  for (let t = 1; t < n; t++) cdf[t] = (cdf[t] as number) + (cdf[t - 1] as number);
  return Array.from(gen.rand([b]).data as Float32Array, (u) => {
    let t = 0;
    while (t < n - 1 && u >= (cdf[t] as number)) t++;
    return t;
  });
}

/**
 * Min-SNR-γ weights for timesteps `t`. Each loss weighs an error in the predicted x₀ by a native factor w₀: the
 * ε-loss by SNR = ᾱ_t / (1 − ᾱ_t), the v-loss by SNR + 1 (‖v − v̂‖² = ‖x₀ − x̂₀‖² / (1 − ᾱ)). The weight caps
 * that factor at γ: min(w₀, γ) / w₀ — for ε Hang et al.'s min(SNR, γ) / SNR; for v it stays 1 up to
 * SNR = γ − 1 and is defined at SNR = 0, where a zero-terminal-SNR schedule's last step trains the layout
 * from the caption alone. With a floor f (`x0WeightFloor`) the capped factor is raised to at least f:
 * max(min(w₀, γ), f) / w₀. γ ≤ 0 means no cap.
 */
export function minSnrWeights(
  alphasCumprod: readonly number[],
  t: readonly number[],
  gamma: number,
  floor = 0,
  prediction: PredictionTarget = 'epsilon',
): Float32Array {
  return Float32Array.from(t, (ti) => {
    const a = alphasCumprod[ti] as number;
    const snr = a / (1 - a);
    const w0 = prediction === 'v_prediction' ? snr + 1 : snr;
    if (w0 === 0) throw new Error(`minSnrWeights: SNR 0 at timestep ${ti} leaves the ε-loss no x₀ weight`);
    return Math.max(gamma > 0 ? Math.min(w0, gamma) : w0, floor) / w0;
  });
}

/** v = √ᾱ_t ε − √(1 − ᾱ_t) z₀ per batch row (Salimans & Ho 2022, Sec. 4). */
export function velocity(
  alphasCumprod: readonly number[],
  z0: Tensor,
  eps: Tensor,
  t: readonly number[],
): Tensor {
  const col = (f: (a: number) => number) =>
    perRow(
      t.map((ti) => f(alphasCumprod[ti] as number)),
      z0,
    );
  return eps.mul(col((a) => Math.sqrt(a))).sub(z0.mul(col((a) => Math.sqrt(1 - a))));
}

/** How the stage-2 loss draws timesteps and weighs its errors; every field absent means the plain ε-MSE. */
export interface TextToImageLossOptions {
  /** Share of captions replaced by "" (classifier-free guidance). */
  captionDropout: number;
  /** The UNet's target: ε (absent) or v; the noise schedule (`m.noise`) is the caller's. */
  prediction?: PredictionTarget;
  /** Min-SNR-γ (Hang et al. 2023); 0 or absent: no cap. */
  minSnrGamma?: number;
  /** Extra weight on the objects' region (their coverage, (B, 1, 64, 64)). */
  weighting?: { objects: Tensor; objectWeight: number };
  /** Timesteps drawn with one end weighted (diffusers' SDXL script's bias). */
  timestepBias?: TimestepBias;
  /** Every timestep's x₀ error weighs at least this much (minSnrWeights' floor). */
  x0WeightFloor?: number;
  /**
   * TokenCompose's grounding terms on the UNet's cross-attention maps (methods/map/token-grounding.ts):
   * each row's object words (`words[b]`, coverages 64 × 64) weighted by `tokenWeight` and `pixelWeight`.
   * Rows whose caption was dropped are not grounded.
   */
  grounding?: {
    words: readonly (readonly ObjectWord[])[];
    tokenWeight: number;
    pixelWeight: number;
    /** Weight of the place words' terms relative to the other words' (default 1). */
    placeWeight?: number;
  };
}

/** The stage-2 loss on images (B, 3, 64, 64) and captions; record gradients around it. */
export function textToImageLoss(
  m: TextToImageModels,
  images: Tensor,
  captions: readonly string[],
  gen: Generator,
  o: TextToImageLossOptions,
): { loss: Tensor; logs: Record<string, number> } {
  const b = images.shape[0] as number;
  const z0 = noGrad(() => sampleLatent(m.vae.encode(images), gen).mul(m.scalingFactor)); // (B, 4, h, w)
  const { weighting, minSnrGamma = 0, x0WeightFloor = 0 } = o;
  const t = sampleTimesteps(gen, b, m.noise.alphasCumprod.length, o.timestepBias);
  const eps = gen.randn(z0.shape);
  const zt = m.noise.addNoise(z0, eps, t);
  const text = dropCaptions(captions, o.captionDropout, gen);
  const context = m.textEncoder.encodePrompts(m.tokenizer, text).lastHiddenState; // (B, T, D)
  const g =
    o.grounding && (o.grounding.tokenWeight > 0 || o.grounding.pixelWeight > 0) ? o.grounding : undefined;
  const grounding = g && new TokenGrounding();
  const ctx = grounding && {
    step: 0,
    numSteps: 1,
    timestep: t[0] as number,
    batch: { guidance: text.map(() => 'cond' as const), prompt: text.map(() => 0) },
    controllers: [grounding],
  };
  const pred = m.unet.forward(zt, t, context, { ctx });
  const target = o.prediction === 'v_prediction' ? velocity(m.noise.alphasCumprod, z0, eps, t) : eps;
  let err = pred.sub(target).pow(2);
  const mse = err.mean();
  if (weighting && weighting.objectWeight > 0) {
    // the objects' region at latent resolution (a latent pixel is on an object if any of its pixels is),
    // weighted 1 + objectWeight, normalised per example to mean weight 1
    const w = noGrad(() => {
      const [, , h, wd] = z0.shape as [number, number, number, number];
      const [H, W] = [weighting.objects.shape[2] as number, weighting.objects.shape[3] as number];
      const region = weighting.objects
        .reshape([b, 1, h, H / h, wd, W / wd])
        .max({ axes: [3, 5] }) // (B, 1, h, w)
        .mul(weighting.objectWeight)
        .add(1);
      return region.div(region.mean({ axes: [1, 2, 3], keepDims: true }));
    });
    err = err.mul(w);
  }
  let loss: Tensor;
  if (!(minSnrGamma > 0) && !(x0WeightFloor > 0)) loss = err.mean();
  else {
    const weights = minSnrWeights(m.noise.alphasCumprod, t, minSnrGamma, x0WeightFloor, o.prediction);
    loss = err
      .mean({ axes: [1, 2, 3] })
      .mul(new Tensor(weights, [b]))
      .mean();
  }
  const logs: Record<string, number> = { mse: mse.item() };
  if (g && grounding) {
    const [H, W] = [images.shape[2] as number, images.shape[3] as number];
    const words = text.map((caption, r) =>
      caption === ''
        ? []
        : (g.words[r] ?? []).map((w) => ({
            tokens: m.tokenizer.tokenIndices(caption, w.word),
            mask: w.coverage,
            ...(w.place && g.placeWeight !== undefined ? { weight: g.placeWeight } : {}),
          })),
    );
    const { token, pixel } = grounding.loss(words, H, W);
    loss = loss.add(token.mul(g.tokenWeight)).add(pixel.mul(g.pixelWeight));
    logs.token = token.item();
    logs.pixel = pixel.item();
  }
  return { loss, logs };
}
