// The DiT stage: an SD3-style MM-DiT (`SD3Transformer2DModel`) trained with flow matching (rectified flow;
// Lipman et al. 2023, Liu et al. 2023; as SD3, Esser et al. 2024) on the latents of a frozen image model's
// VAE, conditioned by its frozen CLIP text encoder:
//
//   x_σ = (1 − σ) x₀ + σ ε,   L = E_{x₀, c, ε, σ} ‖(ε − x₀) − v_θ(x_σ, 1000 σ, c)‖²            (SD3 eq. 1–3)
//
// σ is drawn logit-normally (SD3 §3.1, "lognorm(0, 1)": σ = sigmoid(n), n ~ N(0, 1)), then moved by SD3's
// shift s (σ' = sσ / (1 + (s − 1)σ), eq. 23) — the shift the exported scheduler samples with. The text states
// are the CLIP encoder's last hidden states (B, T, D), zero-padded to the transformer's joint_attention_dim as
// SD3 pads CLIP to T5's width; the pooled text is the plain CLIP's pooled output (the final state at the
// end-of-text token). The caption is dropped (empty) with probability 0.1, so one model gives both terms of
// classifier-free guidance. Runs through trainLoop (checkpoints, resume, EMA, progress bar).

import {
  AdamW,
  type AutoencoderKL,
  type CLIPTextModel,
  type CLIPTokenizer,
  concat,
  Generator,
  initParameters,
  type JsonConfig,
  noGrad,
  SD3Transformer2DModel,
  Tensor,
} from '../index.js';
import { hasCheckpoint, readCheckpointMeta, type TrainState } from './checkpoint.js';
import { EMA } from './ema.js';
import { type LoopResult, trainLoop } from './loop.js';
import { dropCaptions } from './text-to-image.js';
import { sampleLatent } from './vae.js';

/** The data seed the DiT stage draws its examples from: the UNet stage's (data.ts; scene seeds for training). */
export const DIT_DATA = 2;

/** The MM-DiT's size and the flow-matching objective of the DiT stage. */
export interface DiTConfig {
  /** Joint transformer blocks. */
  layers: number;
  heads: number;
  headDim: number;
  patchSize: number;
  /** SD3's timestep shift s used in training and written to the scheduler (1 = none). */
  shift: number;
  /** How σ is drawn: SD3's logit-normal lognorm(0, 1) or uniform on (0, 1). */
  timesteps: 'logit-normal' | 'uniform';
  captionDropout: number;
  /** Decay of a moving average of the weights, exported instead of them; absent: none. */
  ema?: number;
}

/** The DiT stage's defaults: 6 blocks of width 128 (4 heads × 32) over 2 × 2 patches. */
export const DIT_DEFAULTS: DiTConfig = {
  layers: 6,
  heads: 4,
  headDim: 32,
  patchSize: 2,
  shift: 1,
  timesteps: 'logit-normal',
  captionDropout: 0.1,
};

/** The frozen parts of the image model the DiT is trained on: VAE, CLIP text encoder and its tokenizer. */
export interface DiTBase {
  vae: AutoencoderKL;
  textEncoder: CLIPTextModel;
  tokenizer: CLIPTokenizer;
}

/** diffusers' `SD3Transformer2DModel` config.json of a DiT config on `base`'s latents and text states. */
export function ditTransformerConfigJson(c: DiTConfig, base: DiTBase, latentSize: number): JsonConfig {
  const text = base.textEncoder.config.hiddenSize;
  return {
    _class_name: 'SD3Transformer2DModel',
    sample_size: latentSize,
    patch_size: c.patchSize,
    in_channels: base.vae.config.latentChannels,
    out_channels: base.vae.config.latentChannels,
    num_layers: c.layers,
    attention_head_dim: c.headDim,
    num_attention_heads: c.heads,
    joint_attention_dim: text,
    caption_projection_dim: c.heads * c.headDim,
    pooled_projection_dim: text,
    pos_embed_max_size: latentSize,
  };
}

