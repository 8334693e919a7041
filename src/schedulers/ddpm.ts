// DDPM: Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models" (diffusers' DDPMScheduler):
// ancestral sampling from the posterior q(x_{t−1} | x_t, x̂_0), on any subsequence of timesteps.

import type { Tensor } from '../tensor/index.js';
import {
  type ClipSampleConfig,
  type CommonSchedulerConfig,
  type SchedulerConfigJson,
  SchedulerConfigReader,
} from './config.js';
import { cumprodAlphas, f32, makeBetas } from './noise-schedule.js';
import {
  fromConfigOf,
  predictX0AndEps,
  rejectStepOptions,
  SchedulerBase,
  type StepOptions,
  type StepOutput,
  stepNoise,
} from './scheduler.js';

/** σ_t² = β̃_t (fixed_small; _log: the same σ_t through exp(½ log β̃_t)) or β_t (fixed_large); Sec. 3.2. */
export type DDPMVarianceType = 'fixed_small' | 'fixed_small_log' | 'fixed_large';

/** DDPM's `scheduler_config.json` (diffusers' names). */
export interface DDPMConfig extends CommonSchedulerConfig, ClipSampleConfig {
  variance_type: DDPMVarianceType;
}

export function readDDPMConfig(json: SchedulerConfigJson): { config: DDPMConfig; ignored: string[] } {
  const r = new SchedulerConfigReader('DDPMScheduler', json);
  const config: DDPMConfig = {
    ...r.common({ spacing: 'leading' }),
    variance_type: r.choice<DDPMVarianceType>('variance_type', 'fixed_small', [
      'fixed_small',
      'fixed_small_log',
      'fixed_large',
    ]),
    ...r.clipSample(),
  };
  r.noThresholding();
  return { config, ignored: r.ignoredKeys() };
}

/**
 * DDPM ancestral sampling (Ho et al. 2020, "Denoising Diffusion Probabilistic Models"), diffusers'
 * `DDPMScheduler`.
 */
export class DDPMScheduler extends SchedulerBase<DDPMConfig> {
  /** A DDPM scheduler from a `scheduler_config.json`. */
  static readonly fromConfig = fromConfigOf(DDPMScheduler, readDDPMConfig);
  readonly name = 'ddpm';
  readonly className = 'DDPMScheduler';
  readonly initNoiseSigma = 1;

  constructor(config: DDPMConfig, ignoredConfigKeys: readonly string[] = []) {
    super(config, ignoredConfigKeys, cumprodAlphas(makeBetas(config)));
  }

  /** The previous timestep t − ⌊T/n⌋ (t − 1 before setTimesteps: the full 1000-step chain). */
  previousTimestep(t: number): number {
    const n = this.numInferenceSteps || this.config.num_train_timesteps;
    return t - Math.floor(this.config.num_train_timesteps / n);
  }

  /** One ancestral step: x_{t−1} from the posterior q(x_{t−1} | x_t, x̂_0) with fresh noise. */
  step(modelOutput: Tensor, t: number, sample: Tensor, opts: StepOptions = {}): StepOutput {
    rejectStepOptions(this.className, opts, ['noise', 'generator']);
    const alphaBar = this.alphasCumprod[t];
    if (alphaBar === undefined || !Number.isInteger(t)) {
      throw new Error(
        `${this.className}.step: timestep ${t} is not an integer in [0, ${this.alphasCumprod.length})`,
      );
    }
    const prevT = this.previousTimestep(t);
    // Notation (Ho et al. 2020; on a subsequence, α_t and β_t are those of the jump from prevT to t):
    //   alphaBar      ᾱ_t        alphaBarPrev  ᾱ_{t−1}
    //   alpha         α_t = ᾱ_t/ᾱ_{t−1}          beta          β_t = 1 − α_t
    //   modelOutput   ε_θ(x_t, t)                x0            x̂_0
    //   variance      β̃_t (fixed_small) or β_t (fixed_large) = σ_t²
    const alphaBarPrev = prevT >= 0 ? this.alphasCumprod[prevT]! : 1;
    const betaBar = f32(1 - alphaBar);
    const betaBarPrev = f32(1 - alphaBarPrev);
    const alpha = f32(alphaBar / alphaBarPrev);
    const beta = f32(1 - alpha);

    // eq. (15): x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ)/√ᾱ_t
    let { x0 } = predictX0AndEps(this.config.prediction_type, modelOutput, sample, alphaBar);
    if (this.config.clip_sample) x0 = x0.clamp(-this.config.clip_sample_range, this.config.clip_sample_range);

    // eq. (7): μ̃_t = √ᾱ_{t−1} β_t/(1 − ᾱ_t) x̂_0 + √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) x_t
    const x0Coeff = f32(f32(f32(Math.sqrt(alphaBarPrev)) * beta) / betaBar);
    const sampleCoeff = f32(f32(f32(Math.sqrt(alpha)) * betaBarPrev) / betaBar);
    let prevSample = x0.mul(x0Coeff).add(sample.mul(sampleCoeff));

    // x_{t−1} = μ̃_t + σ_t z (no noise at t = 0)
    if (t > 0) {
      // eq. (7): β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) β_t
      const posteriorVariance = Math.max(f32(f32(betaBarPrev / betaBar) * beta), 1e-20);
      let std: number;
      if (this.config.variance_type === 'fixed_small') std = f32(Math.sqrt(posteriorVariance));
      else if (this.config.variance_type === 'fixed_small_log') {
        std = f32(Math.exp(f32(0.5 * f32(Math.log(posteriorVariance)))));
      } else std = f32(Math.sqrt(beta));
      prevSample = prevSample.add(stepNoise(this.className, opts, sample).mul(std));
    }
    return { prevSample, predOriginalSample: x0 };
  }
}
