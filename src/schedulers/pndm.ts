// PNDM: Liu, Ren, Lin & Zhao 2022, "Pseudo Numerical Methods for Diffusion Models on Manifolds", its
// pseudo linear multi-step method (PLMS): a fourth-order Adams–Bashforth combination of the latest ε
// estimates, moved along the data manifold by DDIM's "transfer part" φ. diffusers' PNDMScheduler with
// `skip_prk_steps: true` (Stable Diffusion's PLMS): the warm-up uses a second-order step on the first
// interval and lower-order combinations until four ε are known, instead of the paper's Runge–Kutta steps.

import type { Tensor } from '../tensor/index.js';
import { type CommonSchedulerConfig, type SchedulerConfigJson, SchedulerConfigReader } from './config.js';
import { cumprodAlphas, f32, makeBetas } from './noise-schedule.js';
import {
  fromConfigOf,
  rejectStepOptions,
  requireTimesteps,
  SchedulerBase,
  type StepOptions,
  type StepOutput,
} from './scheduler.js';

/** PNDM's `scheduler_config.json` (diffusers' names). */
export interface PNDMConfig extends CommonSchedulerConfig {
  prediction_type: 'epsilon' | 'v_prediction';
  set_alpha_to_one: boolean;
}

export function readPNDMConfig(json: SchedulerConfigJson): { config: PNDMConfig; ignored: string[] } {
  const r = new SchedulerConfigReader('PNDMScheduler', json);
  const common = r.common({
    spacing: 'leading',
    predictionTypes: ['epsilon', 'v_prediction'],
    zeroSnr: false,
  });
  if (json['skip_prk_steps'] !== true) {
    throw new Error(
      `PNDMScheduler config: "skip_prk_steps" = ${JSON.stringify(json['skip_prk_steps'] ?? false)}` +
        `${json['skip_prk_steps'] == null ? ' (diffusers’ default)' : ''} is not supported by attnkit: the ` +
        'Runge–Kutta warm-up is not implemented; set "skip_prk_steps": true (PLMS, as Stable Diffusion uses) ' +
        "or pass it as an override: schedulerFromConfig(config, 'pndm', { skip_prk_steps: true })",
    );
  }
  r.accept('skip_prk_steps');
  const config: PNDMConfig = {
    ...common,
    prediction_type: common.prediction_type as PNDMConfig['prediction_type'],
    set_alpha_to_one: r.boolean('set_alpha_to_one', false),
  };
  return { config, ignored: r.ignoredKeys() };
}

/**
 * PNDM's pseudo linear multistep sampler (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models on
 * Manifolds"), diffusers' `PNDMScheduler` (PLMS steps).
 */
export class PNDMScheduler extends SchedulerBase<PNDMConfig> {
  /** A PNDM scheduler from a `scheduler_config.json`. */
  static readonly fromConfig = fromConfigOf(PNDMScheduler, readPNDMConfig);
  readonly name = 'pndm';
  readonly className = 'PNDMScheduler';
  readonly initNoiseSigma = 1;
  readonly finalAlphaCumprod: number;
  /** Steps taken since setTimesteps. */
  #counter = 0;
  /** The latest ε_θ (at most four), oldest first. */
  #ets: Tensor[] = [];
  /** x_t at the start of the warm-up interval. */
  #warmupSample: Tensor | null = null;

