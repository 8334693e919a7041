// DDIM: timestep spacings, η (against DDPM: Song et al. 2020 show η = 1 is DDPM's ancestral sampler),
// hand-worked steps, and DDIM inversion.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DDIMScheduler, DDPMScheduler, loadScheduler } from '../../../src/schedulers/index.js';
import { Tensor } from '../../../src/tensor/index.js';
import { Generator } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertMaxAbs, maxAbsError, standInModel } from './helpers.js';

test('DDIM from the golden folder config: leading spacing with steps_offset 1', () => {
  const s = loadScheduler(goldenDir());
  assert.ok(s instanceof DDIMScheduler);
  assert.deepEqual(s.ignoredConfigKeys, []);
  s.setTimesteps(8);
  assert.deepEqual(s.timesteps, [876, 751, 626, 501, 376, 251, 126, 1]);
});

test('DDIM timestep spacings (Lin et al. 2023, Table 2), T = 1000, n = 8', () => {
  const spaced = (timestep_spacing: string): readonly number[] => {
    const s = DDIMScheduler.fromConfig({ timestep_spacing });
    s.setTimesteps(8);
    return s.timesteps;
  };
  assert.deepEqual(spaced('leading'), [875, 750, 625, 500, 375, 250, 125, 0]);
  assert.deepEqual(spaced('trailing'), [999, 874, 749, 624, 499, 374, 249, 124]);
  // round(999 k/7): 0, 142.7, 285.4, 428.1, 570.9, 713.6, 856.3, 999
  assert.deepEqual(spaced('linspace'), [999, 856, 714, 571, 428, 285, 143, 0]);
});

test('DDIM hand-worked: β = (0.1, 0.5), η = 1, set_alpha_to_one', () => {
  const s = DDIMScheduler.fromConfig({
    num_train_timesteps: 2,
    beta_start: 0.1,
    beta_end: 0.5,
    clip_sample: false,
  });
  s.setTimesteps(2);
  const x = [1, -2];
  const eps = [0.5, 0.25];
  const z = [1, -1];
  // t = 1 → 0: α_t = 0.45, α_{t−1} = 0.9; σ = √(0.1/0.55) √(1 − 0.45/0.9) = √(1/11) (eq. 16)
  const sigma = Math.sqrt(1 / 11);
  const x0 = x.map((v, i) => (v - Math.sqrt(0.55) * eps[i]!) / Math.sqrt(0.45));
  const expected = x0.map(
    (v, i) => Math.sqrt(0.9) * v + Math.sqrt(0.1 - sigma ** 2) * eps[i]! + sigma * z[i]!,
  );
  const out = s.step(Tensor.from(eps, [1, 2]), 1, Tensor.from(x, [1, 2]), {
    eta: 1,
    noise: Tensor.from(z, [1, 2]),
  });
  assertMaxAbs(out.prevSample, Tensor.from(expected, [1, 2]), 1e-6, 'eta=1');
  // t = 0 → final ᾱ = 1: x_{−1} = x̂_0
  const last = s.step(Tensor.from(eps, [1, 2]), 0, Tensor.from(x, [1, 2]));
  const x0Last = x.map((v, i) => (v - Math.sqrt(0.1) * eps[i]!) / Math.sqrt(0.9));
  assertMaxAbs(last.prevSample, Tensor.from(x0Last, [1, 2]), 1e-6, 't=0');
  assert.throws(
    () => s.step(Tensor.from(eps, [1, 2]), 1, Tensor.from(x, [1, 2]), { eta: 1 }),
    /pass \{ noise \}/,
  );
});

test('DDIM with η = 1 is DDPM (fixed_small) given the same noise', () => {
  const config = { clip_sample: false, set_alpha_to_one: true };
  const ddim = DDIMScheduler.fromConfig(config);
  const ddpm = DDPMScheduler.fromConfig(config);
  ddim.setTimesteps(10);
  ddpm.setTimesteps(10);
  assert.deepEqual(ddim.timesteps, ddpm.timesteps);
  const gen = new Generator(3);
  let x = gen.randn([1, 4, 4, 4]);
  ddim.timesteps.forEach((t, i) => {
    const noise = gen.randn(x.shape);
    const a = ddim.step(standInModel(x, i), t, x, { eta: 1, noise }).prevSample;
    const b = ddpm.step(standInModel(x, i), t, x, { noise }).prevSample;
    // same math, different float32 roundings: within a few ulps of the samples (which grow to ~150 here)
    const scale = Math.max(...a.toArray().map(Math.abs));
    assertMaxAbs(a, b, 1e-6 * (1 + scale), `step ${i}`);
    x = a;
  });
});

test('DDIM inversion then DDIM sampling (η = 0) returns the start, with ε independent of x', () => {
  const s = loadScheduler(goldenDir()) as DDIMScheduler; // SD config: scaled_linear, steps_offset 1, ᾱ_final = ᾱ_0
  s.setTimesteps(10);
  const gen = new Generator(11);
  const start = gen.randn([2, 4, 8, 8]);
  const base = gen.randn(start.shape);
  const epsAt = (t: number): Tensor =>
    base
      .add(t / 50)
      .sin()
      .mul(0.8);

  let x = start;
  for (const t of s.inversionTimesteps) x = s.invertStep(epsAt(t), t, x).nextSample;
  assert.ok(maxAbsError(x, start) > 0.5, 'inversion should move the sample');
  for (const t of s.timesteps) x = s.step(epsAt(t), t, x).prevSample;
  const err = assertMaxAbs(x, start, 1e-4, 'round trip');
  assert.ok(err < 1e-4);
});

test('DDIM: invertStep is the inverse of step for one timestep', () => {
  const s = loadScheduler(goldenDir()) as DDIMScheduler;
  s.setTimesteps(25);
  const gen = new Generator(5);
  const x = gen.randn([1, 4, 8, 8]);
  const eps = gen.randn(x.shape);
  const t = s.timesteps[3]!;
  const up = s.invertStep(eps, t, x).nextSample;
  assertMaxAbs(s.step(eps, t, up).prevSample, x, 1e-5, 'one step');
});
