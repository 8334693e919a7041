// DPM-Solver++ (2M): Lu, Zhou, Bao, Chen, Li & Zhu 2022, "DPM-Solver++: Fast Solver for Guided Sampling
// of Diffusion Probabilistic Models", the multistep second-order solver of its Algorithm 2 in the data-
// prediction form (diffusers' DPMSolverMultistepScheduler with algorithm_type "dpmsolver++").
//
// With α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t) and λ_t = log(α_t/σ_t), the ODE's exact solution from s to t is
//   x_t = (σ_t/σ_s) x_s + σ_t ∫_{λ_s}^{λ_t} e^{λ} x_θ(x_λ, λ) dλ,
// which the solver approximates with x_θ held constant (first order, = DDIM) or extrapolated linearly in λ
// from the two latest model evaluations (second order).

import type { Tensor } from '../tensor/index.js';
import { type CommonSchedulerConfig, type SchedulerConfigJson, SchedulerConfigReader } from './config.js';
import {
  arangeF64,
  f32,
  finiteAlphasCumprod,
  karrasSigmas,
  linspaceF64,
  roundHalfEven,
  sigmaToT,
  trainingSigmas,
} from './noise-schedule.js';
import {
  fromConfigOf,
  rejectStepOptions,
  requireTimesteps,
  SchedulerBase,
  type StepOptions,
  type StepOutput,
} from './scheduler.js';

/** DPM-Solver's `scheduler_config.json` (diffusers' names). */
export interface DPMSolverConfig extends CommonSchedulerConfig {
  solver_order: 1 | 2;
  /** How the second-order term is formed: Algorithm 2's midpoint form, or the Heun-like form of the code. */
  solver_type: 'midpoint' | 'heun';
  /** First order at the last step when there are fewer than 15 steps (stabler for few steps). */
  lower_order_final: boolean;
  /** First order at the last step whatever the step count. */
  euler_at_final: boolean;
  use_karras_sigmas: boolean;
  /** Timesteps whose λ_t falls below this are not used (for the cosine schedule). */
  lambda_min_clipped: number;
  /** Where the last step lands: training timestep 0 (diffusers 0.21's behaviour, our default) or σ = 0. */
  final_sigmas_type: 'sigma_min' | 'zero';
}

export function readDPMSolverConfig(json: SchedulerConfigJson): {
  config: DPMSolverConfig;
  ignored: string[];
} {
  const r = new SchedulerConfigReader('DPMSolverMultistepScheduler', json);
  const common = r.common({ spacing: 'linspace' });
  const order = r.number('solver_order', 2, { integer: true });
  if (order !== 1 && order !== 2) throw r.unsupported('solver_order', order, '1, 2');
  r.choice('algorithm_type', 'dpmsolver++', ['dpmsolver++']);
  const config: DPMSolverConfig = {
    ...common,
    solver_order: order,
    solver_type: r.choice('solver_type', 'midpoint', ['midpoint', 'heun']),
    lower_order_final: r.boolean('lower_order_final', true),
    euler_at_final: r.boolean('euler_at_final', false),
    use_karras_sigmas: r.boolean('use_karras_sigmas', false),
    lambda_min_clipped: r.number('lambda_min_clipped', Number.NEGATIVE_INFINITY),
    final_sigmas_type: r.choice('final_sigmas_type', 'sigma_min', ['sigma_min', 'zero']),
  };
  r.noThresholding();
  r.only('variance_type', []);
  for (const key of [
    'use_exponential_sigmas',
    'use_beta_sigmas',
    'use_lu_lambdas',
    'use_flow_sigmas',
    'use_dynamic_shifting',
  ]) {
    r.only(key, [false]);
  }
  // used only by features rejected above
  r.accept('flow_shift');
  r.accept('time_shift_type');
  return { config, ignored: r.ignoredKeys() };
}

/** α, σ and λ = log α − log σ of one noise level (float32). */
interface Level {
  alpha: number;
  sigma: number;
  lambda: number;
}

