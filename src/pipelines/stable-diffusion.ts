// Text-to-image with classifier-free guidance (Ho & Salimans 2022) on a Stable Diffusion model folder.
// Controllers receive the step, timestep and batch layout through the AttentionContext of each UNet call.

import { existsSync } from 'node:fs';
import { type BatchRoles, guidedBatch, plainBatch } from '../attention/call.js';
import type { AttentionContext, Controller } from '../attention/hooks.js';
import type { LatentGuidance } from '../methods/application/score-guidance.js';
import { AutoencoderKL } from '../models/autoencoder-kl.js';
import { CLIPTextModel } from '../models/clip-text.js';
import { CLIPTextModelWithProjection } from '../models/clip-text-projection.js';
import { CLIPTokenizer } from '../models/clip-tokenizer.js';
import type { JsonConfig } from '../models/config.js';
import { type AddedConditions, UNet2DConditionModel } from '../models/unet2d-condition.js';
import { type Scheduler, type SchedulerName, schedulerFromConfig } from '../schedulers/index.js';
import { concat, enableGrad, formatShape, noGrad, Tensor } from '../tensor/index.js';
import { Generator, randn } from '../tensor/random.js';
import { BUILTIN_MODEL } from './builtin-model.js';
import { componentConfig, readModelIndex } from './load.js';
import type { StableDiffusionParts } from './parts.js';
import {
  checkSDXLParts,
  encodeSDXLPrompt,
  type MicroConditioning,
  type SDXLParts,
  sdxlAddedConditions,
} from './sdxl.js';
import { readSingleFile, type SingleFileOptions } from './single-file.js';
import { isSDXLSingleFile, readSDXLSingleFile } from './single-file-sdxl.js';

export type { StableDiffusionParts };

/** One denoising step as `onStep` sees it: step index, step count, timestep and the latents after it. */
export interface StepEvent {
  step: number;
  numSteps: number;
  timestep: number;
  latents: Tensor;
}

/** What every sampling pipeline (generation, the edits) takes besides its prompts. */
export interface SamplingOptions {
  seed?: number;
  steps?: number;
  guidanceScale?: number;
  /** Controllers on every attention layer (an edit runs them after its own). */
  controllers?: readonly Controller[];
  /** Called after each denoising step (e.g. to advance a progress bar). */
  onStep?: (e: StepEvent) => void;
}

/** An edit's two images, made side by side in one batch. */
export interface EditedPair {
  /** (1, 3, H, W) each, in [-1, 1]. */
  source: Tensor;
  target: Tensor;
  /** Final latents (2, C, h, w): source, target. */
  latents: Tensor;
}

export interface GenerateOptions extends SamplingOptions, MicroConditioning {
  /** One prompt or several (one image each). */
  prompt?: string | string[];
  negativePrompt?: string | string[];
  /** Precomputed text states (B, T, D) instead of prompts. */
  promptEmbeds?: Tensor;
  /**
   * Unconditional text states (n or 1 rows, 1 is repeated over the prompts), or one such tensor per step
   * (null-text inversion's optimised ∅_t, see pipelines/inversion.ts).
   */
  negativePromptEmbeds?: Tensor | readonly Tensor[];
  /** SDXL: the pooled text (B, P) that goes with `promptEmbeds`, and the negative one (B or 1 rows). */
  pooledPromptEmbeds?: Tensor;
  negativePooledPromptEmbeds?: Tensor;
  /**
   * φ of guidance rescaling (Lin et al. 2024, Sec. 3.4; diffusers' `guidance_rescale`): the guided prediction
   * is scaled to the conditional prediction's standard deviation per image, and mixed with the unscaled one,
   * φ · rescaled + (1 − φ) · guided. It keeps strong guidance from over-exposing a zero-terminal-SNR model;
   * the paper uses 0.7. Default 0: off.
   */
  guidanceRescale?: number;
  width?: number;
  height?: number;
  /**
   * Starting noise (B, C, h, w), default seeded Gaussian noise; either is multiplied by the scheduler's initial
   * sigma, as diffusers' `prepare_latents` does (1 for DDIM, DDPM, PNDM, DPM-Solver; σ_max-sized for Euler).
   */
  latents?: Tensor;
  /** The sampler (default: the model folder's scheduler). */
  scheduler?: SchedulerName;
  /** DDIM's η (0 = deterministic). */
  eta?: number;
  /**
   * Score-driven guidance (Attend-and-Excite, layout guidance, BoxDiff): at each step, before the guided UNet
   * call, each may move the latents along the gradient of a loss on the conditional pass's cross-attention maps
   * (methods/application/score-guidance.ts). None: plain generation, bit for bit.
   */
  guidance?: readonly LatentGuidance[];
}

