// The interface every scheduler implements, and the pieces the ᾱ-based ones (DDPM, DDIM, PNDM,
// DPM-Solver) share: forward noising, the three model parametrisations, noise for stochastic steps.
//
// Layout: samples are (batch, channels, height, width) as in diffusers; any shape works where the step
// is elementwise. Timesteps are the numbers of `scheduler.timesteps` (training-time indices 0..T−1;
// Euler's may be fractional).

import { Tensor } from '../tensor/index.js';
import type { CommonSchedulerConfig, SchedulerConfigJson } from './config.js';
import { f32, type NoiseGenerator, type PredictionType, spacedTimesteps } from './noise-schedule.js';

/** The samplers attnkit has: DDIM, DDPM, Euler, DPM-Solver++ 2M, PNDM. */
export type SchedulerName = 'ddim' | 'ddpm' | 'euler' | 'dpmpp2m' | 'pndm';

/** Per-step options of the samplers that take them (DDIM's η, noise, a generator, Euler's churn). */
export interface StepOptions {
  /** DDIM: η of Song et al. 2020, eq. (16) (0 = deterministic DDIM, 1 = DDPM-like). Default 0. */
  eta?: number;
  /** DDIM: recompute ε from the clipped x̂₀ (diffusers' `use_clipped_model_output`). */
  useClippedModelOutput?: boolean;
  /** Euler: Karras et al. 2022, Algorithm 2's S_churn, S_tmin, S_tmax, S_noise (defaults 0, 0, ∞, 1). */
  sChurn?: number;
  sTmin?: number;
  sTmax?: number;
  sNoise?: number;
  /** The standard normal noise of a stochastic step (diffusers' `variance_noise`), shaped like the sample. */
  noise?: Tensor;
  /** Or a generator to draw it from. */
  generator?: NoiseGenerator;
}

/** One scheduler step's result: the less noisy sample and x̂_0. */
export interface StepOutput {
  /** The sample at the next (less noisy) timestep. */
  prevSample: Tensor;
  /** The model's estimate of the clean sample x̂₀ (where the scheduler forms one). */
  predOriginalSample?: Tensor;
}

/**
 * A diffusion sampler: the timesteps of a schedule, the model input at a timestep, one denoising step, the
 * forward noising.
 */
export interface Scheduler {
  readonly name: SchedulerName;
  /** The diffusers class this scheduler reproduces. */
  readonly className: string;
  /** Config keys of the source file this scheduler did not use (diffusers ignores them too). */
  readonly ignoredConfigKeys: readonly string[];
  /** Timesteps in sampling order after `setTimesteps` (empty before, except Euler's training grid). */
  readonly timesteps: readonly number[];
  /** Standard deviation of the starting noise: x_T = initNoiseSigma · N(0, I). */
  readonly initNoiseSigma: number;
  /** ᾱ_t for t = 0..T−1 (float32 values). */
  readonly alphasCumprod: readonly number[];
  /** Sets the timesteps of a schedule of this many sampling steps. */
  setTimesteps(numInferenceSteps: number): void;
  /** The model's input at timestep t (Euler divides by √(σ²+1); the others return x). */
  scaleModelInput(sample: Tensor, t: number): Tensor;
  /** One denoising step from x_t and the model output at timestep t. */
  step(modelOutput: Tensor, t: number, sample: Tensor, opts?: StepOptions): StepOutput;
  /** Forward process: the noisy sample at timestep t (one t, or one per batch row). */
  addNoise(original: Tensor, noise: Tensor, t: number | readonly number[]): Tensor;
}

/** A scheduler's `fromConfig`: reads a diffusers `scheduler_config.json` with its reader, then builds it. */
export function fromConfigOf<S, C>(
  Scheduler: new (config: C, ignoredConfigKeys: readonly string[]) => S,
  read: (json: SchedulerConfigJson) => { config: C; ignored: string[] },
): (json: SchedulerConfigJson) => S {
  return (json) => {
    const { config, ignored } = read(json);
    return new Scheduler(config, ignored);
  };
}

/**
 * What every scheduler here shares: the config and the keys it ignored, ᾱ, `fromConfig`, the timestep
 * bookkeeping of `setTimesteps`, an unscaled model input and the VP forward process (Euler overrides the
 * last two). A scheduler gives its `step` and its static `fromConfig` (`fromConfigOf`), and overrides
 * `schedule` where its timesteps are not diffusers' spaced ones.
 */
export abstract class SchedulerBase<C extends CommonSchedulerConfig> implements Scheduler {
  abstract readonly name: SchedulerName;
  abstract readonly className: string;
  abstract readonly initNoiseSigma: number;
  timesteps: readonly number[] = [];
  /** n of the latest `setTimesteps(n)`; 0 before. */
  numInferenceSteps = 0;

  constructor(
    readonly config: C,
    readonly ignoredConfigKeys: readonly string[],
    readonly alphasCumprod: readonly number[],
  ) {}

  setTimesteps(numInferenceSteps: number): void {
    checkInferenceSteps(this.className, numInferenceSteps, this.config.num_train_timesteps);
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = this.schedule(numInferenceSteps);
  }

  /** The sampling timesteps of n steps (and any state they set): diffusers' "leading" / "linspace" / "trailing". */
  protected schedule(n: number): readonly number[] {
    const c = this.config;
    return spacedTimesteps(c.timestep_spacing, c.num_train_timesteps, n, c.steps_offset);
  }

  scaleModelInput(sample: Tensor, _t: number): Tensor {
    return sample;
  }

  abstract step(modelOutput: Tensor, t: number, sample: Tensor, opts?: StepOptions): StepOutput;