function levelFromAlphaBar(alphaBar: number): Level {
  const alpha = f32(Math.sqrt(alphaBar));
  const sigma = f32(Math.sqrt(f32(1 - alphaBar)));
  return { alpha, sigma, lambda: f32(f32(Math.log(alpha)) - f32(Math.log(sigma))) };
}

/** A VE noise level σ̃ = σ/α as (α, σ): α = 1/√(σ̃² + 1), σ = σ̃ α. */
function levelFromSigma(veSigma: number): Level {
  const alpha = f32(1 / f32(Math.sqrt(f32(f32(veSigma * veSigma) + 1))));
  const sigma = f32(veSigma * alpha);
  return { alpha, sigma, lambda: f32(f32(Math.log(alpha)) - f32(Math.log(sigma))) };
}

/**
 * DPM-Solver++ 2M (Lu et al. 2022, "DPM-Solver++"), diffusers' `DPMSolverMultistepScheduler`: a second-order
 * multistep solver of the diffusion ODE.
 */
export class DPMSolverMultistepScheduler extends SchedulerBase<DPMSolverConfig> {
  /** A DPM-Solver++ scheduler from a `scheduler_config.json`. */
  static readonly fromConfig = fromConfigOf(DPMSolverMultistepScheduler, readDPMSolverConfig);
  readonly name = 'dpmpp2m';
  readonly className = 'DPMSolverMultistepScheduler';
  readonly initNoiseSigma = 1;
  /** The noise level of each timestep, then the level the last step lands on. */
  #levels: Level[] = [];
  /** x_θ of the latest step and that step's index (the multistep memory). */
  #previous: { x0: Tensor; index: number } | null = null;

  constructor(config: DPMSolverConfig, ignoredConfigKeys: readonly string[] = []) {
    super(config, ignoredConfigKeys, finiteAlphasCumprod(config));
  }

  /** The timesteps of n steps (each once), with their noise levels; clears the multistep memory. */
  protected override schedule(n: number): readonly number[] {
    const c = this.config;
    const T = c.num_train_timesteps;
    // the last usable timestep: drop those with λ_t < lambda_min_clipped
    const clipped = this.alphasCumprod.filter(
      (a) => levelFromAlphaBar(a).lambda < c.lambda_min_clipped,
    ).length;
    const last = T - clipped;

    let timesteps: number[];
    if (c.timestep_spacing === 'linspace') {
      timesteps = linspaceF64(0, last - 1, n + 1)
        .map(roundHalfEven)
        .reverse()
        .slice(0, -1);
    } else if (c.timestep_spacing === 'leading') {
      const ratio = Math.floor(last / (n + 1));
      timesteps = Array.from({ length: n }, (_, i) => (n - i) * ratio + c.steps_offset);
    } else timesteps = arangeF64(last, 0, -T / n).map((t) => roundHalfEven(t) - 1);

    let levels: Level[];
    if (c.use_karras_sigmas) {
      // eq. (5) of Karras et al. over the whole training range; each level's α, σ follow from its σ̃
      const veSigmas = trainingSigmas(this.alphasCumprod);
      const logSigmas = veSigmas.map((s) => f32(Math.log(s)));
      const karras = karrasSigmas(veSigmas[0]!, veSigmas[veSigmas.length - 1]!, n);
      timesteps = karras.map((s) => roundHalfEven(sigmaToT(s, logSigmas)));
      levels = karras.map((s) => levelFromSigma(f32(s)));
    } else levels = timesteps.map((t) => levelFromAlphaBar(this.alphasCumprod[t]!));

    // repeated timesteps (possible with many steps or Karras σ) are taken once
    const keep = timesteps.map((t, i) => timesteps.indexOf(t) === i);
    levels = levels.filter((_, i) => keep[i]);
    const final =
      c.final_sigmas_type === 'zero'
        ? { alpha: 1, sigma: 0, lambda: Number.POSITIVE_INFINITY }
        : levelFromAlphaBar(this.alphasCumprod[0]!);
    this.#levels = [...levels, final];
    this.#previous = null;
    return timesteps.filter((_, i) => keep[i]);
  }