/**
 * Guidance rescaling (Lin et al. 2024, eq. 15–16): `guided` scaled per row to the standard deviation of `cond`
 * over all its other axes, then φ · that + (1 − φ) · `guided`.
 */
export function rescaleGuidance(guided: Tensor, cond: Tensor, phi: number): Tensor {
  const axes = guided.shape.slice(1).map((_, i) => i + 1);
  const std = (x: Tensor) =>
    x
      .sub(x.mean({ axes, keepDims: true }))
      .pow(2)
      .mean({ axes, keepDims: true })
      .sqrt();
  const rescaled = guided.mul(std(cond).div(std(guided)));
  return rescaled.mul(phi).add(guided.mul(1 - phi));
}

/** What `generate` returns: the decoded images and the final latents. */
export interface GenerateResult {
  /** (B, 3, H, W) in [-1, 1]. */
  images: Tensor;
  latents: Tensor;
}

/** Refuses what cannot be a model folder, naming it and what `fromPretrained` expects. */
function checkModelFolder(dir: unknown): asserts dir is string {
  const expected =
    'expected the path of a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, ' +
    `scheduler/), or fromPretrained() with no folder for the built-in model (${BUILTIN_MODEL})`;
  if (typeof dir !== 'string' || dir === '') {
    throw new Error(
      `StableDiffusion.fromPretrained: model folder ${JSON.stringify(dir) ?? String(dir)}: ${expected}`,
    );
  }
  if (!existsSync(dir)) {
    const builtin =
      dir === BUILTIN_MODEL ? ' (the built-in model is missing from this install of attnkit)' : '';
    throw new Error(
      `StableDiffusion.fromPretrained: model folder ${dir} does not exist${builtin}: ${expected}`,
    );
  }
}

/**
 * A Stable Diffusion model (Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion
 * Models"; SDXL too): UNet, VAE, text encoder and tokenizer, and the scheduler config, with text-to-image
 * generation under classifier-free guidance and every attention layer open to controllers.
 */
export class StableDiffusion {
  readonly unet: UNet2DConditionModel;
  readonly vae: AutoencoderKL;
  readonly textEncoder: CLIPTextModel;
  readonly tokenizer: CLIPTokenizer;
  readonly schedulerConfig: JsonConfig;
  readonly xl?: SDXLParts;

  constructor(parts: StableDiffusionParts) {
    this.unet = parts.unet;
    this.vae = parts.vae;
    this.textEncoder = parts.textEncoder;
    this.tokenizer = parts.tokenizer;
    this.schedulerConfig = parts.schedulerConfig;
    if (parts.xl) this.xl = parts.xl;
  }

  /**
   * Loads a diffusers folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/), each
   * component by its class's `fromPretrained` with the same `variant`. With no folder, the built-in Shapes
   * model (`BUILTIN_MODEL`, shipped in the package).
   */
  static fromPretrained(dir: string = BUILTIN_MODEL, opts: { variant?: string } = {}): StableDiffusion {
    checkModelFolder(dir);
    const index = readModelIndex(dir);
    const { variant } = opts;
    const unet = UNet2DConditionModel.fromPretrained(dir, { subfolder: 'unet', variant });
    const vae = AutoencoderKL.fromPretrained(dir, { subfolder: 'vae', variant });
    const textEncoder = CLIPTextModel.fromPretrained(dir, { subfolder: 'text_encoder', variant });
    const tokenizer = CLIPTokenizer.fromPretrained(dir, { subfolder: 'tokenizer' });
    const schedulerConfig = componentConfig(dir, 'scheduler', 'scheduler_config.json');
    // SDXL (model_index.json StableDiffusionXLPipeline): the second text encoder and tokenizer
    const xl: SDXLParts | undefined =
      index.forceZerosForEmptyPrompt === undefined
        ? undefined
        : {
            textEncoder2: CLIPTextModelWithProjection.fromPretrained(dir, {
              subfolder: 'text_encoder_2',
              variant,
            }),
            tokenizer2: CLIPTokenizer.fromPretrained(dir, { subfolder: 'tokenizer_2' }),
            forceZerosForEmptyPrompt: index.forceZerosForEmptyPrompt,
          };
    checkSDXLParts(dir, unet.config, textEncoder.config, xl);
    return new StableDiffusion({ unet, vae, textEncoder, tokenizer, schedulerConfig, ...(xl ? { xl } : {}) });
  }

