// PNDM (PLMS) beyond the goldens: the warm-up schedule, order checks, and a constant ε, for which every
// multistep combination is that ε and PLMS reduces to DDIM's deterministic step.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DDIMScheduler, PNDMScheduler, schedulerFromConfig } from '../../../src/schedulers/index.js';
import { Tensor } from '../../../src/tensor/index.js';
import { Generator } from '../../../src/tensor/random.js';
import { assertMaxAbs } from './helpers.js';

const SD = {
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  beta_end: 0.012,
  steps_offset: 1,
  skip_prk_steps: true,
};

test('PNDM timesteps repeat the second one (the warm-up runs the first interval twice)', () => {
  const s = PNDMScheduler.fromConfig(SD);
  s.setTimesteps(5);
  assert.deepEqual(s.timesteps, [801, 601, 601, 401, 201, 1]);
  const one = PNDMScheduler.fromConfig(SD);
  one.setTimesteps(1);
  assert.deepEqual(one.timesteps, [1]);
});

test('PLMS with a constant ε equals DDIM (η = 0) at every interval end', () => {
  const pndm = PNDMScheduler.fromConfig(SD);
  const ddim = DDIMScheduler.fromConfig({ ...SD, clip_sample: false, set_alpha_to_one: false });
  pndm.setTimesteps(6);
  ddim.setTimesteps(6);
  const gen = new Generator(8);
  const start = gen.randn([1, 4, 4, 4]);
  const eps = gen.randn(start.shape);
  let x = start;
  const pndmSamples: Tensor[] = [];
  for (const t of pndm.timesteps) {
    x = pndm.step(eps, t, x).prevSample;
    pndmSamples.push(x);
  }
  let y = start;
  ddim.timesteps.forEach((t, i) => {
    y = ddim.step(eps, t, y).prevSample;
    // PNDM's step i + 1 ends where DDIM's step i does (its first interval takes two calls)
    assertMaxAbs(pndmSamples[i + 1]!, y, 1e-5, `interval ${i}`);
  });
});

test('PNDM: out-of-order steps, the Runge–Kutta warm-up and sample prediction are errors', () => {
  const s = PNDMScheduler.fromConfig(SD);
  s.setTimesteps(4);
  const x = Tensor.from([1, 2], [1, 2]);
  assert.throws(() => s.step(x, 1, x), /step 0 expects timestep 751, got 1/);
  assert.throws(() => schedulerFromConfig({}, 'pndm'), /"skip_prk_steps" = false \(diffusers’ default\)/);
  assert.throws(() => schedulerFromConfig({ skip_prk_steps: false }, 'pndm'), /skip_prk_steps/);
  assert.throws(
    () => PNDMScheduler.fromConfig({ ...SD, prediction_type: 'sample' }),
    /"prediction_type" = "sample" is not supported/,
  );
});
