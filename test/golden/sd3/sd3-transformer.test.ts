// Golden parity: SD3Transformer2DModel against diffusers 0.30.0 on the tiny random model of
// test/fixtures/tiny-sd3 (make_goldens.py: every parameter nudged off its init, a 4 × 3-patch latent cropped
// off-centre from the 6 × 6 position table, two rows with their own timesteps): the output, and every joint
// attention map read by a map hook, each within 1e-4.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AttentionCall } from '../../../src/attention/call.js';
import { plainBatch } from '../../../src/attention/call.js';
import type { AttentionContext, Controller } from '../../../src/attention/hooks.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { readConfig } from '../../../src/models/config.js';
import { sinCosPositions } from '../../../src/models/sd3-blocks.js';
import { SD3Transformer2DModel } from '../../../src/models/sd3-transformer.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { assertMaxAbs } from '../../unit/schedulers/helpers.js';

const dir = join(import.meta.dirname, '../../fixtures/tiny-sd3');
const goldens = readSafetensors(join(dir, 'goldens.safetensors'));
const golden = (key: string): Tensor => {
  const t = goldens.tensors.get(key);
  if (!t) throw new Error(`golden tensor '${key}' not found`);
  return t;
};
const TOL = 1e-4;

function run(model: SD3Transformer2DModel, controllers: Controller[] = []): Tensor {
  const ctx: AttentionContext = { controllers, step: 0, numSteps: 1, timestep: 0, batch: plainBatch(2) };
  return model.forward(
    golden('in.sample'),
    golden('in.timestep').toArray(),
    golden('in.context'),
    golden('in.pooled'),
    { ctx },
  );
}

test('the goldens come from diffusers 0.30.0', () => {
  assert.equal(goldens.metadata?.['diffusers'], '0.30.0');
});

test('fromPretrained loads the diffusers folder strictly', () => {
  const model = SD3Transformer2DModel.fromPretrained(dir, { subfolder: 'transformer' });
  assert.equal(model.transformer_blocks.length, 2);
  assert.equal(model.transformer_blocks.at(1).contextPreOnly, true);
  assert.equal(model.transformer_blocks.at(1).attn.to_add_out, undefined);
});

test('the 2-D sin-cos position table equals the one diffusers saved (a buffer, never nudged)', () => {
  const saved = readSafetensors(join(dir, 'transformer/diffusion_pytorch_model.safetensors')).tensors.get(
    'pos_embed.pos_embed',
  ) as Tensor;
  // sample_size 8 / patch 2: base size 4, table 6 × 6 × 16
  assertMaxAbs(sinCosPositions(16, 6, 4).reshape([1, 36, 16]), saved, 1e-6, 'pos_embed');
  // a model built from the config (not loaded) has that table as its parameter
  const fresh = SD3Transformer2DModel.fromConfig(readConfig(join(dir, 'transformer')));
  assertMaxAbs(fresh.pos_embed.pos_embed.value, saved, 1e-6, 'fresh pos_embed');
});

test(`output within ${TOL} of diffusers`, (t) => {
  const model = SD3Transformer2DModel.fromPretrained(dir, { subfolder: 'transformer' });
  const err = assertMaxAbs(run(model), golden('out'), TOL, 'output');
  t.diagnostic(
    `max abs error ${err.toExponential(2)} (max |out| ${golden('out').abs().max().item().toFixed(2)})`,
  );
});

test(`every joint attention map within ${TOL}; the calls carry kind, size and token ranges`, (t) => {
  const model = SD3Transformer2DModel.fromPretrained(dir, { subfolder: 'transformer' });
  const calls: AttentionCall[] = [];
  const maps = new Map<string, Tensor>();
  const recorder: Controller = {
    name: 'recorder',
    map(call, p) {
      calls.push(call);
      maps.set(call.path, p);
      return p;
    },
  };
  const out = run(model, [recorder]);
  assertMaxAbs(out, golden('out'), TOL, 'output with maps formed');
  assert.deepEqual(
    calls.map((c) => [c.path, c.kind, c.place, c.index, c.size, c.queryTokens, c.keyTokens, c.joint]),
    [0, 1].map((i) => [
      `transformer_blocks.${i}.attn`,
      'joint',
      'mid',
      i,
      [4, 3],
      17,
      17,
      { image: [0, 12], text: [12, 17] },
    ]),
  );
  let worst = 0;
  for (const path of ['transformer_blocks.0.attn', 'transformer_blocks.1.attn']) {
    worst = Math.max(worst, assertMaxAbs(maps.get(path) as Tensor, golden(`map.${path}`), TOL, path));
  }
  t.diagnostic(`maps: max abs error ${worst.toExponential(2)}`);
});

test('bad input is refused naming what is wrong', () => {
  const model = SD3Transformer2DModel.fromPretrained(dir, { subfolder: 'transformer' });
  const [s, c, p] = [golden('in.sample'), golden('in.context'), golden('in.pooled')];
  assert.throws(() => model.forward(s.slice(2, 0, 7), 1, c, p), /multiple of the patch size 2/);
  assert.throws(() => model.forward(s, 1, c.slice(2, 0, 4), p), /context must be \(2, tokens, 12\)/);
  assert.throws(() => model.forward(s, [1, 2, 3], c, p), /3 timesteps for a batch of 2/);
  assert.throws(
    () => model.forward(s.expand([2, 4, 8, 6]).reshape([2, 4, 16, 3]).slice(3, 0, 2), 1, c, p),
    /more than pos_embed_max_size/,
  );
  assert.throws(
    () => SD3Transformer2DModel.fromConfig({ pos_embed_max_size: 100_000 }),
    /pos_embed_max_size/,
  );
  assert.throws(
    () => SD3Transformer2DModel.fromConfig({ caption_projection_dim: 100 }),
    /caption_projection_dim/,
  );
});
