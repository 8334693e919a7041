// DDPM against hand-worked numbers (Ho et al. 2020, eqs. 4, 7, 15) on a two-step chain:
// β = (0.1, 0.5) ⇒ ᾱ = (0.9, 0.45). Expected values are written out from the paper's formulas in float64.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DDPMScheduler, schedulerFromConfig } from '../../../src/schedulers/index.js';
import { Tensor } from '../../../src/tensor/index.js';
import { Generator } from '../../../src/tensor/random.js';
import { assertMaxAbs } from './helpers.js';

const TINY = {
  num_train_timesteps: 2,
  beta_start: 0.1,
  beta_end: 0.5,
  beta_schedule: 'linear',
  clip_sample: false,
};
const x = [1, -2, 0.5];
const eps = [0.5, 0.25, -1];
const noise = [1, -1, 2];
const T = (v: number[]): Tensor => Tensor.from(v, [1, 3]);

function tiny(extra: Record<string, unknown> = {}): DDPMScheduler {
  const s = DDPMScheduler.fromConfig({ ...TINY, ...extra });
  s.setTimesteps(2);
  return s;
}

test('DDPM: β, ᾱ and timesteps of the two-step chain', () => {
  const s = tiny();
  assert.deepEqual(s.timesteps, [1, 0]);
  assert.ok(Math.abs(s.alphasCumprod[0]! - 0.9) < 1e-7 && Math.abs(s.alphasCumprod[1]! - 0.45) < 1e-7);
});

test('DDPM step at t = 1, each variance type (eq. 7 posterior)', () => {
  // α_1 = ᾱ_1/ᾱ_0 = 0.5, β_1 = 0.5; x̂_0 = (x − √0.55 ε)/√0.45 (eq. 15)
  const x0 = x.map((v, i) => (v - Math.sqrt(0.55) * eps[i]!) / Math.sqrt(0.45));
  // μ̃ = √0.9 · 0.5/0.55 · x̂_0 + √0.5 · 0.1/0.55 · x
  const mean = x0.map(
    (v, i) => ((Math.sqrt(0.9) * 0.5) / 0.55) * v + ((Math.sqrt(0.5) * 0.1) / 0.55) * x[i]!,
  );
  const betaTilde = (0.1 / 0.55) * 0.5; // = 1/11
  const cases: [string, number][] = [
    ['fixed_small', Math.sqrt(betaTilde)],
    ['fixed_small_log', Math.sqrt(betaTilde)],
    ['fixed_large', Math.sqrt(0.5)],
  ];
  for (const [variance_type, std] of cases) {
    const out = tiny({ variance_type }).step(T(eps), 1, T(x), { noise: T(noise) });
    assertMaxAbs(out.prevSample, T(mean.map((m, i) => m + std * noise[i]!)), 1e-6, variance_type);
    assertMaxAbs(out.predOriginalSample!, T(x0), 1e-6, `${variance_type} x0`);
  }
});

test('DDPM last step (t = 0) returns x̂_0 and adds no noise', () => {
  const x0 = x.map((v, i) => (v - Math.sqrt(0.1) * eps[i]!) / Math.sqrt(0.9));
  const out = tiny().step(T(eps), 0, T(x)); // no noise needed
  assertMaxAbs(out.prevSample, T(x0), 1e-6, 't=0');
});

test('DDPM v_prediction and clip_sample', () => {
  // v: x̂_0 = √ᾱ x − √(1−ᾱ) v, then clipped to [−1.5, 1.5]
  const v = eps;
  const x0 = x.map((xi, i) => Math.min(1.5, Math.max(-1.5, Math.sqrt(0.45) * xi - Math.sqrt(0.55) * v[i]!)));
  const out = tiny({ prediction_type: 'v_prediction', clip_sample: true, clip_sample_range: 1.5 }).step(
    T(v),
    1,
    T(x),
    {
      noise: T(noise),
    },
  );
  assertMaxAbs(out.predOriginalSample!, T(x0), 1e-6, 'x0');
  const mean = x0.map(
    (m, i) => ((Math.sqrt(0.9) * 0.5) / 0.55) * m + ((Math.sqrt(0.5) * 0.1) / 0.55) * x[i]!,
  );
  assertMaxAbs(out.prevSample, T(mean.map((m, i) => m + Math.sqrt(1 / 11) * noise[i]!)), 1e-6, 'prev');
});

test('DDPM noise from a generator equals the same noise passed in; missing noise is an error', () => {
  const s = tiny();
  const a = s.step(T(eps), 1, T(x), { generator: new Generator(7) }).prevSample;
  const b = s.step(T(eps), 1, T(x), { noise: new Generator(7).randn([1, 3]) }).prevSample;
  assert.deepEqual(a.toArray(), b.toArray());
  assert.throws(() => s.step(T(eps), 1, T(x)), /pass \{ noise \} or \{ generator \}/);
  assert.throws(() => s.step(T(eps), 1, T(x), { noise: T(noise), eta: 0.5 }), /'eta' does not apply/);
});

test('addNoise (eq. 4): one timestep, or one per batch row', () => {
  const s = tiny();
  const x0 = Tensor.from([1, 2, -1, 0.5], [2, 2]);
  const n = Tensor.from([0.5, -0.5, 1, 2], [2, 2]);
  const one = s.addNoise(x0, n, 1);
  const expectOne = [1, 2, -1, 0.5].map(
    (v, i) => Math.sqrt(0.45) * v + Math.sqrt(0.55) * [0.5, -0.5, 1, 2][i]!,
  );
  assertMaxAbs(one, Tensor.from(expectOne, [2, 2]), 1e-6, 't=1');
  const rows = s.addNoise(x0, n, [1, 0]);
  const expectRows = [
    Math.sqrt(0.45) * 1 + Math.sqrt(0.55) * 0.5,
    Math.sqrt(0.45) * 2 - Math.sqrt(0.55) * 0.5,
    Math.sqrt(0.9) * -1 + Math.sqrt(0.1) * 1,
    Math.sqrt(0.9) * 0.5 + Math.sqrt(0.1) * 2,
  ];
  assertMaxAbs(rows, Tensor.from(expectRows, [2, 2]), 1e-6, 't=[1,0]');
  assert.throws(() => s.addNoise(x0, n, [1, 0, 1]), /3 timesteps for a batch of 2/);
  assert.throws(() => s.addNoise(x0, n, 2), /timestep 2 is not an integer in \[0, 2\)/);
});

test('DDPM on the Stable Diffusion config: leading timesteps with steps_offset', () => {
  const s = schedulerFromConfig(
    { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012, steps_offset: 1 },
    'ddpm',
  );
  s.setTimesteps(4);
  assert.deepEqual(s.timesteps, [751, 501, 251, 1]);
});
