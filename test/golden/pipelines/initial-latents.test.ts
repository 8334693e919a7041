// generate({ latents }) as diffusers' `prepare_latents` (0.21.4): supplied latents are multiplied by the
// scheduler's init_noise_sigma, like the seeded noise. It matters for Euler (σ_max); DDIM, DDPM, PNDM and
// DPM-Solver have init_noise_sigma 1, so latents given to them start the run unchanged.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { initialNoise, StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { type SchedulerName, schedulerFromConfig } from '../../../src/schedulers/index.js';
import { Tensor } from '../../../src/tensor/index.js';
import { randn } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';

const sd = StableDiffusion.fromPretrained(goldenDir());
const side = sd.unet.config.sampleSize;
const text = Tensor.zeros([1, 4, sd.unet.config.crossAttentionDim]);

/** The sample of the UNet's first call in a two-step unguided run from `latents`. */
function firstModelInput(latents: Tensor, scheduler: SchedulerName): Tensor {
  const unet = sd.unet;
  const forward = unet.forward;
  let seen: Tensor | undefined;
  unet.forward = (sample, ...rest) => {
    seen ??= sample;
    return forward.call(unet, sample, ...rest);
  };
  try {
    sd.generate({ promptEmbeds: text, latents, steps: 2, guidanceScale: 1, scheduler });
  } finally {
    unet.forward = forward;
  }
  return seen as Tensor;
}

test('Euler: latents x reach the model as x · σ_max / sqrt(σ_max² + 1) (diffusers multiplies by init_noise_sigma)', () => {
  const x = randn([1, 4, side, side], 5);
  const euler = sd.scheduler('euler');
  euler.setTimesteps(2);
  // linspace spacing: init_noise_sigma is σ_max, the first sigma of the schedule
  const sigmaMax = euler.initNoiseSigma;
  assert.ok(sigmaMax > 10, `σ_max ${sigmaMax}`);
  const input = firstModelInput(x, 'euler').toArray();
  const expected = x.toArray().map((v) => (v * sigmaMax) / Math.sqrt(sigmaMax * sigmaMax + 1));
  const err = Math.max(...input.map((v, i) => Math.abs(v - (expected[i] as number))));
  assert.ok(err < 1e-6, `max |input − x·σ/√(σ²+1)| = ${err}`);
});

test('DDIM, DPM-Solver (and DDPM, PNDM): init_noise_sigma 1, the latents given start the run as they are', () => {
  const x = randn([1, 4, side, side], 6);
  for (const name of ['ddim', 'dpmpp2m'] as const) {
    assert.deepEqual(firstModelInput(x, name).toArray(), x.toArray(), name);
  }
  // DDPM's steps need a noise source and this folder's config builds no PNDM (skip_prk_steps unset): their sigma
  assert.equal(sd.scheduler('ddpm').initNoiseSigma, 1);
  assert.equal(schedulerFromConfig(sd.schedulerConfig, 'pndm', { skip_prk_steps: true }).initNoiseSigma, 1);
});

test('a seed and its initialNoise as latents give the same run with Euler (noise scaled once either way)', () => {
  const opts = { promptEmbeds: text, steps: 2, guidanceScale: 1, scheduler: 'euler' } as const;
  const seeded = sd.generate({ ...opts, seed: 3 }).latents;
  const given = sd.generate({ ...opts, latents: initialNoise(sd, 3) }).latents;
  assert.deepEqual(given.toArray(), seeded.toArray());
});
