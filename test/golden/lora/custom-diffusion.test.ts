// Custom Diffusion against diffusers 0.21.4 (test/fixtures/lora, make_lora_goldens.py): its K/V file read in
// diffusers' layout, one CustomDiffusionAttnProcessor's output, and the tiny-sd-a UNet with the learned K/V on
// every cross-attention layer; saving writes the same layout back.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Attention } from '../../../src/attention/attention.js';
import type { AttentionContext, Controller } from '../../../src/attention/hooks.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import {
  customDiffusionController,
  customDiffusionFromTensors,
  readCustomDiffusion,
  writeCustomDiffusion,
} from '../../../src/methods/weight/custom-diffusion.js';
import { noGrad, type Tensor } from '../../../src/tensor/index.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { golden, goldenUNet } from '../../helpers/golden.js';
import { assertClose, sameBits } from '../../helpers/tolerance.js';

const dir = join(repoRoot, 'test', 'fixtures', 'lora');
const ref = readSafetensors(join(dir, 'goldens.safetensors')).tensors;
const want = (k: string) => ref.get(k) as Tensor;
const unet = goldenUNet();
const file = join(dir, 'custom-diffusion.safetensors');
const ctxWith = (controllers: Controller[]): AttentionContext => ({
  controllers,
  step: 0,
  numSteps: 1,
  timestep: 0,
  batch: { guidance: [], prompt: [] },
});

test('the file holds K and V for each of the 6 cross-attention layers (12 keys)', () => {
  const w = readCustomDiffusion(file, unet);
  assert.equal(w.size, 6);
  for (const l of w.values()) assert.deepEqual(Object.keys(l).sort(), ['k', 'v']);
});

test("one attention layer matches diffusers' CustomDiffusionAttnProcessor within 1e-5", () => {
  const w = readCustomDiffusion(file, unet);
  const layer = 'down_blocks.1.attentions.0.transformer_blocks.0.attn2';
  const attn = [...unet.namedModules()].find(([p]) => p === layer)?.[1] as Attention;
  const out = noGrad(() =>
    attn.forward(want('cd.attn.in'), {
      ctx: ctxWith([customDiffusionController(w)]),
      context: golden('unet.in.encoder_hidden_states'),
    }),
  );
  assertClose(out, want('cd.attn.out'), { atol: 1e-5, rtol: 0 });
});

test('the UNet with Custom Diffusion K/V matches diffusers within 1e-4', () => {
  const w = readCustomDiffusion(file, unet);
  const out = noGrad(() =>
    unet.forward(
      golden('unet.in.sample'),
      golden('unet.in.timestep').item(),
      golden('unet.in.encoder_hidden_states'),
      {
        ctx: ctxWith([customDiffusionController(w)]),
      },
    ),
  );
  assertClose(out, want('custom_diffusion'), { atol: 1e-4, rtol: 0 });
});

test('save writes the same keys and tensors back', () => {
  const w = readCustomDiffusion(file, unet);
  const path = join(mkdtempSync(join(tmpdir(), 'attnkit-cd-')), 'cd.safetensors');
  writeCustomDiffusion(path, w);
  const a = readSafetensors(file).tensors;
  const b = readSafetensors(path).tensors;
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  for (const [k, t] of a) assert.ok(sameBits(t, b.get(k) as Tensor), k);
});

test('wrong keys, layers and shapes are errors naming the key', () => {
  const t = readSafetensors(file).tensors;
  const [key, tensor] = [...t][0] as [string, Tensor];
  const one = (k: string, v: Tensor) => new Map([[k, v]]);
  assert.throws(
    () => customDiffusionFromTensors(one(key.replace('to_k_custom', 'to_z_custom'), tensor), unet, 'f'),
    /key '.*to_z_custom_diffusion.weight' is not part of diffusers' Custom Diffusion layout/,
  );
  assert.throws(
    () => customDiffusionFromTensors(one(key.replace('down_blocks.1', 'down_blocks.7'), tensor), unet, 'f'),
    /names cross-attention layer 'down_blocks.7.*', which the UNet does not have/,
  );
  assert.throws(
    () => customDiffusionFromTensors(one(key, tensor.transpose(0, 1)), unet, 'f'),
    /has shape \[32, 64\], the layer needs \[64, 32\]/,
  );
  assert.throws(() => readCustomDiffusion(join(dir, 'x.bin'), unet), /\.safetensors only \(pickled/);
});
