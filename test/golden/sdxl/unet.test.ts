// The SDXL UNet (addition_embed_type "text_time", per-block transformer depths) against diffusers' goldens
// (test/fixtures/tiny-sdxl, made by its make_goldens.py): the output, every attention map, the config checks.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { type AttentionContext, type Controller, plainBatch } from '../../../src/attention/index.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { UNet2DConditionModel } from '../../../src/models/unet2d-condition.js';
import { parseUNetConfig } from '../../../src/models/unet2d-config.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { assertClose } from '../../helpers/tolerance.js';
import { maxAbsDiff, sdxlDir, sdxlGolden, sdxlGoldenKeys } from './helpers.js';

const dir = join(sdxlDir(), 'unet');
const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const unet = UNet2DConditionModel.fromConfig(config).load(
  readSafetensors(join(dir, 'diffusion_pytorch_model.safetensors')).tensors,
);
const t = sdxlGolden('unet.in.timestep').item();
const added = { textEmbeds: sdxlGolden('unet.in.text_embeds'), timeIds: sdxlGolden('unet.in.time_ids') };

function run(controllers: Controller[] = []): Tensor {
  const ctx: AttentionContext = { controllers, step: 0, numSteps: 1, timestep: t, batch: plainBatch(2) };
  return noGrad(() =>
    unet.forward(sdxlGolden('unet.in.sample'), t, sdxlGolden('unet.in.encoder_hidden_states'), ctx, added),
  );
}

test('SDXL UNet with text_time added conditions matches diffusers within 1e-4', () => {
  const out = run();
  const expected = sdxlGolden('unet.out.sample');
  console.log(`  sdxl unet parity: max abs error ${maxAbsDiff(out, expected).toExponential(3)}`);
  assertClose(out, expected, { atol: 1e-4, rtol: 0 });
});

test('every SDXL attention map matches diffusers under its module path (1e-4)', () => {
  const maps = new Map<string, Tensor>();
  const store: Controller = {
    name: 'store',
    map: (call, p) => {
      maps.set(call.path, p);
      return p;
    },
  };
  run([store]);
  const keys = sdxlGoldenKeys('unet.attn_probs.');
  // down 1 (1 layer), down 2 (2 layers), mid (2), up 0 (2 × 2), up 1 (2 × 1): 11 blocks, attn1 and attn2 each
  assert.equal(keys.length, 22);
  assert.equal(maps.size, keys.length);
  let worst = 0;
  for (const k of keys) {
    const ref = sdxlGolden(k);
    const p = maps.get(k.slice('unet.attn_probs.'.length));
    assert.ok(p, `no map recorded for ${k}`);
    // (B, heads, Tq, Tk) → (B·heads, Tq, Tk), as diffusers lays them out
    worst = Math.max(worst, maxAbsDiff(p.reshape(ref.shape), ref));
    assertClose(p.reshape(ref.shape), ref, { atol: 1e-4, rtol: 0, label: k });
  }
  console.log(`  sdxl attention maps: ${keys.length}, max abs error ${worst.toExponential(3)}`);
});

test('per-block transformer depths: the up path mirrors the down path, the mid block takes the last', () => {
  const depth = (m?: { transformer_blocks: { length: number } }) => m?.transformer_blocks.length;
  assert.equal(depth(unet.down_blocks.at(1).attentions?.at(0)), 1);
  assert.equal(depth(unet.down_blocks.at(2).attentions?.at(0)), 2);
  assert.equal(depth(unet.mid_block?.attentions.at(0)), 2);
  assert.equal(depth(unet.up_blocks.at(0).attentions?.at(0)), 2);
  assert.equal(depth(unet.up_blocks.at(1).attentions?.at(0)), 1);
  const attn = unet.up_blocks.at(0).attentions?.at(1).transformer_blocks.at(1).attn2;
  assert.equal(attn?.info.path, 'up_blocks.0.attentions.1.transformer_blocks.1.attn2');
});

test('text_time config values are checked, each error naming the key', () => {
  const c = parseUNetConfig(config);
  assert.deepEqual(c.textTime, { timeEmbedDim: 8, inputDim: 68 });
  assert.deepEqual(c.transformerLayersPerBlock, [1, 1, 2]);
  assert.throws(
    () => parseUNetConfig({ ...config, addition_time_embed_dim: null }),
    /'addition_time_embed_dim' = null must be set when addition_embed_type is 'text_time'/,
  );
  assert.throws(
    () => parseUNetConfig({ ...config, addition_time_embed_dim: 7 }),
    /'addition_time_embed_dim' = 7 must be even/,
  );
  assert.throws(
    () => parseUNetConfig({ ...config, projection_class_embeddings_input_dim: 8 }),
    /'projection_class_embeddings_input_dim' = 8 must exceed addition_time_embed_dim/,
  );
  assert.throws(
    () => parseUNetConfig({ ...config, projection_class_embeddings_input_dim: 1e9 }),
    /projection_class_embeddings_input_dim' = 1000000000 is over attnkit's limit/,
  );
  assert.throws(
    () => parseUNetConfig({ ...config, addition_embed_type: 'text_image' }),
    /'addition_embed_type' = "text_image" is not supported/,
  );
  assert.throws(
    () => parseUNetConfig({ ...config, addition_embed_type: null }),
    /'projection_class_embeddings_input_dim' = 68 is not supported/,
  );
  assert.throws(
    () => parseUNetConfig({ ...config, transformer_layers_per_block: [1, 2] }),
    /'transformer_layers_per_block' must be an integer or a list of 3 integers/,
  );
});

test('added conditions: required by a text_time model, shapes checked against the config', () => {
  const sample = sdxlGolden('unet.in.sample');
  const text = sdxlGolden('unet.in.encoder_hidden_states');
  assert.throws(() => unet.forward(sample, t, text), /needs added conditions/);
  assert.throws(
    () => unet.forward(sample, t, text, undefined, { ...added, timeIds: Tensor.zeros([2, 5]) }),
    /time ids \[2, 5\] must be \(2, D\) and \(2, n\) with D \+ n · 8 \(addition_time_embed_dim\) = 68/,
  );
});
