// Euler: Karras, Aittala, Aila & Laine 2022, "Elucidating the Design Space of Diffusion-Based Generative
// Models" (EDM), Algorithm 2 without its second-order correction (lines 9–11), on the noise levels of a
// VP model, as k-diffusion's `sample_euler` and diffusers' EulerDiscreteScheduler run it. The VP sample x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε is carried in the VE scaling
// x = x_t/√ᾱ_t = x_0 + σ_t ε, σ_t = √((1 − ᾱ_t)/ᾱ_t), so the model sees x_t = x/√(σ_t² + 1).

import type { Tensor } from '../tensor/index.js';
import { type CommonSchedulerConfig, type SchedulerConfigJson, SchedulerConfigReader } from './config.js';
import {
  arangeF64,
  f32,
  finiteAlphasCumprod,
  interpIndex,
  karrasSigmas,
  linspaceF64,
  roundHalfEven,
  sigmaToT,
  trainingSigmas,
} from './noise-schedule.js';
import {
  fromConfigOf,
  perRow,
  rejectStepOptions,
  rowTimesteps,
  SchedulerBase,
  type StepOptions,
  type StepOutput,
  stepNoise,
} from './scheduler.js';

/** The Euler scheduler's `scheduler_config.json` (diffusers' names). */
export interface EulerConfig extends CommonSchedulerConfig {
  use_karras_sigmas: boolean;
  /** Karras range overrides (diffusers ≥ 0.28); null: the schedule's own σ_min / σ_max. */
  sigma_min: number | null;
  sigma_max: number | null;
  /** The σ after the last step: 0 (diffusers' default) or the σ of training timestep 0. */
  final_sigmas_type: 'zero' | 'sigma_min';
}

export function readEulerConfig(json: SchedulerConfigJson): { config: EulerConfig; ignored: string[] } {
  const r = new SchedulerConfigReader('EulerDiscreteScheduler', json);
  const common = r.common({ spacing: 'linspace' });
  const config: EulerConfig = {
    ...common,
    use_karras_sigmas: r.boolean('use_karras_sigmas', false),
    sigma_min: r.numberOrNull('sigma_min', { min: 0 }),
    sigma_max: r.numberOrNull('sigma_max', { min: 0 }),
    final_sigmas_type: r.choice('final_sigmas_type', 'zero', ['zero', 'sigma_min']),
  };
  r.only('interpolation_type', ['linear']);
  r.only('use_exponential_sigmas', [false]);
  r.only('use_beta_sigmas', [false]);
  r.only('timestep_type', ['discrete']);
  return { config, ignored: r.ignoredKeys() };
}

/**
 * Euler's method on the probability-flow ODE in σ (Karras et al. 2022, "Elucidating the Design Space"),
 * diffusers' `EulerDiscreteScheduler`.
 */
export class EulerDiscreteScheduler extends SchedulerBase<EulerConfig> {
  /** An Euler scheduler from a `scheduler_config.json`. */
  static readonly fromConfig = fromConfigOf(EulerDiscreteScheduler, readEulerConfig);
  readonly name = 'euler';
  readonly className = 'EulerDiscreteScheduler';
  /** σ_t of every training timestep (float32). */
  readonly trainingSigmas: readonly number[];
  /** σ_0 > σ_1 > … > σ_n: one per timestep, then the final σ (float32). */
  sigmas: readonly number[];

  constructor(config: EulerConfig, ignoredConfigKeys: readonly string[] = []) {
    super(config, ignoredConfigKeys, finiteAlphasCumprod(config));
    this.trainingSigmas = trainingSigmas(this.alphasCumprod);
    // before setTimesteps: the training grid T−1..0
    this.timesteps = Array.from(
      { length: config.num_train_timesteps },
      (_, i) => config.num_train_timesteps - 1 - i,
    );
    this.sigmas = [...[...this.trainingSigmas].reverse(), 0];
  }

  /** σ_max for "linspace"/"trailing" spacing; √(σ_max² + 1) for "leading" (diffusers' rule). */
  get initNoiseSigma(): number {
    const max = Math.max(...this.sigmas);
    if (this.config.timestep_spacing === 'leading') return f32(Math.sqrt(f32(f32(max * max) + 1)));
    return max;
  }

