// The SDXL UNet (addition_embed_type "text_time", per-block transformer depths) against diffusers' goldens
// (test/fixtures/tiny-sdxl, made by its make_goldens.py): the output, every attention map, the config checks.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { type AttentionContext, type Controller, plainBatch } from '../../../src/attention/index.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { UNet2DConditionModel } from '../../../src/models/unet2d-condition.js';
import { parseUNetConfig, unetBlockConfigs } from '../../../src/models/unet2d-config.js';
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
    unet.forward(sdxlGolden('unet.in.sample'), t, sdxlGolden('unet.in.encoder_hidden_states'), {
      ctx,
      added,
    }),
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
    () => unet.forward(sample, t, text, { added: { ...added, timeIds: Tensor.zeros([2, 5]) } }),
    /time ids \[2, 5\] must be \(2, D\) and \(2, n\) with D \+ n · 8 \(addition_time_embed_dim\) = 68/,
  );
});

test('the SDXL base UNet config (stabilityai/stable-diffusion-xl-base-1.0) reads into the right block shapes', () => {
  const base = {
    _class_name: 'UNet2DConditionModel',
    act_fn: 'silu',
    addition_embed_type: 'text_time',
    addition_embed_type_num_heads: 64,
    addition_time_embed_dim: 256,
    attention_head_dim: [5, 10, 20],
    block_out_channels: [320, 640, 1280],
    center_input_sample: false,
    class_embed_type: null,
    class_embeddings_concat: false,
    conv_in_kernel: 3,
    conv_out_kernel: 3,
    cross_attention_dim: 2048,
    cross_attention_norm: null,
    down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
    downsample_padding: 1,
    dual_cross_attention: false,
    encoder_hid_dim: null,
    encoder_hid_dim_type: null,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: 4,
    layers_per_block: 2,
    mid_block_only_cross_attention: null,
    mid_block_scale_factor: 1,
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    norm_eps: 1e-5,
    norm_num_groups: 32,
    num_attention_heads: null,
    num_class_embeds: null,
    only_cross_attention: false,
    out_channels: 4,
    projection_class_embeddings_input_dim: 2816,
    resnet_out_scale_factor: 1.0,
    resnet_skip_time_act: false,
    resnet_time_scale_shift: 'default',
    sample_size: 128,
    time_cond_proj_dim: null,
    time_embedding_act_fn: null,
    time_embedding_dim: null,
    time_embedding_type: 'positional',
    timestep_post_act: null,
    transformer_layers_per_block: [1, 2, 10],
    up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
    upcast_attention: null,
    use_linear_projection: true,
  };
  const c = parseUNetConfig(base);
  // 2816 = 1280 (pooled text of encoder 2) + 6 time ids × 256
  assert.deepEqual(c.textTime, { timeEmbedDim: 256, inputDim: 2816 });
  const blocks = unetBlockConfigs(c);
  assert.deepEqual(
    blocks.down.map(
      (b) => b.transformer && [b.transformer.numLayers, b.transformer.heads, b.transformer.headDim],
    ),
    [undefined, [2, 10, 64], [10, 20, 64]],
  );
  assert.equal(blocks.mid?.transformer.numLayers, 10);
  assert.deepEqual(
    blocks.up.map((b) => b.transformer?.numLayers),
    [10, 2, undefined],
  );
});