  /**
   * Loads a single-file checkpoint (SD 1.x / 2.x in the original LDM layout, SDXL in SGM's, `.safetensors`; SDXL
   * also needs `opts.tokenizer2`, see pipelines/single-file-sdxl.ts): the architecture
   * read from the tensors' names and shapes, the scheduler built in, `opts.config` overriding what the tensors
   * cannot tell; `opts.tokenizer` names a tokenizer folder (required: a single file holds none, and attnkit
   * ships no CLIP vocabulary). See pipelines/single-file.ts.
   */
  static fromSingleFile(path: string, opts: SingleFileOptions): StableDiffusion {
    return new StableDiffusion(
      isSDXLSingleFile(path) ? readSDXLSingleFile(path, opts) : readSingleFile(path, opts),
    );
  }

  /** A fresh sampler from the model's scheduler config: its own, or the one named. */
  scheduler(name?: SchedulerName): Scheduler {
    return schedulerFromConfig(this.schedulerConfig, name);
  }

  /**
   * Text states (B, T, D) of the prompts, padded to the tokenizer's length. SDXL: both encoders' penultimate
   * states concatenated (the pooled text comes from `encodeText`).
   */
  encodePrompt(prompts: readonly string[]): Tensor {
    return this.encodeText(prompts).states;
  }