  /** The timesteps of n steps (fractional with Karras sigmas), and `sigmas` at them. */
  protected override schedule(n: number): readonly number[] {
    const c = this.config;
    const T = c.num_train_timesteps;
    // Float32 timesteps, not rounded for "linspace" (the model sees fractional t)
    let timesteps: number[];
    if (c.timestep_spacing === 'linspace')
      timesteps = linspaceF64(0, T - 1, n)
        .map(f32)
        .reverse();
    else if (c.timestep_spacing === 'leading') {
      const ratio = Math.floor(T / n);
      timesteps = Array.from({ length: n }, (_, i) => f32((n - 1 - i) * ratio + c.steps_offset));
    } else timesteps = arangeF64(T, 0, -T / n).map((t) => f32(roundHalfEven(t) - 1));

    let sigmas = timesteps.map((t) => interpIndex(t, this.trainingSigmas));
    if (c.use_karras_sigmas) {
      // eq. (5) between the schedule's end points; timesteps follow the new σ through log-σ interpolation
      sigmas = karrasSigmas(c.sigma_min ?? sigmas[sigmas.length - 1]!, c.sigma_max ?? sigmas[0]!, n);
      const logSigmas = this.trainingSigmas.map((s) => f32(Math.log(s)));
      timesteps = sigmas.map((s) => sigmaToT(s, logSigmas));
    }
    const final = c.final_sigmas_type === 'zero' ? 0 : this.trainingSigmas[0]!;
    this.sigmas = [...sigmas, final].map(f32);
    return timesteps;
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

  /** EDM Table 1 (VP): c_in = 1/√(σ² + 1). */
  override scaleModelInput(sample: Tensor, t: number): Tensor {
    const sigma = this.sigmas[this.#index(t, 'scaleModelInput')]!;
    return sample.div(f32(Math.sqrt(f32(f32(sigma * sigma) + 1))));
  }

  /** One Euler step from σ_t to the next σ (with optional churn). */
  step(modelOutput: Tensor, t: number, sample: Tensor, opts: StepOptions = {}): StepOutput {
    rejectStepOptions(this.className, opts, ['sChurn', 'sTmin', 'sTmax', 'sNoise', 'noise', 'generator']);
    const i = this.#index(t, 'step');
    // Notation (Karras et al. 2022, Algorithm 2; σ is EDM's t):
    //   sigma         t_i            sigmaHat   t̂_i = t_i + γ_i t_i     sigmaNext  t_{i+1}
    //   sample        x_i (then x̂_i) x0         D_θ(x̂_i; t̂_i), the denoised estimate
    //   derivative    d_i = (x̂_i − D_θ(x̂_i; t̂_i))/t̂_i                prevSample x_{i+1}
    const sigma = this.sigmas[i]!;
    const sigmaNext = this.sigmas[i + 1]!;
    const { sChurn = 0, sTmin = 0, sTmax = Number.POSITIVE_INFINITY, sNoise = 1 } = opts;

    // lines 4–6: γ_i = min(S_churn/N, √2 − 1) if t_i ∈ [S_tmin, S_tmax]; x̂_i = x_i + √(t̂_i² − t_i²) ε_i
    const gamma =
      sTmin <= sigma && sigma <= sTmax ? Math.min(sChurn / (this.sigmas.length - 1), Math.SQRT2 - 1) : 0;
    const sigmaHat = f32(sigma * (gamma + 1));
    if (gamma > 0) {
      const eps = stepNoise(this.className, opts, sample).mul(sNoise);
      sample = sample.add(eps.mul(f32(Math.sqrt(f32(f32(sigmaHat * sigmaHat) - f32(sigma * sigma))))));
    }

    // line 7: D_θ from the model output (EDM Table 1 preconditioning):
    //   ε: c_skip = 1, c_out = −σ;   v: c_skip = 1/(σ² + 1), c_out = −σ/√(σ² + 1);   sample: D_θ = output
    let x0: Tensor;
    if (this.config.prediction_type === 'epsilon') x0 = sample.sub(modelOutput.mul(sigmaHat));
    else if (this.config.prediction_type === 'sample') x0 = modelOutput;
    else {
      const s2p1 = f32(f32(sigma * sigma) + 1);
      x0 = modelOutput.mul(f32(-sigma / f32(Math.sqrt(s2p1)))).add(sample.div(s2p1));
    }

    // lines 7–8: d_i = (x̂_i − D)/t̂_i; x_{i+1} = x̂_i + (t_{i+1} − t̂_i) d_i
    const derivative = sample.sub(x0).div(sigmaHat);
    const prevSample = sample.add(derivative.mul(f32(sigmaNext - sigmaHat)));
    return { prevSample, predOriginalSample: x0 };
  }

  /** x = x_0 + σ_t ε (the VE form of the forward process); t must be one of `timesteps`. */
  override addNoise(original: Tensor, noise: Tensor, t: number | readonly number[]): Tensor {
    const sigmas = rowTimesteps(this.className, t, original).map(
      (ti) => this.sigmas[this.#index(ti, 'addNoise')]!,
    );
    return original.add(noise.mul(perRow(sigmas, original)));
  }
}
