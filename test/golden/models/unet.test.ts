// UNet2DConditionModel against diffusers' goldens (tiny-sd-a), and its config / loading errors.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { UNet2DConditionModel } from '../../../src/models/unet2d-condition.js';
import { parseUNetConfig } from '../../../src/models/unet2d-config.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { golden, goldenUNet } from '../../helpers/golden.js';
import { assertClose } from '../../helpers/tolerance.js';

const unetDir = join(goldenDir(), 'unet');
const config = JSON.parse(readFileSync(join(unetDir, 'config.json'), 'utf8'));

test('UNet output matches diffusers within 1e-4', () => {
  const unet = goldenUNet();
  const out = noGrad(() =>
    unet.forward(
      golden('unet.in.sample'),
      golden('unet.in.timestep').item(),
      golden('unet.in.encoder_hidden_states'),
    ),
  );
  assertClose(out, golden('unet.out.sample'), { atol: 1e-4, rtol: 0 });
});

test('attention_head_dim is the head count when num_attention_heads is null (diffusers naming slip)', () => {
  const c = parseUNetConfig(config);
  assert.deepEqual(c.heads, [8, 8]);
  const unet = new UNet2DConditionModel(c);
  const attn = unet.down_blocks.at(1).attentions?.at(0).transformer_blocks.at(0).attn1;
  assert.equal(attn?.heads, 8);
  assert.equal(attn?.info.path, 'down_blocks.1.attentions.0.transformer_blocks.0.attn1');
  assert.equal(attn?.info.place, 'down');
});

test('an unsupported config value is an error naming the key', () => {
  assert.throws(
    () => parseUNetConfig({ ...config, class_embed_type: 'timestep' }),
    /config key 'class_embed_type' = "timestep" is not supported/,
  );
  assert.throws(
    () => parseUNetConfig({ ...config, down_block_types: ['DownBlock2D', 'FancyBlock'] }),
    /FancyBlock/,
  );
  assert.throws(
    () => parseUNetConfig({ ...config, block_out_channels: 'wide' }),
    /'block_out_channels' must be/,
  );
});

test('loading reports missing, unexpected and wrongly shaped weights by name', () => {
  const weights = readSafetensors(join(unetDir, 'diffusion_pytorch_model.safetensors')).tensors;
  const unet = new UNet2DConditionModel(parseUNetConfig(config));
  const broken = new Map(weights);
  broken.delete('conv_in.weight');
  broken.set('conv_out.extra', Tensor.zeros([1]));
  broken.set('time_embedding.linear_1.bias', Tensor.zeros([3]));
  assert.throws(
    () => unet.load(broken),
    (e: Error) =>
      /missing weights: conv_in\.weight/.test(e.message) &&
      /unexpected weights: conv_out\.extra/.test(e.message) &&
      /wrong shapes: time_embedding\.linear_1\.bias \(model \[128\], file \[3\]\)/.test(e.message),
  );
});

test('a sample of the wrong shape is rejected before any kernel runs', () => {
  const unet = goldenUNet();
  assert.throws(
    () => unet.forward(Tensor.zeros([1, 3, 16, 16]), 1, Tensor.zeros([1, 16, 32])),
    /unet: expected a sample \(B, 4, H, W\), got \[1, 3, 16, 16\]/,
  );
  assert.throws(
    () => unet.forward(Tensor.zeros([1, 4, 16, 16]), 1, Tensor.zeros([1, 16, 24])),
    /encoder hidden states \(1, T, 32\)/,
  );
});
