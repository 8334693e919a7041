// DDIM: Song, Meng & Ermon 2020, "Denoising Diffusion Implicit Models" (diffusers' DDIMScheduler), with
// η-controlled noise (eq. 16) and DDIM inversion (the deterministic step run from t−Δ to t, as in
// null-text inversion, Mokady et al. 2022, and diffusers' DDIMInverseScheduler).

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

/** DDIM's `scheduler_config.json` (diffusers' names). */
export interface DDIMConfig extends CommonSchedulerConfig, ClipSampleConfig {
  set_alpha_to_one: boolean;
}

export function readDDIMConfig(json: SchedulerConfigJson): { config: DDIMConfig; ignored: string[] } {
  const r = new SchedulerConfigReader('DDIMScheduler', json);
  const config: DDIMConfig = {
    ...r.common({ spacing: 'leading' }),
    ...r.clipSample(),
    set_alpha_to_one: r.boolean('set_alpha_to_one', true),
  };
  r.noThresholding();
  return { config, ignored: r.ignoredKeys() };
}

/** One step of DDIM inversion: the noisier sample and x̂_0. */
export interface InvertOutput {
  /** The sample at timestep t (noisier than the input). */
  nextSample: Tensor;
  /** x̂_0 from the input sample and ε. */
  predOriginalSample: Tensor;
}

/**
 * DDIM (Song et al. 2021, "Denoising Diffusion Implicit Models"), diffusers' `DDIMScheduler`, with η and the
 * inversion step.
 */
export class DDIMScheduler extends SchedulerBase<DDIMConfig> {
  /** A DDIM scheduler from a `scheduler_config.json`. */
  static readonly fromConfig = fromConfigOf(DDIMScheduler, readDDIMConfig);
  readonly name = 'ddim';
  readonly className = 'DDIMScheduler';
  readonly initNoiseSigma = 1;
  /** ᾱ used after the last step (t − Δ < 0): 1 with set_alpha_to_one, else ᾱ_0. */
  readonly finalAlphaCumprod: number;

  constructor(config: DDIMConfig, ignoredConfigKeys: readonly string[] = []) {
    super(config, ignoredConfigKeys, cumprodAlphas(makeBetas(config)));
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  /** The stride Δ between sampling timesteps, ⌊T/n⌋ (diffusers' rule for every spacing). */
  get stride(): number {
    if (this.numInferenceSteps === 0) throw new Error(`${this.className}: call setTimesteps(n) first`);
    return Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
  }

  #alphaBar(t: number): number {
    if (t < 0) return this.finalAlphaCumprod;
    const a = this.alphasCumprod[t];
    if (a === undefined || !Number.isInteger(t)) {
      throw new Error(
        `${this.className}: timestep ${t} is not an integer in [0, ${this.alphasCumprod.length})`,
      );
    }
    return a;
  }

  /** One DDIM step, eq. (12) of the paper: from x_t and the model output to x_{t−1}. */
  step(modelOutput: Tensor, t: number, sample: Tensor, opts: StepOptions = {}): StepOutput {
    rejectStepOptions(this.className, opts, ['eta', 'useClippedModelOutput', 'noise', 'generator']);
    const eta = opts.eta ?? 0;
    // Notation (Song et al. 2020; DDIM's α_t is DDPM's ᾱ_t):
    //   alphaBar       α_t              alphaBarPrev  α_{t−1} (the previous timestep of the subsequence τ)
    //   modelOutput    ε_θ^{(t)}(x_t)   x0            f_θ^{(t)}(x_t), the "predicted x_0"
    //   stdDev         σ_t(η)           direction     "direction pointing to x_t"
    //   prevSample     x_{t−1}
    const alphaBar = this.#alphaBar(t);
    const alphaBarPrev = this.#alphaBar(t - this.stride);
    const betaBar = f32(1 - alphaBar);
    const betaBarPrev = f32(1 - alphaBarPrev);

    // eq. (12), first term: predicted x_0 (or ε from a sample / v prediction)
    let { x0, eps } = predictX0AndEps(this.config.prediction_type, modelOutput, sample, alphaBar);
    if (this.config.clip_sample) x0 = x0.clamp(-this.config.clip_sample_range, this.config.clip_sample_range);
    if (opts.useClippedModelOutput) {
      // ε re-derived from the clipped x̂_0 (GLIDE's convention)
      eps = sample.sub(x0.mul(f32(Math.sqrt(alphaBar)))).div(f32(Math.sqrt(betaBar)));
    }

    // eq. (16): σ_t(η) = η √((1 − α_{t−1})/(1 − α_t)) √(1 − α_t/α_{t−1})
    const variance = f32(f32(betaBarPrev / betaBar) * f32(1 - f32(alphaBar / alphaBarPrev)));
    const stdDev = f32(eta * f32(Math.sqrt(variance)));

    // eq. (12): x_{t−1} = √α_{t−1} x̂_0 + √(1 − α_{t−1} − σ_t²) ε_θ + σ_t ε_t
    const direction = eps.mul(f32(Math.sqrt(f32(betaBarPrev - f32(stdDev * stdDev)))));
    let prevSample = x0.mul(f32(Math.sqrt(alphaBarPrev))).add(direction);
    if (eta > 0) prevSample = prevSample.add(stepNoise(this.className, opts, sample).mul(stdDev));
    return { prevSample, predOriginalSample: x0 };
  }

  /** Timesteps in inversion order (ascending): run `invertStep` with each. */
  get inversionTimesteps(): number[] {
    return [...this.timesteps].reverse();
  }

  /**
   * DDIM inversion, x_{t−Δ} → x_t: the deterministic (η = 0) step of eq. (12) solved for x_t, i.e. eq. (13)
   * run towards noise with ε_θ evaluated at the less noisy end (x_{t−Δ}, t), as null-text inversion does:
   *   x_t = √α_t x̂_0 + √(1 − α_t) ε_θ,   x̂_0 = (x_{t−Δ} − √(1 − α_{t−Δ}) ε_θ)/√α_{t−Δ}
   * `sample` is at the level `step(·, t, ·)` lands on (ᾱ_{t−Δ}, or the final ᾱ when t − Δ < 0); with the
   * same ε the two are exact inverses. x̂_0 is not clipped here (clipping has no inverse).
   */
  invertStep(modelOutput: Tensor, t: number, sample: Tensor): InvertOutput {
    // Notation as in `step`, with the roles of t and t−1 exchanged:
    //   alphaBarPrev  α_{t−Δ} (where `sample` is)   alphaBar  α_t (where the result is)
    const alphaBarPrev = this.#alphaBar(t - this.stride);
    const alphaBar = this.#alphaBar(t);
    const { x0, eps } = predictX0AndEps(this.config.prediction_type, modelOutput, sample, alphaBarPrev);
    const direction = eps.mul(f32(Math.sqrt(f32(1 - alphaBar))));
    return { nextSample: x0.mul(f32(Math.sqrt(alphaBar))).add(direction), predOriginalSample: x0 };
  }
}