/** diffusers' `FlowMatchEulerDiscreteScheduler` config of a DiT config (its training shift). */
export function ditSchedulerConfigJson(c: DiTConfig): JsonConfig {
  return { _class_name: 'FlowMatchEulerDiscreteScheduler', num_train_timesteps: 1000, shift: c.shift };
}

/** `b` training σ in (0, 1): logit-normal or uniform, then shifted by s (SD3 eq. 23). */
export function sampleSigmas(gen: Generator, b: number, c: Pick<DiTConfig, 'shift' | 'timesteps'>): number[] {
  const raw =
    c.timesteps === 'uniform'
      ? Array.from(gen.rand([b]).data as Float32Array)
      : Array.from(gen.randn([b]).data as Float32Array, (n) => 1 / (1 + Math.exp(-n)));
  return raw.map((u) => {
    const s = Math.min(Math.max(u, 1e-5), 1 - 1e-5);
    return (c.shift * s) / (1 + (c.shift - 1) * s);
  });
}

/** Text states (B, T, joint) zero-padded from the CLIP width, and the pooled text (B, D), under noGrad. */
export function encodeDiTText(
  base: DiTBase,
  captions: readonly string[],
  joint: number,
): { states: Tensor; pooled: Tensor } {
  return noGrad(() => {
    const out = base.textEncoder.encodePrompts(base.tokenizer, captions);
    const [b, t, d] = out.lastHiddenState.shape as [number, number, number];
    const states =
      d === joint ? out.lastHiddenState : concat([out.lastHiddenState, Tensor.zeros([b, t, joint - d])], 2);
    return { states, pooled: out.pooled };
  });
}

/** The flow-matching loss of one batch; record gradients around it. */
export function flowMatchingLoss(
  model: SD3Transformer2DModel,
  base: DiTBase,
  images: Tensor,
  captions: readonly string[],
  gen: Generator,
  c: DiTConfig,
): { loss: Tensor; logs: Record<string, number> } {
  const b = images.shape[0] as number;
  const x0 = noGrad(() => sampleLatent(base.vae.encode(images), gen).mul(base.vae.config.scalingFactor));
  const sigmas = sampleSigmas(gen, b, c);
  const eps = gen.randn(x0.shape);
  const col = (f: (sigma: number) => number) => Tensor.from(sigmas.map(f), [b, 1, 1, 1]);
  const xt = noGrad(() => x0.mul(col((x) => 1 - x)).add(eps.mul(col((x) => x)))); // (1 − σ) x₀ + σ ε
  const target = noGrad(() => eps.sub(x0));
  const text = encodeDiTText(
    base,
    dropCaptions(captions, c.captionDropout, gen),
    model.config.jointAttentionDim,
  );
  const pred = model.forward(
    xt,
    sigmas.map((x) => 1000 * x),
    text.states,
    text.pooled,
  );
  const loss = pred.sub(target).pow(2).mean();
  return { loss, logs: { sigma: sigmas[0] as number } };
}

/**
 * A fresh MM-DiT: PyTorch's default initialisation, then DiT's adaLN-Zero (Peebles & Xie 2023, §3.2): every
 * modulation and the output layer start at zero, so each block starts as the identity. The 2-D sin-cos position
 * table is fixed (a buffer in diffusers), not trained.
 */
export function buildDiT(json: JsonConfig, seed: number): SD3Transformer2DModel {
  const model = SD3Transformer2DModel.fromConfig(json);
  const gen = new Generator(seed + 8);
  for (const part of [
    model.pos_embed.proj,
    model.time_text_embed,
    model.context_embedder,
    model.transformer_blocks,
    model.norm_out,
    model.proj_out,
  ])
    initParameters(part, gen);
  const zero = (l: { weight: { value: Tensor }; bias?: { value: Tensor } | null }) => {
    l.weight.value = Tensor.zeros(l.weight.value.shape);
    if (l.bias) l.bias.value = Tensor.zeros(l.bias.value.shape);
  };
  for (const block of model.transformer_blocks) {
    zero(block.norm1.linear);
    zero(block.norm1_context.linear);
  }
  zero(model.norm_out.linear);
  zero(model.proj_out);
  model.requiresGrad();
  model.pos_embed.pos_embed.value.requiresGrad = false;
  return model;
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Pick<T, K> {
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]])) as Pick<T, K>;
}

