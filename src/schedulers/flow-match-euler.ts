// Flow matching with Euler steps: Lipman et al. 2023, "Flow Matching for Generative Modeling", on the
// rectified-flow path of Liu et al. 2023 as Esser et al. 2024 (SD3, "Scaling Rectified Flow Transformers")
// train it — x_σ = (1 − σ) x₀ + σ ε, the model predicts the velocity v = ε − x₀, and sampling integrates
// dx/dσ = v from σ = 1 to 0. SD3's resolution-dependent shift (eq. 23) moves σ towards noise:
// σ' = s σ / (1 + (s − 1) σ). diffusers 0.30.0's `FlowMatchEulerDiscreteScheduler`, bit for bit in float32.
//
// There are no β or ᾱ here, so this scheduler stands beside the VP ones (SchedulerBase, `--scheduler`) rather
// than among them: a flow model must not be sampled by DDIM, nor a UNet by this. It is built from a diffusers
// `scheduler_config.json` through the same reader and `fromConfigOf` as they are.

import { CONFIG_LIMITS, overLimit } from '../models/config.js';
import type { Tensor } from '../tensor/index.js';
import { type SchedulerConfigJson, SchedulerConfigReader } from './config.js';
import { f32, linspaceF64 } from './noise-schedule.js';
import { fromConfigOf, perRow, rejectStepOptions, type StepOptions, type StepOutput } from './scheduler.js';

/** FlowMatchEulerDiscreteScheduler's `scheduler_config.json` (diffusers 0.30.0 names and defaults). */
export interface FlowMatchEulerConfig {
  num_train_timesteps: number;
  /** SD3's timestep shift s (eq. 23 of Esser et al. 2024); 1 = no shift, SD3 medium uses 3. */
  shift: number;
  /** Flux-style shift chosen per resolution: setTimesteps then needs `mu` (σ' = e^μ / (e^μ + 1/σ − 1)). */
  use_dynamic_shifting: boolean;
}

/** Reads a FlowMatchEulerDiscreteScheduler `scheduler_config.json` into its typed config and the keys it ignored. */
export function readFlowMatchEulerConfig(json: SchedulerConfigJson): {
  config: FlowMatchEulerConfig;
  ignored: string[];
} {
  const r = new SchedulerConfigReader('FlowMatchEulerDiscreteScheduler', json);
  const T = r.number('num_train_timesteps', 1000, { integer: true, min: 1 });
  if (T > CONFIG_LIMITS.trainTimesteps) {
    throw new Error(
      overLimit('FlowMatchEulerDiscreteScheduler config', '"num_train_timesteps"', T, 'trainTimesteps'),
    );
  }
  const config: FlowMatchEulerConfig = {
    num_train_timesteps: T,
    shift: r.positive('shift', 1),
    use_dynamic_shifting: r.boolean('use_dynamic_shifting', false),
  };
  // the dynamic shift's μ is computed by the pipeline from these; the scheduler only takes μ
  for (const key of ['base_shift', 'max_shift', 'base_image_seq_len', 'max_image_seq_len']) r.accept(key);
  return { config, ignored: r.ignoredKeys() };
}

/** SD3's shift (Esser et al. 2024, eq. 23): σ' = s σ / (1 + (s − 1) σ). */
function shifted(sigma: number, s: number): number {
  return (s * sigma) / (1 + (s - 1) * sigma);
}

/**
 * Euler's method on the rectified-flow ODE dx/dσ = v (Lipman et al. 2023; Esser et al. 2024, SD3), diffusers'
 * `FlowMatchEulerDiscreteScheduler`: timesteps t = 1000 σ, the model predicts the velocity, one step is
 * x ← x + (σ_next − σ) v.
 */
export class FlowMatchEulerDiscreteScheduler {
  /** A flow-matching Euler scheduler from a `scheduler_config.json`. */
  static readonly fromConfig = fromConfigOf(FlowMatchEulerDiscreteScheduler, readFlowMatchEulerConfig);
  readonly name = 'flowmatch';
  readonly className = 'FlowMatchEulerDiscreteScheduler';
  /** The starting noise is N(0, I): x at σ = 1 is pure ε. */
  readonly initNoiseSigma = 1;
  /** Timesteps t = T σ in sampling order (float32; before setTimesteps: the shifted training grid). */
  timesteps: readonly number[];
  /** σ_0 > σ_1 > … > σ_{n−1}, then 0 (float32; before setTimesteps: the training grid without the 0). */
  sigmas: readonly number[];
  /** n of the latest `setTimesteps(n)`; 0 before. */
  numInferenceSteps = 0;
  readonly #sigmaMin: number;
  readonly #sigmaMax: number;

