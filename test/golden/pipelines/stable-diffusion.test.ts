// The guided generation of the golden folder end to end, the folder checks, and the controller plumbing.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Controller } from '../../../src/attention/index.js';
import { rescaleGuidance, StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { golden } from '../../helpers/golden.js';
import { assertClose } from '../../helpers/tolerance.js';

const sd = StableDiffusion.fromPretrained(goldenDir());

test('6-step guided DDIM generation matches diffusers: latents and image (1e-3)', () => {
  const { latents, images } = sd.generate({
    promptEmbeds: golden('pipe.in.cond'),
    negativePromptEmbeds: golden('pipe.in.uncond'),
    latents: golden('pipe.in.latents'),
    guidanceScale: golden('pipe.in.guidance_scale').item(),
    steps: 6,
    scheduler: 'ddim',
  });
  assertClose(latents, golden('pipe.out.latents'), { atol: 1e-3, rtol: 0 });
  assertClose(images, golden('pipe.out.image'), { atol: 1e-3, rtol: 0 });
});

test('controllers see every step with the guided batch layout, and afterStep may replace latents', () => {
  const seen: string[] = [];
  const spy: Controller = {
    name: 'spy',
    appliesTo: (c) => c.path === 'mid_block.attentions.0.transformer_blocks.0.attn2',
    output: (c, o) => {
      seen.push(`${c.step}/${c.numSteps}@${c.timestep}:${c.batch.guidance.join(',')}`);
      return o;
    },
    afterStep: (s) => (s.step === s.numSteps - 1 ? s.latents.mul(0) : undefined),
  };
  const { latents } = sd.generate({ prompt: 'a red circle', steps: 3, seed: 1, controllers: [spy] });
  assert.deepEqual(seen, ['0/3@667:uncond,cond', '1/3@334:uncond,cond', '2/3@1:uncond,cond']);
  assert.ok(
    latents.data.every((v) => v === 0),
    'afterStep latents were not used',
  );
});

test('the same seed gives the same image; another seed a different one', () => {
  const a = sd.generate({ prompt: 'a blue star', steps: 2, seed: 7 }).latents;
  const b = sd.generate({ prompt: 'a blue star', steps: 2, seed: 7 }).latents;
  const c = sd.generate({ prompt: 'a blue star', steps: 2, seed: 8 }).latents;
  assert.deepEqual(a.data, b.data);
  assert.notDeepEqual(a.data, c.data);
});

test('a folder without model_index.json, or with an unknown pipeline class, gets a clear message', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-sd-'));
  try {
    assert.throws(
      () => StableDiffusion.fromPretrained(dir),
      /has no model_index\.json: attnkit loads diffusers/,
    );
    cpSync(goldenDir(), dir, { recursive: true });
    const index = JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8'));
    writeFileSync(
      join(dir, 'model_index.json'),
      JSON.stringify({ ...index, _class_name: 'KandinskyPipeline' }),
    );
    assert.throws(
      () => StableDiffusion.fromPretrained(dir),
      /"KandinskyPipeline" is not a pipeline attnkit can load/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad generation arguments are rejected with what to do', () => {
  assert.throws(() => sd.generate({ prompt: 'x', steps: 0 }), /steps must be a positive integer/);
  assert.throws(() => sd.generate({ prompt: 'x', width: 33 }), /multiples of 2/);
  assert.throws(() => sd.generate({}), /give a prompt/);
  assert.throws(
    () => sd.generate({ prompt: 'x', guidanceRescale: 1.5 }),
    /guidanceRescale must be in \[0, 1\]/,
  );
  assert.throws(() => sd.generate({ prompt: 'x', eta: Number.NaN }), /eta must be a number ≥ 0/);
  assert.throws(() => sd.generate({ prompt: 'x', eta: -1 }), /eta must be a number ≥ 0/);
});

test('guidance rescaling, worked by hand: each row scaled to the conditional spread, then mixed by φ', () => {
  // row 0: cond ±1 (std 1), guided ±3 + 2 (std 3) → rescaled ±1 + 2/3 → 0.7·that + 0.3·guided
  // row 1: cond std 2, guided std 2 → unchanged
  const cond = Tensor.from([1, -1, 1, -1, 2, -2, 2, -2], [2, 1, 2, 2]);
  const guided = Tensor.from([5, -1, 5, -1, 0, 4, 0, 4], [2, 1, 2, 2]);
  const got = [...(rescaleGuidance(guided, cond, 0.7).data as Float32Array)];
  const row0 = [5, -1, 5, -1].map((g) => 0.7 * (g / 3) + 0.3 * g);
  const want = [...row0, 0, 4, 0, 4];
  for (const [i, w] of want.entries())
    assert.ok(Math.abs((got[i] as number) - w) < 1e-5, `${i}: ${got[i]} ≠ ${w}`);
  // φ = 0: the guided prediction as it was
  assert.deepEqual(rescaleGuidance(guided, cond, 0).data, guided.data);
});
