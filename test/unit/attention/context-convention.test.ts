// One calling convention for the hook context (issue 26 item 5): every model's entry point takes it in its
// trailing options object, `{ ctx }` — the UNet, both halves of the VAE, the text encoder and Attention itself.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Attention } from '../../../src/attention/attention.js';
import { type AttentionContext, type Controller, plainBatch } from '../../../src/attention/index.js';
import { CLIPTextModel } from '../../../src/models/clip-text.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { golden, goldenUNet, goldenVAE } from '../../helpers/golden.js';

/** A context whose one controller records the path of every attention call it sees. */
function recording(): { ctx: AttentionContext; paths: string[] } {
  const paths: string[] = [];
  const spy: Controller = {
    name: 'spy',
    output: (call, o) => {
      paths.push(call.path);
      return o;
    },
  };
  return { ctx: { controllers: [spy], step: 0, numSteps: 1, timestep: 1, batch: plainBatch(1) }, paths };
}

test('UNet2DConditionModel.forward(sample, t, context, { ctx })', () => {
  const unet = goldenUNet();
  const { ctx, paths } = recording();
  const sample = golden('unet.in.sample').slice(0, 0, 1);
  const text = golden('unet.in.encoder_hidden_states').slice(0, 0, 1);
  noGrad(() => unet.forward(sample, 1, text, { ctx }));
  assert.ok(paths.includes('mid_block.attentions.0.transformer_blocks.0.attn2'), paths.join());
});

test('AutoencoderKL.encode(image, { ctx }) and decode(z, { ctx })', () => {
  const vae = goldenVAE();
  const enc = recording();
  noGrad(() => vae.encode(Tensor.zeros([1, 3, 16, 16]), { ctx: enc.ctx }));
  assert.deepEqual(enc.paths, ['encoder.mid_block.attentions.0']);
  const dec = recording();
  noGrad(() => vae.decode(Tensor.zeros([1, 4, 8, 8]), { ctx: dec.ctx }));
  assert.deepEqual(dec.paths, ['decoder.mid_block.attentions.0']);
});

test('CLIPTextModel.forward(ids, { ctx }) and Attention.forward(x, { ctx })', () => {
  const model = CLIPTextModel.fromPretrained(goldenDir(), { subfolder: 'text_encoder' });
  const { ctx, paths } = recording();
  noGrad(() => model.forward(Tensor.int64([0, 5, 7], [1, 3]), { ctx }));
  assert.equal(paths.length, model.config.numHiddenLayers);
  assert.equal(paths[0], 'text_model.encoder.layers.0.self_attn');

  const unet = goldenUNet();
  const path = 'mid_block.attentions.0.transformer_blocks.0.attn1';
  const attn = new Map(unet.namedModules()).get(path) as Attention;
  const channels = unet.config.blockOutChannels.at(-1) as number;
  const one = recording();
  noGrad(() => attn.forward(Tensor.zeros([1, 4, channels]), { ctx: one.ctx }));
  assert.deepEqual(one.paths, [path]);
});
