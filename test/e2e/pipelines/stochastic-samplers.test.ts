// Stochastic samplers in generate: DDPM and DDIM with η > 0 add noise at each step. The noise comes from a
// generator seeded by `seed` that first draws the initial latents (one stream, as diffusers' one torch
// generator serves prepare_latents and the scheduler's variance noise), so a seed fixes the whole run.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { Generator } from '../../../src/tensor/random.js';
import { repoRoot } from '../../helpers/fixtures.js';

const sd = StableDiffusion.fromPretrained(join(repoRoot, 'models', 'shapes-v1'));
const prompt = 'a red circle above a blue square';
const maxDiff = (a: Float32Array, b: Float32Array) =>
  a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

for (const [name, opts] of [
  ['ddpm', { scheduler: 'ddpm' as const }],
  ['ddim, η = 1', { scheduler: 'ddim' as const, eta: 1 }],
] as const) {
  test(`generate with ${name}: runs, a seed fixes the run, another seed changes it`, () => {
    const run = (seed: number) =>
      sd.generate({ prompt, steps: 4, seed, ...opts }).images.data as Float32Array;
    const a = run(3);
    assert.ok(a.every(Number.isFinite));
    assert.equal(maxDiff(a, run(3)), 0);
    assert.ok(maxDiff(a, run(4)) > 0.05, 'another seed gives another image');
  });
}

test('generate with ddim, η = 1: the step noise is the seed stream after the initial latents', () => {
  // the same run by hand: latents from the seed's generator, then each step's noise from the same generator
  const steps = 3;
  const ours = sd.generate({ prompt, steps, seed: 9, eta: 1, guidanceScale: 1 }).latents;
  const gen = new Generator(9);
  const scheduler = sd.scheduler('ddim');
  scheduler.setTimesteps(steps);
  const c = sd.unet.config;
  let z = gen.randn([1, c.inChannels, c.sampleSize, c.sampleSize]).mul(scheduler.initNoiseSigma);
  const text = sd.encodePrompt([prompt]);
  for (const t of scheduler.timesteps) {
    const out = sd.unet.forward(scheduler.scaleModelInput(z, t), t, text);
    z = scheduler.step(out, t, z, { eta: 1, generator: gen }).prevSample;
  }
  assert.ok(maxDiff(ours.data as Float32Array, z.data as Float32Array) < 1e-5);
});
