// SD3-style text to image (Esser et al. 2024, "Scaling Rectified Flow Transformers for High-Resolution Image
// Synthesis"): an MM-DiT (`SD3Transformer2DModel`) predicts the velocity v = ε − x₀ of rectified flow, and
// `FlowMatchEulerDiscreteScheduler` integrates dx/dσ = v from σ = 1 (noise) to 0 with classifier-free guidance
// on v — diffusers 0.30.0's `StableDiffusion3Pipeline` denoising loop (test/golden/sd3/sd3-sampling.test.ts).
//
// The text side is one CLIP encoder (SD3 itself uses CLIP-L + CLIP-G + T5-XXL; those are not built): its last
// hidden states (B, T, D) are zero-padded on the channel axis to the transformer's joint_attention_dim, as SD3
// pads the CLIP states to T5's width, and no T5 tokens are appended; the pooled text is `text_embeds` of a
// `CLIPTextModelWithProjection` (SD3's CLIP-L part) or, for a plain `CLIPTextModel`, its pooled output (the
// final state at the end-of-text token). The negative prompt defaults to "" (diffusers' default; SD3 does not
// zero it).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { guidedBatch, plainBatch } from '../attention/call.js';
import type { AttentionContext, Controller } from '../attention/hooks.js';
import { jsonPreview } from '../io/json-preview.js';
import { AutoencoderKL } from '../models/autoencoder-kl.js';
import { CLIPTextModel } from '../models/clip-text.js';
import { CLIPTextModelWithProjection } from '../models/clip-text-projection.js';
import { CLIPTokenizer } from '../models/clip-tokenizer.js';
import { type JsonConfig, readConfig } from '../models/config.js';
import { SD3Transformer2DModel } from '../models/sd3-transformer.js';
import { FlowMatchEulerDiscreteScheduler } from '../schedulers/flow-match-euler.js';
import { concat, noGrad, Tensor } from '../tensor/index.js';
import { randn } from '../tensor/random.js';
import type { StepEvent } from './stable-diffusion.js';

/** model_index.json's `_class_name` of an SD3 folder. */
export const SD3_PIPELINE = 'StableDiffusion3Pipeline';

/** Whether `dir` is a diffusers SD3 folder (model_index.json names StableDiffusion3Pipeline). */
export function isSD3Folder(dir: string): boolean {
  const path = join(dir, 'model_index.json');
  if (!existsSync(path)) return false;
  return readConfig(dir, 'model_index.json')['_class_name'] === SD3_PIPELINE;
}

/** What an SD3 generation takes besides the model. */
export interface SD3GenerateOptions {
  /** One prompt or several (one image each). */
  prompt: string | string[];
  /** Default "" for every prompt. */
  negativePrompt?: string | string[];
  seed?: number;
  /** Default 28 (diffusers' SD3 default). */
  steps?: number;
  /** Classifier-free guidance on the velocity (default 7; ≤ 1: the conditional row alone). */
  guidanceScale?: number;
  /** Starting noise (B, C, h, w), default seeded Gaussian noise (σ = 1 is pure noise: no scaling). */
  latents?: Tensor;
  width?: number;
  height?: number;
  /** Controllers on every joint attention call. */
  controllers?: readonly Controller[];
  /** Called after each step. */
  onStep?: (e: StepEvent) => void;
}

/** What the flow-matching sampling loop takes: start latents, text (unconditional rows first when guided). */
export interface FlowSampling {
  /** (n, C, h, w) at σ = 1. */
  latents: Tensor;
  /** (2n, T, joint_attention_dim) [unconditional; conditional] when guided, else (n, T, joint). */
  context: Tensor;
  /** (2n or n, pooled_projection_dim), rows as `context`. */
  pooled: Tensor;
  steps: number;
  /** > 1: classifier-free guidance on the velocity; else the context is the conditional rows alone. */
  guidanceScale: number;
  /** Controllers on every joint attention call. */
  controllers?: readonly Controller[];
  /** Called after each step with the latents after it. */
  onStep?: (e: StepEvent) => void;
}

/**
 * diffusers 0.30.0's SD3 denoising loop: at each of the scheduler's timesteps t = 1000 σ the transformer
 * predicts v on [x; x] (guided), v̂ = v(∅) + w (v(c) − v(∅)), and the Euler step x ← x + (σ_next − σ) v̂;
 * controllers see every joint attention call and may replace the latents after each step.
 */
