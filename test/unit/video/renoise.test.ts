// Text2Video-Zero's re-noising from t0 back to t1 (the reference's DDPM_forward, then denoising again from t1):
// the forward step on hand-worked numbers, and on the tiny-sd-a model: frame 0 keeps its own path (its x_t1 is
// restored), the moved frames change, t1 at the warp's own level is no rewind, and a t1 below t0 is an error.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { forwardNoise } from '../../../src/methods/feature/cross-frame-attention.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { generateVideo } from '../../../src/pipelines/video.js';
import { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

test('forwardNoise: x_t1 = √(ᾱ1/ᾱ0) x_t0 + √(1 − ᾱ1/ᾱ0) ε, by hand', () => {
  const x = new Tensor(Float32Array.from([2, -4]), [2, 1, 1, 1]);
  const eps = new Tensor(Float32Array.from([1, 1]), [2, 1, 1, 1]);
  // ᾱ1/ᾱ0 = 0.16/0.64 = 0.25: 0.5·x + √0.75·ε
  const y = forwardNoise(x, 0.64, 0.16, eps);
  assertClose(y, new Tensor(Float32Array.from([1 + Math.sqrt(0.75), -2 + Math.sqrt(0.75)]), [2, 1, 1, 1]), {
    atol: 1e-6,
    rtol: 0,
  });
  assert.throws(() => forwardNoise(x, 0.16, 0.64, eps), /ᾱ must not grow/);
});

const row = (x: Tensor, i: number) => x.split(x.shape[0] as number, 0)[i] as Tensor;

test('video pipeline (tiny-sd-a): re-noising to t1 keeps frame 0 and changes the moved frames', () => {
  const sd = StableDiffusion.fromPretrained(goldenDir());
  const run = (opts: object) =>
    generateVideo(sd, {
      prompt: 'a cat',
      frames: 3,
      steps: 6,
      seed: 4,
      direction: 'right',
      strength: 0.25,
      t0: 500,
      ...opts,
    }).frames;
  const plain = run({});
  const renoised = run({ t1: 700 });
  assertClose(row(renoised, 0), row(plain, 0), { atol: 1e-5, rtol: 0 });
  assert.ok((row(renoised, 2).sub(row(plain, 2)).abs().max().data[0] as number) > 1e-3);
  // t1 at the level the warp lands on: nothing to rewind
  assertClose(run({ t1: 500 }), plain, { atol: 1e-5, rtol: 0 });
  assert.throws(() => run({ t1: 300 }), /t1 must be ≥ t0/);
  assert.throws(() => run({ t1: 700, method: 'independent' }), /t1: only with/);
});