/** How a DiT run goes: checkpoint folder, steps, batch, learning rate, time budget, resuming. */
export interface DiTTrainOptions {
  out: string;
  steps: number;
  batchSize: number;
  lr: number;
  warmup: number;
  decay?: 'constant' | 'cosine';
  minutes?: number;
  seed: number;
  resume: boolean;
  checkpointMinutes: number;
  /** No progress bar. */
  quiet?: boolean;
  /** Where a progress line goes every 25 steps. */
  log?: (line: string) => void;
  /**
   * New runs only: start from these transformer weights (diffusers names, e.g. an exported folder's
   * transformer/) instead of the adaLN-Zero initialisation; AdamW's moments start afresh.
   */
  initFrom?: ReadonlyMap<string, Tensor>;
}

/** Examples of the training data: images (B, 3, H, W) in [-1, 1] and their captions. */
export type DiTBatches = (step: number, batchSize: number) => { images: Tensor; captions: string[] };

/**
 * Trains an MM-DiT with flow matching on `base`'s frozen VAE latents and CLIP text states; `<out>` holds the
 * resumable checkpoint (`transformer.*` in diffusers' names, AdamW moments, the moving average).
 */
export function trainDiT(
  base: DiTBase,
  batches: DiTBatches,
  latentSize: number,
  c: DiTConfig,
  o: DiTTrainOptions,
): { result: LoopResult; model: SD3Transformer2DModel; history: Record<string, number>[] } {
  // a resumed run keeps the architecture and objective it started with
  if (o.resume && hasCheckpoint(o.out)) {
    if (o.initFrom) o.log?.(`train dit: resuming ${o.out}, so the initial weights given are not used`);
    const saved = readCheckpointMeta(o.out).extra.config as DiTConfig;
    c = { ...c, ...pick(saved, ['layers', 'heads', 'headDim', 'patchSize', 'shift', 'timesteps']) };
  }
  const resuming = o.resume && hasCheckpoint(o.out);
  const model = buildDiT(ditTransformerConfigJson(c, base, latentSize), o.seed);
  if (o.initFrom && !resuming) {
    model.load(o.initFrom); // strict: the architecture must be this run's
    model.requiresGrad();
    model.pos_embed.pos_embed.value.requiresGrad = false;
  }
  base.vae.requiresGrad(false);
  base.textEncoder.requiresGrad(false);
  const table = model.pos_embed.pos_embed;
  const params = model.parameters().filter((p) => p !== table);
  const state: TrainState = {
    modules: { transformer: model },
    optimizer: new AdamW(params, { lr: o.lr }),
    gen: new Generator(o.seed + 9),
    history: [],
    ...(c.ema ? { ema: new EMA(params, c.ema) } : {}),
  };
  const result = trainLoop(
    state,
    (step) => {
      const { images, captions } = batches(step, o.batchSize);
      return flowMatchingLoss(model, base, images, captions, state.gen, c);
    },
    {
      dir: o.out,
      label: 'dit',
      steps: o.steps,
      ...(o.minutes !== undefined ? { minutes: o.minutes } : {}),
      lr: o.lr,
      warmup: o.warmup,
      ...(o.decay ? { decay: o.decay } : {}),
      clip: 1,
      checkpointMinutes: o.checkpointMinutes,
      resume: o.resume,
      extra: { config: c, latentSize },
      quiet: o.quiet ?? false,
      ...(o.log ? { log: o.log, logEvery: 25 } : {}),
    },
  );
  return { result, model, history: state.history };
}