export function sampleFlow(
  transformer: SD3Transformer2DModel,
  scheduler: FlowMatchEulerDiscreteScheduler,
  o: FlowSampling,
): Tensor {
  const n = o.latents.shape[0] as number;
  const guided = o.guidanceScale > 1;
  const rows = guided ? 2 * n : n;
  if (o.context.shape[0] !== rows || o.pooled.shape[0] !== rows)
    throw new Error(
      `sampleFlow: ${n} latents ${guided ? 'with guidance need' : 'need'} ${rows} rows of context and pooled ` +
        `text, got ${o.context.shape[0]} and ${o.pooled.shape[0]}`,
    );
  const batch = guided ? guidedBatch(n) : plainBatch(n);
  const controllers = o.controllers ?? [];
  scheduler.setTimesteps(o.steps);
  let latents = o.latents;
  return noGrad(() => {
    scheduler.timesteps.forEach((t, step) => {
      const info = { step, numSteps: scheduler.timesteps.length, timestep: t, batch };
      for (const c of controllers) c.beforeStep?.({ ...info, latents });
      const ctx: AttentionContext = { ...info, controllers };
      const input = guided ? concat([latents, latents], 0) : latents;
      let v = transformer.forward(input, t, o.context, o.pooled, { ctx });
      if (guided) {
        const [vu, vc] = v.split(2, 0) as [Tensor, Tensor];
        v = vu.add(vc.sub(vu).mul(o.guidanceScale));
      }
      latents = scheduler.step(v, t, latents).prevSample;
      for (const c of controllers) latents = c.afterStep?.({ ...info, latents }) ?? latents;
      o.onStep?.({ step, numSteps: info.numSteps, timestep: t, latents });
    });
    return latents;
  });
}

/** What flow inversion takes: clean latents and the text they are inverted with (guidance 1). */
export interface FlowInversion {
  /** (n, C, h, w) at σ = 0. */
  latents: Tensor;
  /** (n, T, joint_attention_dim): the conditional text alone. */
  context: Tensor;
  /** (n, pooled_projection_dim). */
  pooled: Tensor;
  steps: number;
  /**
   * Controllers on every joint attention call, the steps numbered by inversion step (clean to noisy); as in DDIM
   * inversion (`invertBatch`) their step callbacks are not called.
   */
  controllers?: readonly Controller[];
}

/**
 * Euler inversion of the flow, the rectified-flow counterpart of DDIM inversion: the sampling schedule run
 * backwards from σ = 0 to 1, inversion step i from σ_{n−i} to σ_{n−1−i} with the velocity at the noisier end's
 * timestep t_{n−1−i} evaluated on the current latents, x ← x + (σ_{n−1−i} − σ_{n−i}) v(x, t_{n−1−i}) (as DDIM
 * inversion evaluates ε at the next timestep). Inversion step i is sampling step n − 1 − i, so the UNet's
 * `inversionStepRange` applies. Returns the latents at σ = 1.
 */
export function invertFlow(
  transformer: SD3Transformer2DModel,
  scheduler: FlowMatchEulerDiscreteScheduler,
  o: FlowInversion,
): Tensor {
  const n = o.latents.shape[0] as number;
  if (o.context.shape[0] !== n || o.pooled.shape[0] !== n)
    throw new Error(
      `invertFlow: ${n} latents need ${n} rows of context and pooled text, got ${o.context.shape[0]} and ` +
        `${o.pooled.shape[0]}`,
    );
  const batch = plainBatch(n);
  const controllers = o.controllers ?? [];
  scheduler.setTimesteps(o.steps);
  const { timesteps, sigmas } = scheduler;
  const steps = timesteps.length;
  let latents = o.latents;
  return noGrad(() => {
    for (let step = 0; step < steps; step++) {
      const k = steps - 1 - step; // the sampling step this inversion step mirrors
      const t = timesteps[k]!;
      const info = { step, numSteps: steps, timestep: t, batch };
      const v = transformer.forward(latents, t, o.context, o.pooled, { ctx: { ...info, controllers } });
      latents = latents.add(v.mul(sigmas[k]! - sigmas[k + 1]!));
    }
    return latents;
  });
}