  addNoise(original: Tensor, noise: Tensor, t: number | readonly number[]): Tensor {
    return addNoiseVp(this.className, this.alphasCumprod, original, noise, t);
  }
}

/** Throws when a step option that this scheduler does not use is set to a non-neutral value. */
export function rejectStepOptions(
  className: string,
  opts: StepOptions,
  allowed: readonly (keyof StepOptions)[],
): void {
  const neutral: Partial<Record<keyof StepOptions, unknown>> = {
    eta: 0,
    sChurn: 0,
    useClippedModelOutput: false,
  };
  for (const key of Object.keys(opts) as (keyof StepOptions)[]) {
    if (allowed.includes(key) || opts[key] === undefined || neutral[key] === opts[key]) continue;
    throw new Error(
      `${className}.step: option '${key}' does not apply to this scheduler (it takes ${allowed.join(', ') || 'none'})`,
    );
  }
}

/** Standard normal noise for a stochastic step: the caller's tensor, or one drawn from its generator. */
export function stepNoise(className: string, opts: StepOptions, like: Tensor): Tensor {
  if (opts.noise && opts.generator) {
    throw new Error(`${className}.step: pass either noise or generator, not both`);
  }
  if (opts.noise) {
    if (opts.noise.shape.join() !== like.shape.join()) {
      throw new Error(
        `${className}.step: noise has shape [${opts.noise.shape.join(', ')}] but the sample is [${like.shape.join(', ')}]`,
      );
    }
    return opts.noise;
  }
  if (opts.generator) return opts.generator.randn(like.shape);
  throw new Error(`${className}.step: this step adds noise; pass { noise } or { generator }`);
}

/** Per-row coefficients as a (batch, 1, 1, …) tensor, or one number when all rows share it. */
export function perRow(values: readonly number[], like: Tensor): Tensor | number {
  if (values.length === 1) return values[0]!;
  return Tensor.from(values, [values.length, ...like.shape.slice(1).map(() => 1)]);
}

/** `addNoise`'s t as a list: one timestep for the whole batch, or one per row. */
export function rowTimesteps(
  className: string,
  t: number | readonly number[],
  like: Tensor,
): readonly number[] {
  const ts = typeof t === 'number' ? [t] : t;
  if (ts.length !== 1 && ts.length !== like.shape[0]) {
    throw new Error(
      `${className}.addNoise: ${ts.length} timesteps for a batch of ${like.shape[0]} (give one, or one per row)`,
    );
  }
  return ts;
}

/**
 * Ho et al. 2020, eq. (4): x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε, with t per batch row or shared.
 */
export function addNoiseVp(
  className: string,
  alphasCumprod: readonly number[],
  original: Tensor,
  noise: Tensor,
  t: number | readonly number[],
): Tensor {
  const alphaBar = rowTimesteps(className, t, original).map((ti) => {
    const a = alphasCumprod[ti];
    if (!Number.isInteger(ti) || a === undefined) {
      throw new Error(
        `${className}.addNoise: timestep ${ti} is not an integer in [0, ${alphasCumprod.length})`,
      );
    }
    return a;
  });
  const sqrtAlphaBar = perRow(
    alphaBar.map((a) => f32(Math.sqrt(a))),
    original,
  );
  const sqrtOneMinus = perRow(
    alphaBar.map((a) => f32(Math.sqrt(f32(1 - a)))),
    original,
  );
  return original.mul(sqrtAlphaBar).add(noise.mul(sqrtOneMinus));
}

/**
 * The model output as (x̂₀, ε̂) for the prediction types of a VP model x_t = √ᾱ x₀ + √(1−ᾱ) ε:
 *   epsilon       x̂₀ = (x_t − √(1−ᾱ) ε̂)/√ᾱ                        (Ho et al. 2020, eq. 15)
 *   sample        ε̂ = (x_t − √ᾱ x̂₀)/√(1−ᾱ)
 *   v_prediction  v = √ᾱ ε − √(1−ᾱ) x₀ ⇒ x̂₀ = √ᾱ x_t − √(1−ᾱ) v,  ε̂ = √ᾱ v + √(1−ᾱ) x_t
 *                 (Salimans & Ho 2022, "Progressive Distillation", Sec. 4 and App. D)
 */
export function predictX0AndEps(
  predictionType: PredictionType,
  modelOutput: Tensor,
  sample: Tensor,
  alphaBar: number,
): { x0: Tensor; eps: Tensor } {
  const sqrtAlphaBar = f32(Math.sqrt(alphaBar));
  const sqrtBetaBar = f32(Math.sqrt(f32(1 - alphaBar)));
  if (predictionType === 'epsilon') {
    return { x0: sample.sub(modelOutput.mul(sqrtBetaBar)).div(sqrtAlphaBar), eps: modelOutput };
  }
  if (predictionType === 'sample') {
    return { x0: modelOutput, eps: sample.sub(modelOutput.mul(sqrtAlphaBar)).div(sqrtBetaBar) };
  }
  return {
    x0: sample.mul(sqrtAlphaBar).sub(modelOutput.mul(sqrtBetaBar)),
    eps: modelOutput.mul(sqrtAlphaBar).add(sample.mul(sqrtBetaBar)),
  };
}

/** Checks `setTimesteps`' argument. */
export function checkInferenceSteps(className: string, n: number, T: number): void {
  if (!Number.isInteger(n) || n < 1 || n > T) {
    throw new Error(
      `${className}.setTimesteps: numInferenceSteps must be an integer in [1, ${T}] (num_train_timesteps), got ${n}`,
    );
  }
}

export function requireTimesteps(className: string, timesteps: readonly number[]): void {
  if (timesteps.length === 0) throw new Error(`${className}.step: call setTimesteps(n) before step`);
}
