// DPM-Solver++ beyond the goldens: first order is DDIM, the final step to σ = 0 gives x_θ, Karras σ,
// lambda_min_clipped, and step order errors.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DDIMScheduler, DPMSolverMultistepScheduler } from '../../src/schedulers/index.js';
import { Tensor } from '../../src/tensor/index.js';
import { Generator } from '../../src/tensor/random.js';
import { assertMaxAbs, standInModel } from './helpers.js';

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

test('DPM-Solver++: unknown timesteps and unsupported options are errors', () => {
  const s = DPMSolverMultistepScheduler.fromConfig({});
  const x = Tensor.from([1, 2], [1, 2]);
  assert.throws(() => s.step(x, 999, x), /call setTimesteps\(n\) before step/);
  s.setTimesteps(4);
  assert.throws(() => s.step(x, 998, x), /timestep 998 is not one of scheduler.timesteps/);
  assert.throws(() => s.step(x, 999, x, { eta: 0.3 }), /'eta' does not apply/);
});
