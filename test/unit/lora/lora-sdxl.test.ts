// A kohya-ss SDXL LoRA on tiny-sdxl: its original-LDM UNet names (layers_per_block 1, a depth-2 transformer,
// samplers, ResNet parts) and both text encoders (lora_te1_ / lora_te2_) resolve to the modules worked out by
// hand from LDM's block layout; the whole file merges into UNet and both encoders and unmerges.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { mergeLoraAdapters } from '../../../src/methods/weight/lora-merge.js';
import { loraFromTensors } from '../../../src/models/lora-file.js';
import type { Module } from '../../../src/nn/index.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { Tensor } from '../../../src/tensor/index.js';
import { repoRoot } from '../../helpers/fixtures.js';

const sd = StableDiffusion.fromPretrained(join(repoRoot, 'test', 'fixtures', 'tiny-sdxl'));
const te2 = sd.xl?.textEncoder2 as Module;

// kohya name → the module, by hand: input_blocks.k (k ≥ 1) is down block ⌊(k−1)/2⌋, step (k−1) mod 2 (step 1:
// the downsampler); output_blocks.k is up block ⌊k/2⌋, layer k mod 2, its upsampler at .2 after attention
const UNET: [string, string][] = [
  [
    'input_blocks_5_1_transformer_blocks_1_attn2_to_k',
    'down_blocks.2.attentions.0.transformer_blocks.1.attn2.to_k',
  ],
  ['input_blocks_1_0_in_layers_2', 'down_blocks.0.resnets.0.conv1'],
  ['input_blocks_2_0_op', 'down_blocks.0.downsamplers.0.conv'],
  ['middle_block_1_proj_in', 'mid_block.attentions.0.proj_in'],
  ['middle_block_2_emb_layers_1', 'mid_block.resnets.1.time_emb_proj'],
  ['output_blocks_1_2_conv', 'up_blocks.0.upsamplers.0.conv'],
  [
    'output_blocks_3_1_transformer_blocks_0_ff_net_2',
    'up_blocks.1.attentions.1.transformer_blocks.0.ff.net.2',
  ],
  ['output_blocks_4_0_skip_connection', 'up_blocks.2.resnets.0.conv_shortcut'],
];
const TEXT: [string, string, Module][] = [
  [
    'lora_te1_text_model_encoder_layers_0_self_attn_q_proj',
    'text_model.encoder.layers.0.self_attn.q_proj',
    sd.textEncoder,
  ],
  ['lora_te2_text_model_encoder_layers_1_mlp_fc2', 'text_model.encoder.layers.1.mlp.fc2', te2],
];

const shapeOf = (m: Module, path: string) =>
  [...m.namedParameters()].find(([k]) => k === `${path}.weight`)?.[1].shape as number[];

function deltaFor(shape: number[]): [Tensor, Tensor] {
  const [out, inp, kh = 1, kw = 1] = shape as [number, number, number?, number?];
  return shape.length === 4
    ? [Tensor.full([1, inp, kh, kw], 0.01), Tensor.full([out, 1, 1, 1], 0.01)]
    : [Tensor.full([1, inp], 0.01), Tensor.full([out, 1], 0.01)];
}

const tensors = new Map<string, Tensor>();
for (const [name, path] of UNET) {
  const [down, up] = deltaFor(shapeOf(sd.unet, path));
  tensors.set(`lora_unet_${name}.lora_down.weight`, down);
  tensors.set(`lora_unet_${name}.lora_up.weight`, up);
}
for (const [name, path, m] of TEXT) {
  const [down, up] = deltaFor(shapeOf(m, path));
  tensors.set(`${name}.lora_down.weight`, down);
  tensors.set(`${name}.lora_up.weight`, up);
}
const targets = {
  unet: sd.unet,
  textEncoder: sd.textEncoder,
  textEncoder2: te2,
  unetLayersPerBlock: sd.unet.config.layersPerBlock,
};

test('kohya SDXL names resolve to the modules worked out by hand', () => {
  const a = loraFromTensors(tensors, targets, 'sdxl.safetensors');
  assert.deepEqual(a.unet.map((d) => d.module).sort(), UNET.map(([, p]) => p).sort());
  assert.deepEqual(
    a.textEncoder.map((d) => d.module),
    [TEXT[0]?.[1]],
  );
  assert.deepEqual(
    a.textEncoder2.map((d) => d.module),
    [TEXT[1]?.[1]],
  );
});

test('the SDXL LoRA merges into the UNet and both text encoders, and unmerges to the same tensors', () => {
  const all = [sd.unet, sd.textEncoder, te2].flatMap((m) => [...m.namedParameters()].map(([, p]) => p));
  const before = all.map((p) => p.value);
  const merged = mergeLoraAdapters(targets, [
    { adapter: loraFromTensors(tensors, targets, 'sdxl'), scale: 1 },
  ]);
  assert.equal(merged.modules.length, UNET.length + TEXT.length);
  assert.equal(all.filter((p, i) => p.value !== before[i]).length, UNET.length + TEXT.length);
  merged.unmerge();
  assert.ok(all.every((p, i) => p.value === before[i]));
  assert.throws(
    () =>
      mergeLoraAdapters({ unet: sd.unet }, [
        { adapter: loraFromTensors(tensors, targets, 'sdxl'), scale: 1 },
      ]),
    /LoRA sdxl: adapts the text encoder, which this model does not have/,
  );
});