/**
 * A Stable Diffusion 3-style model: MM-DiT, VAE, one CLIP text encoder and its tokenizer, the flow-matching
 * scheduler config; text to image with classifier-free guidance on the velocity, every joint attention call
 * open to controllers.
 */
export class StableDiffusion3 {
  constructor(
    readonly transformer: SD3Transformer2DModel,
    readonly vae: AutoencoderKL,
    readonly textEncoder: CLIPTextModel,
    readonly tokenizer: CLIPTokenizer,
    readonly schedulerConfig: JsonConfig,
  ) {
    const text = textEncoder.config.hiddenSize;
    const c = transformer.config;
    if (text > c.jointAttentionDim)
      throw new Error(
        `StableDiffusion3: the text encoder's states are ${text} wide, more than the transformer's ` +
          `joint_attention_dim ${c.jointAttentionDim}; they can only be padded up to it`,
      );
    const pooled = textEncoder instanceof CLIPTextModelWithProjection ? textEncoder.projectionDim : text;
    if (pooled !== c.pooledProjectionDim)
      throw new Error(
        `StableDiffusion3: the text encoder's pooled text is ${pooled} wide, the transformer's ` +
          `pooled_projection_dim is ${c.pooledProjectionDim}: this pipeline conditions on one CLIP encoder ` +
          '(SD3 checkpoints pool CLIP-L + CLIP-G, which is not built)',
      );
    if (vae.config.latentChannels !== c.inChannels)
      throw new Error(
        `StableDiffusion3: the VAE's ${vae.config.latentChannels} latent channels do not match the ` +
          `transformer's in_channels ${c.inChannels}`,
      );
    // fails now, naming the file's key, rather than when sampling
    FlowMatchEulerDiscreteScheduler.fromConfig(schedulerConfig);
  }

  /**
   * Loads a diffusers folder: model_index.json (StableDiffusion3Pipeline), transformer/, vae/, text_encoder/
   * (CLIPTextModel or CLIPTextModelWithProjection), tokenizer/, scheduler/ (FlowMatchEulerDiscreteScheduler).
   * A folder with text_encoder_2 / text_encoder_3 (CLIP-G, T5) is refused: only one CLIP encoder is built.
   */
  static fromPretrained(dir: string): StableDiffusion3 {
    if (!isSD3Folder(dir))
      throw new Error(
        `StableDiffusion3.fromPretrained: ${dir} is not an SD3 folder (model_index.json with _class_name ` +
          `${SD3_PIPELINE}, transformer/, vae/, text_encoder/, tokenizer/, scheduler/)`,
      );
    const index = readConfig(dir, 'model_index.json');
    for (const extra of ['text_encoder_2', 'text_encoder_3']) {
      const entry = index[extra];
      if (Array.isArray(entry) && entry[0] !== null)
        throw new Error(
          `${join(dir, 'model_index.json')}: component '${extra}' is ${jsonPreview(entry)}; attnkit's SD3 ` +
            'pipeline runs one CLIP text encoder (text_encoder/) — CLIP-G and T5 are not built yet',
        );
    }
    const textConfig = readConfig(join(dir, 'text_encoder'));
    const withProjection =
      Array.isArray(textConfig['architectures']) &&
      textConfig['architectures'].includes('CLIPTextModelWithProjection');
    const textEncoder = withProjection
      ? CLIPTextModelWithProjection.fromPretrained(dir, { subfolder: 'text_encoder' })
      : CLIPTextModel.fromPretrained(dir, { subfolder: 'text_encoder' });
    return new StableDiffusion3(
      SD3Transformer2DModel.fromPretrained(dir, { subfolder: 'transformer' }),
      AutoencoderKL.fromPretrained(dir, { subfolder: 'vae' }),
      textEncoder,
      CLIPTokenizer.fromPretrained(dir, { subfolder: 'tokenizer' }),
      readConfig(join(dir, 'scheduler'), 'scheduler_config.json'),
    );
  }

  /** A fresh flow-matching scheduler from the folder's config. */
  scheduler(): FlowMatchEulerDiscreteScheduler {
    return FlowMatchEulerDiscreteScheduler.fromConfig(this.schedulerConfig);
  }