  constructor(config: PNDMConfig, ignoredConfigKeys: readonly string[] = []) {
    super(config, ignoredConfigKeys, cumprodAlphas(makeBetas(config)));
    this.finalAlphaCumprod = config.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  /** The spaced timesteps with the second repeated (it ends the warm-up's first interval twice); clears the history. */
  protected override schedule(n: number): readonly number[] {
    const ts = super.schedule(n);
    this.#counter = 0;
    this.#ets = [];
    this.#warmupSample = null;
    // the second timestep is visited twice: the first interval is stepped once with ε(x_t), then again from
    // x_t with the average of ε(x_t) and ε at the interval's end
    return ts.length > 1 ? [ts[0]!, ts[1]!, ...ts.slice(1)] : ts;
  }

  /** One PLMS step from the model outputs of this and the previous steps. */
  step(modelOutput: Tensor, t: number, sample: Tensor, opts: StepOptions = {}): StepOutput {
    rejectStepOptions(this.className, opts, []);
    requireTimesteps(this.className, this.timesteps);
    const expected = this.timesteps[this.#counter];
    if (expected !== t) {
      throw new Error(
        `${this.className}.step: step ${this.#counter} expects timestep ${expected ?? '(none: the schedule is done)'}, ` +
          `got ${t}; PLMS keeps a history, so call step once per timestep of scheduler.timesteps, in order`,
      );
    }
    const stride = Math.floor(this.config.num_train_timesteps / this.numInferenceSteps);
    // Notation (Liu et al. 2022; δ is the stride):
    //   e1, e2, e3, e4   e_t, e_{t+δ}, e_{t+2δ}, e_{t+3δ}: the latest ε_θ, newest first (as many as known)
    //   eps              e'_t, the linear multi-step combination
    //   from, to     t and t − δ, the interval φ(x_t, e'_t, t, t − δ) moves across
    let from = t;
    let to = t - stride;
    let x = sample;
    let eps: Tensor;
    if (this.#counter === 1) {
      // warm-up, second half: back at the start of the first interval with the average of both ε (Heun-like)
      from = t + stride;
      to = t;
      x = this.#warmupSample!;
      this.#warmupSample = null;
      eps = modelOutput.add(this.#ets[this.#ets.length - 1]!).div(2);
    } else {
      this.#ets = [...this.#ets.slice(-3), modelOutput];
      const [e1, e2, e3, e4] = [...this.#ets].reverse() as [Tensor, Tensor?, Tensor?, Tensor?];
      if (this.#ets.length === 1) {
        eps = e1;
        this.#warmupSample = sample;
        // warm-up while fewer than four ε are known: Adams–Bashforth of order 2, then 3
      } else if (!e3) eps = e1.mul(3).sub(e2!).div(2);
      else if (!e4) eps = e1.mul(23).sub(e2!.mul(16)).add(e3.mul(5)).div(12);
      // PLMS: e'_t = (55 e_t − 59 e_{t+δ} + 37 e_{t+2δ} − 9 e_{t+3δ})/24
      else
        eps = e1
          .mul(55)
          .sub(e2!.mul(59))
          .add(e3.mul(37))
          .sub(e4.mul(9))
          .mul(f32(1 / 24));
    }
    this.#counter++;
    return { prevSample: this.#transfer(x, from, to, eps) };
  }

  /**
   * The transfer part φ(x_t, ε, t, t − δ) — DDIM's deterministic step written as
   *   x_{t−δ} = √(ᾱ_{t−δ}/ᾱ_t) x_t − (ᾱ_{t−δ} − ᾱ_t) ε / (ᾱ_t √(1 − ᾱ_{t−δ}) + √(ᾱ_t (1 − ᾱ_t) ᾱ_{t−δ}))
   */
  #transfer(sample: Tensor, from: number, to: number, modelOutput: Tensor): Tensor {
    // Notation: alphaBar ᾱ_t, alphaBarPrev ᾱ_{t−δ} (the final ᾱ past timestep 0)
    const alphaBar = this.alphasCumprod[from]!;
    const alphaBarPrev = to >= 0 ? this.alphasCumprod[to]! : this.finalAlphaCumprod;
    const betaBar = f32(1 - alphaBar);
    const betaBarPrev = f32(1 - alphaBarPrev);
    let eps = modelOutput;
    if (this.config.prediction_type === 'v_prediction') {
      // ε = √ᾱ v + √(1 − ᾱ) x_t
      eps = modelOutput.mul(f32(Math.sqrt(alphaBar))).add(sample.mul(f32(Math.sqrt(betaBar))));
    }
    const sampleCoeff = f32(Math.sqrt(f32(alphaBarPrev / alphaBar)));
    const denominator = f32(
      f32(alphaBar * f32(Math.sqrt(betaBarPrev))) +
        f32(Math.sqrt(f32(f32(alphaBar * betaBar) * alphaBarPrev))),
    );
    return sample.mul(sampleCoeff).sub(eps.mul(f32(alphaBarPrev - alphaBar)).div(denominator));
  }
}