  constructor(
    readonly config: FlowMatchEulerConfig,
    readonly ignoredConfigKeys: readonly string[] = [],
  ) {
    const T = config.num_train_timesteps;
    // the training grid σ = t/T, t = T…1, shifted once (in float32, as diffusers' torch code)
    const sigmas = Array.from({ length: T }, (_, i) => f32(f32(T - i) / T));
    this.sigmas = config.use_dynamic_shifting
      ? sigmas
      : sigmas.map((s) => f32(f32(config.shift * s) / f32(1 + f32(f32(config.shift - 1) * s))));
    this.timesteps = this.sigmas.map((s) => f32(s * T));
    this.#sigmaMax = this.sigmas[0]!;
    this.#sigmaMin = this.sigmas[T - 1]!;
  }

  /**
   * The n sampling steps: t evenly spaced from T σ_max to T σ_min of the (already shifted) training grid, then
   * shifted — diffusers 0.30.0 applies the shift twice when shift ≠ 1, and so does this. With
   * `use_dynamic_shifting`, `mu` replaces the second shift (σ' = e^μ / (e^μ + 1/σ − 1)).
   */
  setTimesteps(numInferenceSteps: number, opts: { mu?: number } = {}): void {
    const T = this.config.num_train_timesteps;
    if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1 || numInferenceSteps > T) {
      throw new Error(
        `${this.className}.setTimesteps: numInferenceSteps must be an integer in [1, ${T}] (num_train_timesteps), got ${numInferenceSteps}`,
      );
    }
    const { mu } = opts;
    if (this.config.use_dynamic_shifting && (mu === undefined || !Number.isFinite(mu))) {
      throw new Error(
        `${this.className}.setTimesteps: use_dynamic_shifting is true, so pass a finite { mu } (the resolution's shift)`,
      );
    }
    // float64 as numpy computes them, then float32
    const sigmas = linspaceF64(this.#sigmaMax * T, this.#sigmaMin * T, numInferenceSteps).map((t) => {
      const s = t / T;
      if (mu !== undefined && this.config.use_dynamic_shifting)
        return f32(Math.exp(mu) / (Math.exp(mu) + (1 / s - 1)));
      return f32(shifted(s, this.config.shift));
    });
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = sigmas.map((s) => f32(s * T));
    this.sigmas = [...sigmas, 0];
  }

  #index(t: number, where: string): number {
    const i = this.timesteps.indexOf(t);
    if (i < 0 || i >= this.sigmas.length - 1) {
      throw new Error(
        `${this.className}.${where}: timestep ${t} is not one of scheduler.timesteps (call setTimesteps)`,
      );
    }
    return i;
  }

  /** The model sees x itself (no input scaling in flow matching). */
  scaleModelInput(sample: Tensor, _t: number): Tensor {
    return sample;
  }

  /** One Euler step of the flow ODE from σ_t to the next σ. */
  step(modelOutput: Tensor, t: number, sample: Tensor, opts: StepOptions = {}): StepOutput {
    // diffusers 0.30.0 takes s_churn & co. and ignores them; here they are refused
    rejectStepOptions(this.className, opts, []);
    const i = this.#index(t, 'step');
    // Notation (Lipman et al. 2023; diffusers' names): sample x_σ, modelOutput v_θ(x_σ, σ) ≈ ε − x₀,
    //   sigma σ_i, sigmaNext σ_{i+1}, prevSample x_{σ_{i+1}} = x_σ + (σ_{i+1} − σ_i) v_θ
    const sigma = this.sigmas[i]!;
    const sigmaNext = this.sigmas[i + 1]!;
    const prevSample = sample.add(modelOutput.mul(f32(sigmaNext - sigma)));
    // x̂₀ = x_σ − σ v (diffusers does not return it; it is the same line's end point at σ = 0)
    return { prevSample, predOriginalSample: sample.sub(modelOutput.mul(sigma)) };
  }

  /**
   * The forward process of flow matching, diffusers' `scale_noise`: x_σ = σ ε + (1 − σ) x₀, σ of timestep t
   * (one t, or one per batch row; each must be one of `timesteps`).
   */
  scaleNoise(original: Tensor, noise: Tensor, t: number | readonly number[]): Tensor {
    const ts = typeof t === 'number' ? [t] : t;
    if (ts.length !== 1 && ts.length !== original.shape[0]) {
      throw new Error(
        `${this.className}.scaleNoise: ${ts.length} timesteps for a batch of ${original.shape[0]} (give one, or one per row)`,
      );
    }
    const sigmas = ts.map((ti) => this.sigmas[this.#index(ti, 'scaleNoise')]!);
    return noise.mul(perRow(sigmas, original)).add(
      original.mul(
        perRow(
          sigmas.map((s) => f32(1 - s)),
          original,
        ),
      ),
    );
  }
}