  /** x_θ(x_t, t), the data prediction, from the model's parametrisation. */
  #dataPrediction(modelOutput: Tensor, sample: Tensor, s: Level): Tensor {
    if (this.config.prediction_type === 'epsilon') return sample.sub(modelOutput.mul(s.sigma)).div(s.alpha);
    if (this.config.prediction_type === 'sample') return modelOutput;
    return sample.mul(s.alpha).sub(modelOutput.mul(s.sigma));
  }

  /** One solver step: x_{t−1} from the model's data prediction at this and the previous step. */
  step(modelOutput: Tensor, t: number, sample: Tensor, opts: StepOptions = {}): StepOutput {
    rejectStepOptions(this.className, opts, []);
    requireTimesteps(this.className, this.timesteps);
    const i = this.timesteps.indexOf(t);
    if (i < 0) throw new Error(`${this.className}.step: timestep ${t} is not one of scheduler.timesteps`);
    const n = this.timesteps.length;
    const c = this.config;
    // first order at the last step: always with euler_at_final or a final σ of 0, and for < 15 steps
    const lowerOrderFinal =
      i === n - 1 && (c.euler_at_final || (c.lower_order_final && n < 15) || c.final_sigmas_type === 'zero');

    // Notation (Lu et al. 2022, Algorithm 2, at step i: from t_{i−1} (the current t) to t_i):
    //   s0, s1, to    the levels (α, σ, λ = log(α/σ)) of t_{i−1}, t_{i−2} and t_i
    //   h, h0         h_i = λ_{t_i} − λ_{t_{i−1}},  h_{i−1} = λ_{t_{i−1}} − λ_{t_{i−2}};   r0 = r_i = h_{i−1}/h_i
    //   m0, m1        x_θ(x̃_{t_{i−1}}, t_{i−1}) and x_θ(x̃_{t_{i−2}}, t_{i−2})
    //   D1            (m0 − m1)/r0, so that Algorithm 2's D_i = (1 + 1/(2r_i)) m0 − 1/(2r_i) m1 = m0 + D1/2
    //   sample, prevSample   x̃_{t_{i−1}}, x̃_{t_i}
    const s0 = this.#levels[i]!;
    const to = this.#levels[i + 1]!;
    const m0 = this.#dataPrediction(modelOutput, sample, s0);
    const previous = this.#previous;
    this.#previous = { x0: m0, index: i };

    const h = f32(to.lambda - s0.lambda);
    const expm1 = f32(f32(Math.exp(-h)) - 1); // e^{−h} − 1; −1 when landing on σ = 0 (λ = ∞)
    const firstOrderCoeff = f32(to.alpha * expm1);

    // first order (DPM-Solver++1, = DDIM): x̃_{t_i} = (σ_{t_i}/σ_{t_{i−1}}) x̃_{t_{i−1}} − α_{t_i} (e^{−h_i} − 1) m0
    let prevSample = sample.mul(f32(to.sigma / s0.sigma)).sub(m0.mul(firstOrderCoeff));
    if (c.solver_order === 2 && previous?.index === i - 1 && !lowerOrderFinal) {
      // Algorithm 2, second order: the same update with m0 replaced by D_i = m0 + D1/2
      const s1 = this.#levels[i - 1]!;
      const r0 = f32(f32(s0.lambda - s1.lambda) / h);
      const D1 = m0.sub(previous.x0).mul(f32(1 / r0));
      if (c.solver_type === 'midpoint') prevSample = prevSample.sub(D1.mul(f32(0.5 * firstOrderCoeff)));
      else {
        // solver_type "heun" (the reference code's variant): + α_{t_i} ((e^{−h} − 1)/h + 1) D1
        prevSample = prevSample.add(D1.mul(f32(to.alpha * f32(f32(expm1 / h) + 1))));
      }
    }
    return { prevSample, predOriginalSample: m0 };
  }
}
