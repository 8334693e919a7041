// DPM-Solver++ beyond the goldens: first order is DDIM, the final step to σ = 0 gives x_θ, Karras σ,
// lambda_min_clipped, zero terminal SNR, and step order errors.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DDIMScheduler,
  DPMSolverMultistepScheduler,
  type SchedulerConfigJson,
  schedulerFromConfig,
} from '../../../src/schedulers/index.js';
import { Tensor } from '../../../src/tensor/index.js';
import { Generator } from '../../../src/tensor/random.js';
import { assertMaxAbs, standInModel, ZERO_SNR_DDIM, zeroSnrAlphaBar } from './helpers.js';

test('DPM-Solver++ of order 1 is DDIM (η = 0) on the same timesteps', () => {
  const common = {
    beta_schedule: 'scaled_linear',
    beta_start: 0.00085,
    beta_end: 0.012,
    timestep_spacing: 'trailing',
  };
  const dpm = DPMSolverMultistepScheduler.fromConfig({ ...common, solver_order: 1 });
  const ddim = DDIMScheduler.fromConfig({ ...common, clip_sample: false, set_alpha_to_one: false });
  dpm.setTimesteps(8);
  ddim.setTimesteps(8);
  assert.deepEqual(dpm.timesteps, ddim.timesteps);
  let x = new Generator(1).randn([1, 4, 4, 4]);
  dpm.timesteps.forEach((t, i) => {
    const eps = standInModel(x, i);
    const a = dpm.step(eps, t, x).prevSample;
    assertMaxAbs(a, ddim.step(eps, t, x).prevSample, 2e-5, `step ${i}`);
    x = a;
  });
});

test('DPM-Solver++ with final_sigmas_type "zero": the last step returns x_θ', () => {
  const s = DPMSolverMultistepScheduler.fromConfig({ final_sigmas_type: 'zero' });
  s.setTimesteps(5);
  let x = new Generator(2).randn([1, 2, 3, 3]);
  let out = s.step(standInModel(x, 0), s.timesteps[0]!, x);
  s.timesteps.forEach((t, i) => {
    out = s.step(standInModel(x, i), t, x);
    x = out.prevSample;
  });
  // with α = 1, σ = 0 the update is (0/σ_s) x + (1 − e^{−∞}) x_θ = x_θ
  assertMaxAbs(out.prevSample, out.predOriginalSample!, 0, 'final');
});

test('DPM-Solver++ second order differs from first order after the first step', () => {
  const one = DPMSolverMultistepScheduler.fromConfig({ solver_order: 1 });
  const two = DPMSolverMultistepScheduler.fromConfig({});
  one.setTimesteps(6);
  two.setTimesteps(6);
  const x = new Generator(4).randn([1, 4, 2, 2]);
  const [t0, t1] = [two.timesteps[0]!, two.timesteps[1]!];
  const eps0 = standInModel(x, 0);
  assertMaxAbs(
    two.step(eps0, t0, x).prevSample,
    one.step(eps0, t0, x).prevSample,
    0,
    'first step is first order',
  );
  const eps1 = standInModel(x, 1);
  const a = two.step(eps1, t1, x).prevSample;
  const b = one.step(eps1, t1, x).prevSample;
  assert.ok(
    a.toArray().some((v, i) => Math.abs(v - b.toArray()[i]!) > 1e-3),
    'second order uses the history',
  );
});

test('DPM-Solver++ with Karras σ: integer, distinct, descending timesteps from 999 to 0', () => {
  const s = DPMSolverMultistepScheduler.fromConfig({
    beta_schedule: 'scaled_linear',
    beta_start: 0.00085,
    beta_end: 0.012,
    use_karras_sigmas: true,
  });
  s.setTimesteps(20);
  assert.equal(s.timesteps[0], 999);
  assert.equal(s.timesteps[s.timesteps.length - 1], 0);
  for (let i = 1; i < s.timesteps.length; i++) {
    assert.ok(Number.isInteger(s.timesteps[i]) && s.timesteps[i]! < s.timesteps[i - 1]!);
  }
  // Karras spacing concentrates steps at low noise: the last gaps are far smaller than the first
  assert.ok(
    s.timesteps[0]! - s.timesteps[1]! > 5 * (s.timesteps[s.timesteps.length - 2]! - s.timesteps.at(-1)!),
  );
  let x = new Generator(9).randn([1, 1, 2, 2]);
  s.timesteps.forEach((t, i) => {
    x = s.step(standInModel(x, i), t, x).prevSample;
  });
  assert.ok(x.toArray().every(Number.isFinite));
});

