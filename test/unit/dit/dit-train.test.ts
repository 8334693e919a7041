// The DiT stage (src/train/dit.ts): SD3's σ sampling and shift against hand-worked values, adaLN-Zero's
// identity start (a fresh MM-DiT predicts exactly zero, so the first loss is E‖ε − x₀‖²), and a short
// flow-matching run on one repeated batch that must lower the loss.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { Generator } from '../../../src/tensor/random.js';
import {
  buildDiT,
  DIT_DEFAULTS,
  type DiTConfig,
  ditTransformerConfigJson,
  sampleSigmas,
  trainDiT,
} from '../../../src/train/dit.js';

const sd = StableDiffusion.fromPretrained();

test('σ sampling: uniform and logit-normal draws moved by the shift sσ / (1 + (s − 1)σ)', () => {
  const u = Array.from(new Generator(7).rand([5]).data as Float32Array);
  const n = Array.from(new Generator(7).randn([5]).data as Float32Array);
  const uni = sampleSigmas(new Generator(7), 5, { shift: 3, timesteps: 'uniform' });
  const logit = sampleSigmas(new Generator(7), 5, { shift: 1, timesteps: 'logit-normal' });
  for (let i = 0; i < 5; i++) {
    const [x, z] = [u[i] as number, n[i] as number];
    assert.ok(Math.abs((uni[i] as number) - (3 * x) / (1 + 2 * x)) < 1e-12); // σ' = 3σ / (1 + 2σ)
    assert.ok(Math.abs((logit[i] as number) - 1 / (1 + Math.exp(-z))) < 1e-12); // σ = sigmoid(n)
  }
  assert.ok(
    sampleSigmas(new Generator(7), 1000, { shift: 3, timesteps: 'uniform' }).every((s) => s > 0 && s < 1),
  );
});

test('adaLN-Zero: a fresh DiT predicts zero velocity; the text states are padded to joint_attention_dim', () => {
  const c: DiTConfig = { ...DIT_DEFAULTS, layers: 1, heads: 2, headDim: 8 };
  const json = { ...ditTransformerConfigJson(c, sd, 16), joint_attention_dim: 96 };
  const model = buildDiT(json, 0);
  const gen = new Generator(3);
  const v = model.forward(gen.randn([2, 4, 16, 16]), [10, 900], gen.randn([2, 32, 96]), gen.randn([2, 64]));
  assert.deepEqual(v.shape, [2, 4, 16, 16]);
  assert.equal(v.abs().max().item(), 0);
  // the position table is fixed, every other parameter learns
  assert.equal(model.pos_embed.pos_embed.value.requiresGrad, false);
  assert.ok(model.proj_out.weight.value.requiresGrad);
});

test('flow matching on one repeated batch: the loss starts at E‖ε − x₀‖² ≈ 2 and falls', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dit-'));
  try {
    const images = sd.decodeLatents(new Generator(1).randn([2, 4, 16, 16]).mul(0.5));
    const captions = ['a red circle', 'a blue square at the top'];
    const c: DiTConfig = { ...DIT_DEFAULTS, layers: 1, heads: 2, headDim: 16, captionDropout: 0 };
    const { history } = trainDiT(sd, () => ({ images, captions }), 16, c, {
      out: dir,
      steps: 40,
      batchSize: 2,
      lr: 3e-3,
      warmup: 1,
      seed: 0,
      resume: false,
      checkpointMinutes: 100,
      quiet: true,
    });
    const loss = history.map((h) => h.loss as number);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(loss[0]! > 0.5 && loss[0]! < 6, `first loss ${loss[0]}`);
    assert.ok(mean(loss.slice(-10)) < 0.8 * mean(loss.slice(0, 10)), `loss ${loss.map((l) => l.toFixed(2))}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--init-from: a new run starts from the given transformer weights (lr 0 keeps them)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dit-'));
  try {
    const c: DiTConfig = { ...DIT_DEFAULTS, layers: 1, heads: 2, headDim: 8 };
    const source = buildDiT(ditTransformerConfigJson(c, sd, 16), 0);
    source.proj_out.weight.value = new Generator(4).randn(source.proj_out.weight.value.shape);
    const init = new Map([...source.namedParameters()].map(([k, p]) => [k, p.value]));
    const images = sd.decodeLatents(new Generator(1).randn([1, 4, 16, 16]));
    const { model } = trainDiT(sd, () => ({ images, captions: ['a red circle'] }), 16, c, {
      out: dir,
      steps: 1,
      batchSize: 1,
      lr: 0,
      warmup: 1,
      seed: 3,
      resume: false,
      checkpointMinutes: 100,
      quiet: true,
      initFrom: init,
    });
    assert.deepEqual(model.proj_out.weight.value.toArray(), source.proj_out.weight.value.toArray());
    assert.ok(model.proj_out.weight.value.abs().max().item() > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