  /** Text states and, on SDXL, the pooled text (B, P) of encoder 2's projection. */
  encodeText(prompts: readonly string[]): { states: Tensor; pooled?: Tensor } {
    return noGrad(() => {
      if (this.xl) return encodeSDXLPrompt(this.textEncoder, this.tokenizer, this.xl, prompts);
      return { states: this.textEncoder.encodePrompts(this.tokenizer, prompts).lastHiddenState };
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

  /** Spatial size of images by default (the UNet's sample size × the VAE's factor). */
  get defaultSize(): number {
    return this.unet.config.sampleSize * this.vae.scaleFactor;
  }

  /**
   * Text to image with classifier-free guidance (Ho & Salimans 2022): samples latents from seeded noise with
   * the scheduler, controllers on every attention layer, then decodes them with the VAE.
   */
  generate(opts: GenerateOptions): GenerateResult {
    const steps = opts.steps ?? 25;
    const guidance = opts.guidanceScale ?? 7.5;
    if (!Number.isInteger(steps) || steps < 1)
      throw new Error(`generate: steps must be a positive integer, got ${steps}`);
    if (opts.eta !== undefined && !(Number.isFinite(opts.eta) && opts.eta >= 0))
      throw new Error(
        `generate: eta must be a number ≥ 0 (0: deterministic DDIM, 1: DDPM-like), got ${opts.eta}`,
      );
    const rescale = opts.guidanceRescale ?? 0;
    if (!(rescale >= 0 && rescale <= 1))
      throw new Error(`generate: guidanceRescale must be in [0, 1] (the paper uses 0.7), got ${rescale}`);
    const micro = [
      'originalSize',
      'cropsCoordsTopLeft',
      'targetSize',
      'negativeOriginalSize',
      'negativeCropsCoordsTopLeft',
      'negativeTargetSize',
    ];
    const given = micro.filter((k) => opts[k as keyof GenerateOptions] !== undefined);
    if (!this.xl && given.length > 0)
      throw new Error(
        `generate: ${given.join(', ')}: micro-conditioning is for SDXL models; this one is not`,
      );
    const text = this.conditionalText(opts);
    const cond = text.states;
    const n = cond.shape[0] as number;
    const guided = guidance > 1;
    const uncond = guided ? this.unconditionalStates(opts, n, steps, cond) : undefined;
    const fixed = uncond?.length === 1 ? concat([uncond[0] as Tensor, cond], 0) : undefined;
    const contextAt = (step: number): Tensor => {
      if (!uncond) return cond;
      if (fixed) return fixed;
      const u = uncond[step];
      if (!u)
        throw new Error(
          `generate: no negativePromptEmbeds for step ${step} (this scheduler runs more steps)`,
        );
      return concat([u, cond], 0);
    };
    const batch: BatchRoles = guided ? guidedBatch(n) : plainBatch(n);
    const controllers = opts.controllers ?? [];

    const scheduler = this.scheduler(opts.scheduler);
    scheduler.setTimesteps(steps);
    // one stream per seed: the initial latents, then the noise of stochastic steps (DDPM, DDIM with η > 0)
    const gen = new Generator(opts.seed ?? 0);
    let latents = this.initialLatents(opts, n, scheduler, gen);
    const stochastic = scheduler.name === 'ddpm' || (scheduler.name === 'ddim' && (opts.eta ?? 0) > 0);
    const stepOptions = { eta: opts.eta, ...(stochastic ? { generator: gen } : {}) };
    const added = this.addedConditions(opts, text.pooled, guided, latents);

    return noGrad(() => {
      scheduler.timesteps.forEach((t, step) => {
        const info = { step, numSteps: scheduler.timesteps.length, timestep: t, batch };
        for (const c of controllers) c.beforeStep?.({ ...info, latents });
        for (const g of opts.guidance ?? []) {
          const denoise = (x: Tensor, cs: readonly Controller[]): Tensor =>
            enableGrad(() => {
              const c = { ...info, batch: plainBatch(n), controllers: cs };
              const xs = scheduler.scaleModelInput(x, t);
              return this.unet.forward(xs, t, cond, {
                ctx: c,
                added: this.addedConditionsFor(text.pooled, x, opts),
              });
            });
          const alphaCumprod = scheduler.alphasCumprod[t] as number;
          latents = g.guide({ ...info, latents, alphaCumprod, denoise }) ?? latents;
        }
        const ctx: AttentionContext = { ...info, controllers };
        const input = scheduler.scaleModelInput(guided ? concat([latents, latents], 0) : latents, t);
        // the model's output: ε or v, as the scheduler config's prediction_type says
        let out = this.unet.forward(input, t, contextAt(step), { ctx, added });
        if (guided) {
          // ε̂ = ε(∅) + w · (ε(c) − ε(∅))
          const [outU, outC] = out.split(2, 0) as [Tensor, Tensor];
          out = outU.add(outC.sub(outU).mul(guidance));
          if (rescale > 0) out = rescaleGuidance(out, outC, rescale);
        }
        latents = scheduler.step(out, t, latents, stepOptions).prevSample;
        for (const c of controllers) latents = c.afterStep?.({ ...info, latents }) ?? latents;
        opts.onStep?.({ step, numSteps: info.numSteps, timestep: t, latents });
      });
      return { images: this.decodeLatents(latents), latents };
    });
  }

  private conditionalText(opts: GenerateOptions): { states: Tensor; pooled?: Tensor } {
    if (opts.promptEmbeds) {
      if (this.xl && !opts.pooledPromptEmbeds)
        throw new Error('generate: an SDXL model needs pooledPromptEmbeds with promptEmbeds');
      return { states: opts.promptEmbeds, pooled: opts.pooledPromptEmbeds };
    }
    const prompts = typeof opts.prompt === 'string' ? [opts.prompt] : (opts.prompt ?? []);
    if (prompts.length === 0) throw new Error('generate: give a prompt (or promptEmbeds)');
    return this.encodeText(prompts);
  }

  /** SDXL's negative prompt is zeros when none is given and model_index.json says force_zeros_for_empty_prompt. */
  private zeroNegative(opts: GenerateOptions): boolean {
    return !!this.xl?.forceZerosForEmptyPrompt && opts.negativePrompt === undefined;
  }

  /**
   * SDXL's added conditions for the batch (uncond rows first when guided): the pooled text and the time ids
   * of the micro-conditioning (default sizes: the image's). undefined for SD 1.x / 2.x.
   */
  private addedConditions(
    opts: GenerateOptions,
    pooled: Tensor | undefined,
    guided: boolean,
    latents: Tensor,
  ): AddedConditions | undefined {
    if (!this.xl || !pooled) return undefined;
    const n = pooled.shape[0] as number;
    if (guided) {
      let neg = opts.negativePooledPromptEmbeds;
      if (!neg && opts.negativePromptEmbeds)
        throw new Error('generate: an SDXL model needs negativePooledPromptEmbeds with negativePromptEmbeds');
      if (!neg && this.zeroNegative(opts)) neg = Tensor.zeros(pooled.shape);
      if (!neg) {
        const negs = opts.negativePrompt ?? '';
        neg = this.encodeText(typeof negs === 'string' ? new Array<string>(n).fill(negs) : negs)
          .pooled as Tensor;
      }
      if (neg.shape[0] === 1 && n > 1) neg = concat(new Array<Tensor>(n).fill(neg), 0);
      const { negativeOriginalSize: originalSize, negativeTargetSize: targetSize } = opts;
      const negMicro =
        originalSize && targetSize
          ? { originalSize, targetSize, cropsCoordsTopLeft: opts.negativeCropsCoordsTopLeft }
          : opts;
      const [u, c] = [
        this.addedConditionsFor(neg, latents, negMicro),
        this.addedConditionsFor(pooled, latents, opts),
      ];
      if (!u || !c) return undefined;
      return {
        textEmbeds: concat([u.textEmbeds, c.textEmbeds], 0), // (2n, P)
        timeIds: concat([u.timeIds, c.timeIds], 0), // (2n, 6)
      };
    }
    return this.addedConditionsFor(pooled, latents, opts);
  }

  /**
   * SDXL's added conditions for a UNet call on `latents` (B, C, h, w): the pooled text rows (B, P) and the
   * micro-conditioning time ids (default sizes: the image's). undefined for SD 1.x / 2.x, which need no pooled text.
   */
  addedConditionsFor(
    pooled: Tensor | undefined,
    latents: Tensor,
    micro: MicroConditioning = {},
  ): AddedConditions | undefined {
    if (!this.xl) return undefined;
    if (!pooled)
      throw new Error('SDXL: this UNet call needs the pooled text of its prompt (pooledPromptEmbeds)');
    const f = this.vae.scaleFactor;
    const size = [(latents.shape[2] as number) * f, (latents.shape[3] as number) * f] as const;
    return sdxlAddedConditions(pooled, size, micro);
  }

  /** One tensor (n rows) for all steps, or one per step. */
  private unconditionalStates(opts: GenerateOptions, n: number, steps: number, cond: Tensor): Tensor[] {
    const given = opts.negativePromptEmbeds;
    if (!given && this.zeroNegative(opts)) return [Tensor.zeros(cond.shape)];
    if (given) {
      const list = given instanceof Tensor ? [given] : [...given];
      if (!(given instanceof Tensor) && list.length !== steps) {
        throw new Error(
          `generate: ${list.length} negativePromptEmbeds for ${steps} steps (give one per step)`,
        );
      }
      return list.map((e) => {
        if (e.shape[0] === n) return e;
        if (e.shape[0] === 1 && e.rank === 3) return concat(new Array<Tensor>(n).fill(e), 0);
        throw new Error(`generate: negativePromptEmbeds ${formatShape(e.shape)} must have ${n} rows (or 1)`);
      });
    }
    const neg = opts.negativePrompt ?? '';
    const list = typeof neg === 'string' ? new Array<string>(n).fill(neg) : neg;
    if (list.length !== n) throw new Error(`generate: ${list.length} negative prompts for ${n} prompts`);
    return [this.encodePrompt(list)];
  }

  private initialLatents(opts: GenerateOptions, n: number, scheduler: Scheduler, gen: Generator): Tensor {
    const f = this.vae.scaleFactor;
    const c = this.unet.config.inChannels;
    if (opts.latents) {
      if (opts.latents.rank !== 4 || opts.latents.shape[0] !== n || opts.latents.shape[1] !== c) {
        throw new Error(
          `generate: latents must be (${n}, ${c}, h, w), got ${formatShape(opts.latents.shape)}`,
        );
      }
      return opts.latents.mul(scheduler.initNoiseSigma);
    }
    const width = opts.width ?? this.defaultSize;
    const height = opts.height ?? this.defaultSize;
    if (width % f !== 0 || height % f !== 0) {
      throw new Error(`generate: width and height must be multiples of ${f}, got ${width}×${height}`);
    }
    return gen.randn([n, c, height / f, width / f]).mul(scheduler.initNoiseSigma);
  }
}

/**
 * Seeded Gaussian noise N(0, I) (1, C, h, w) of the model's default size: `generate({ latents })` multiplies it
 * by the scheduler's initial sigma.
 */
export function initialNoise(sd: StableDiffusion, seed: number): Tensor {
  const side = sd.unet.config.sampleSize;
  return randn([1, sd.unet.config.inChannels, side, side], seed);
}
