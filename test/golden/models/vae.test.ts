// AutoencoderKL against diffusers' goldens (tiny-sd-a).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { golden, goldenVAE } from '../../helpers/golden.js';
import { assertClose } from '../../helpers/tolerance.js';

const vae = goldenVAE();

test('VAE encoder gives the golden mean and log-variance within 1e-4', () => {
  const d = noGrad(() => vae.encode(golden('vae.in.image')));
  assertClose(d.mean, golden('vae.out.mean'), { atol: 1e-4, rtol: 0 });
  assertClose(d.logvar, golden('vae.out.logvar'), { atol: 1e-4, rtol: 0 });
});

test('VAE decoder matches the golden within 1e-4', () => {
  const out = noGrad(() => vae.decode(golden('vae.decode.in')));
  assertClose(out, golden('vae.decode.out'), { atol: 1e-4, rtol: 0 });
});

test('VAE rejects images whose size is not a multiple of its downscale factor', () => {
  assert.equal(vae.scaleFactor, 2);
  assert.throws(() => vae.encode(Tensor.zeros([1, 3, 31, 32])), /must be a multiple of 2/);
  assert.throws(() => vae.decode(Tensor.zeros([1, 3, 16, 16])), /expected latents \(B, 4, h, w\)/);
});