  /** Text states (B, T, joint_attention_dim), the CLIP states zero-padded, and the pooled text (B, P). */
  encodeText(prompts: readonly string[]): { states: Tensor; pooled: Tensor } {
    return noGrad(() => {
      const out = this.textEncoder.encodePrompts(this.tokenizer, prompts);
      const pooled = 'textEmbeds' in out ? (out.textEmbeds as Tensor) : out.pooled;
      const [b, t, d] = out.lastHiddenState.shape as [number, number, number];
      const joint = this.transformer.config.jointAttentionDim;
      const states =
        d === joint ? out.lastHiddenState : concat([out.lastHiddenState, Tensor.zeros([b, t, joint - d])], 2);
      return { states, pooled };
    });
  }

  /** Image (B, 3, H, W) in [-1, 1] → latents (mean of q(z|x)) × scaling factor. */
  encodeImage(image: Tensor): Tensor {
    return noGrad(() => this.vae.encode(image).mean.mul(this.vae.config.scalingFactor));
  }

  /** Latents → image (B, 3, H, W), nominally in [-1, 1]. */
  decodeLatents(latents: Tensor): Tensor {
    return noGrad(() => this.vae.decode(latents.div(this.vae.config.scalingFactor)));
  }

  /** Side of the latent by default (the transformer's sample size). */
  get latentSize(): number {
    return this.transformer.config.sampleSize;
  }

  /** Side of images by default. */
  get defaultSize(): number {
    return this.latentSize * this.vae.scaleFactor;
  }

  /** Seeded Gaussian noise (1, C, h, w) of the default size, as `initialNoise` gives a UNet model. */
  initialNoise(seed: number): Tensor {
    return randn([1, this.transformer.config.inChannels, this.latentSize, this.latentSize], seed);
  }

  /**
   * Text to image: Euler steps of the flow from seeded noise, the velocity guided as
   * v̂ = v(∅) + w (v(c) − v(∅)) (unconditional rows first), controllers on every joint attention call, then the
   * VAE decodes the latents.
   */
  generate(opts: SD3GenerateOptions): { images: Tensor; latents: Tensor } {
    const steps = opts.steps ?? 28;
    const guidance = opts.guidanceScale ?? 7;
    if (!Number.isInteger(steps) || steps < 1 || steps > 10_000)
      throw new Error(`generate: steps must be an integer in [1, 10000], got ${steps}`);
    if (!Number.isFinite(guidance))
      throw new Error(`generate: guidanceScale must be a number, got ${guidance}`);
    const prompts = typeof opts.prompt === 'string' ? [opts.prompt] : opts.prompt;
    if (prompts.length === 0) throw new Error('generate: give a prompt');
    const n = prompts.length;
    const negs = opts.negativePrompt ?? '';
    const negatives = typeof negs === 'string' ? new Array<string>(n).fill(negs) : negs;
    if (negatives.length !== n)
      throw new Error(
        `generate: ${negatives.length} negative prompts for ${n} prompts (give one, or one each)`,
      );
    const guided = guidance > 1;
    const cond = this.encodeText(prompts);
    const text = guided ? this.encodeText(negatives) : undefined;
    const context = text ? concat([text.states, cond.states], 0) : cond.states;
    const pooled = text ? concat([text.pooled, cond.pooled], 0) : cond.pooled;
    const latents = sampleFlow(this.transformer, this.scheduler(), {
      latents: this.startLatents(opts, n),
      context,
      pooled,
      steps,
      guidanceScale: guidance,
      ...(opts.controllers ? { controllers: opts.controllers } : {}),
      ...(opts.onStep ? { onStep: opts.onStep } : {}),
    });
    return { images: this.decodeLatents(latents), latents };
  }

  private startLatents(opts: SD3GenerateOptions, n: number): Tensor {
    const c = this.transformer.config.inChannels;
    if (opts.latents) {
      const s = opts.latents.shape;
      if (s.length !== 4 || s[0] !== n || s[1] !== c)
        throw new Error(`generate: latents must be (${n}, ${c}, h, w), got [${s.join(', ')}]`);
      return opts.latents;
    }
    const f = this.vae.scaleFactor * this.transformer.config.patchSize;
    const width = opts.width ?? this.defaultSize;
    const height = opts.height ?? this.defaultSize;
    if (!(width > 0 && height > 0 && width % f === 0 && height % f === 0))
      throw new Error(
        `generate: width and height must be positive multiples of ${f}, got ${width}×${height}`,
      );
    const side = this.vae.scaleFactor;
    return randn([n, c, height / side, width / side], opts.seed ?? 0);
  }
}