test('DPM-Solver++ lambda_min_clipped drops the timesteps with λ_t below it (cosine schedule)', () => {
  const s = DPMSolverMultistepScheduler.fromConfig({
    beta_schedule: 'squaredcos_cap_v2',
    lambda_min_clipped: -5.1,
  });
  s.setTimesteps(10);
  // λ_t = log √ᾱ_t − log √(1 − ᾱ_t), from ᾱ directly
  const lambda = (t: number): number => 0.5 * Math.log(s.alphasCumprod[t]! / (1 - s.alphasCumprod[t]!));
  assert.ok(s.timesteps[0]! < 999);
  for (const t of s.timesteps) assert.ok(lambda(t) >= -5.1 - 1e-4, `λ_${t} = ${lambda(t)}`);
  assert.ok(lambda(s.timesteps[0]! + 2) < -5.1, 'the clip cuts just above the first timestep');
});

test('DPM-Solver++ with zero terminal SNR: ᾱ of Lin et al. Algorithm 1, ᾱ_T = 2⁻²⁴, trailing from t = 999', () => {
  const s = schedulerFromConfig(ZERO_SNR_DDIM, 'dpmpp2m');
  assert.deepEqual([...s.ignoredConfigKeys].sort(), ['clip_sample', 'set_alpha_to_one']);
  s.setTimesteps(10);
  assert.deepEqual(s.timesteps, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
  assert.equal(s.alphasCumprod[999], 2 ** -24);
  assert.equal(s.initNoiseSigma, 1);
  // float32 ᾱ against float64 here: relative 1e-4 (measured 3.8e-5, at the t next to T, where √ᾱ_t − √ᾱ_T
  // cancels in float32)
  const alphaBar = zeroSnrAlphaBar();
  for (let t = 0; t < 999; t++) {
    const err = Math.abs(s.alphasCumprod[t]! / alphaBar[t]! - 1);
    assert.ok(err < 1e-4, `ᾱ_${t} = ${s.alphasCumprod[t]} vs ${alphaBar[t]}`);
  }
  assert.ok(Math.abs(s.alphasCumprod[0]! - (1 - 0.00085)) < 1e-7, 'ᾱ_1 unchanged');
});

test('DPM-Solver++ with zero terminal SNR and v_prediction: an exact-v model follows the exact ODE solution', () => {
  // The data is one point x0; a model that knows it predicts v = α ε − σ x0 with ε = (x_t − α x0)/σ, so
  // x_θ = α x_t − σ v = x0 at every step, D1 = 0, and each update is exact: x' − α' x0 = (σ'/σ)(x − α x0).
  // From x_T = z at t = 999 (α = 2⁻¹², σ = √(1 − 2⁻²⁴)) the sample lands on
  //   "sigma_min" (t = 0):  α_0 x0 + (σ_0/σ_T)(z − α_T x0);    "zero" (α = 1, σ = 0):  x0.
  const alphaBar = zeroSnrAlphaBar();
  const level = (t: number): [number, number] => [Math.sqrt(alphaBar[t]!), Math.sqrt(1 - alphaBar[t]!)];
  const x0 = Tensor.from([0.5, -1, 2, -0.25, 1.5, 0, -2, 1], [1, 2, 2, 2]);
  const z = new Generator(5).randn(x0.shape);
  const sample = (overrides: SchedulerConfigJson): Tensor => {
    const s = schedulerFromConfig(ZERO_SNR_DDIM, 'dpmpp2m', overrides);
    s.setTimesteps(10);
    let x = z.mul(s.initNoiseSigma);
    for (const t of s.timesteps) {
      const [a, b] = level(t);
      const eps = x.sub(x0.mul(a)).div(b);
      x = s.step(eps.mul(a).sub(x0.mul(b)), t, x).prevSample;
      assert.ok(x.toArray().every(Number.isFinite), `finite after t = ${t}`);
    }
    return x;
  };
  const [[a0, s0], [aT, sT]] = [level(0), level(999)];
  // float32 steps (measured ≤ 4e-7)
  assertMaxAbs(sample({}), x0.mul(a0).add(z.sub(x0.mul(aT)).mul(s0 / sT)), 1e-5, 'sigma_min');
  assertMaxAbs(sample({ final_sigmas_type: 'zero' }), x0, 1e-5, 'zero');
});

test('DPM-Solver++: unknown timesteps and unsupported options are errors', () => {
  const s = DPMSolverMultistepScheduler.fromConfig({});
  const x = Tensor.from([1, 2], [1, 2]);
  assert.throws(() => s.step(x, 999, x), /call setTimesteps\(n\) before step/);
  s.setTimesteps(4);
  assert.throws(() => s.step(x, 998, x), /timestep 998 is not one of scheduler.timesteps/);
  assert.throws(() => s.step(x, 999, x, { eta: 0.3 }), /'eta' does not apply/);
});
