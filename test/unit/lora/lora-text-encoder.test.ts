// A kohya-ss LoRA on the text encoder (tiny-sd-a's CLIP): `lora_te_…` names resolve to q/k/v/out_proj and
// the MLP's fc1/fc2; the attention deltas through the weights hook plus the merged MLP give what merging
// everything gives; a merged fc1 is W + α/r·B·A by hand.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AttentionContext } from '../../../src/attention/hooks.js';
import { isAttentionProjection, loraController } from '../../../src/methods/weight/lora.js';
import { mergeLora } from '../../../src/methods/weight/lora-merge.js';
import { CLIPTextModel } from '../../../src/models/clip-text.js';
import { loraFromTensors } from '../../../src/models/lora-file.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { uniform } from '../../helpers/random.js';
import { assertClose } from '../../helpers/tolerance.js';

const te = CLIPTextModel.fromPretrained(join(goldenDir(), 'text_encoder'));
const unet = new CLIPTextModel(te.config); // a stand-in UNet target: the file holds no UNet keys
const d = te.config.hiddenSize;
const tensors = new Map<string, Tensor>();
let seed = 100;
for (const [name, inp, out] of [
  ['self_attn_q_proj', d, d],
  ['self_attn_k_proj', d, d],
  ['self_attn_v_proj', d, d],
  ['self_attn_out_proj', d, d],
  ['mlp_fc1', d, 4 * d],
  ['mlp_fc2', 4 * d, d],
] as const) {
  const k = `lora_te_text_model_encoder_layers_1_${name}`;
  tensors.set(`${k}.lora_down.weight`, uniform([2, inp], seed++, -0.3, 0.3));
  tensors.set(`${k}.lora_up.weight`, uniform([out, 2], seed++, -0.3, 0.3));
  tensors.set(`${k}.alpha`, Tensor.scalar(1));
}
const adapter = loraFromTensors(tensors, { unet, textEncoder: te }, 'te.safetensors');
const ids = Tensor.int64([0, 5, 17, 300, 2, 1, 1, 1], [1, 8]);
const ctxOf = (controllers: AttentionContext['controllers']): AttentionContext => ({
  controllers,
  step: 0,
  numSteps: 1,
  timestep: 0,
  batch: { guidance: [], prompt: [] },
});
const encode = (ctx = ctxOf([])) => noGrad(() => te.forward(ids, { ctx }).lastHiddenState);

test('lora_te_ names resolve to the CLIP modules, α/r = 1/2', () => {
  assert.deepEqual(adapter.textEncoder.map((x) => x.module).sort(), [
    'text_model.encoder.layers.1.mlp.fc1',
    'text_model.encoder.layers.1.mlp.fc2',
    'text_model.encoder.layers.1.self_attn.k_proj',
    'text_model.encoder.layers.1.self_attn.out_proj',
    'text_model.encoder.layers.1.self_attn.q_proj',
    'text_model.encoder.layers.1.self_attn.v_proj',
  ]);
  assert.ok(adapter.textEncoder.every((x) => x.alphaScale === 0.5));
  assert.equal(adapter.unet.length, 0);
});

test('attention deltas hooked + MLP merged = everything merged (1e-5), and differ from the base', () => {
  const base = encode();
  const all = mergeLora(te, [{ deltas: adapter.textEncoder, scale: 0.8 }]);
  const merged = encode();
  all.unmerge();
  const attn = adapter.textEncoder.filter(isAttentionProjection);
  const mlp = adapter.textEncoder.filter((x) => !isAttentionProjection(x));
  assert.equal(attn.length, 4);
  const m = mergeLora(te, [{ deltas: mlp, scale: 0.8 }]);
  const hooked = encode(ctxOf([loraController([{ deltas: attn, scale: 0.8 }])]));
  m.unmerge();
  assertClose(hooked, merged, { atol: 1e-5, rtol: 0 });
  assert.ok(merged.sub(base).abs().max().item() > 1e-3);
  assertClose(encode(), base, { atol: 0, rtol: 0 });
});

test('a merged fc1 is W + s·α/r·B·A, by hand', () => {
  const fc1 = te.text_model.encoder.layers.at(1).mlp.fc1;
  const w0 = fc1.weight.value.toArray();
  const delta = adapter.textEncoder.find((x) => x.module.endsWith('fc1'));
  assert.ok(delta);
  const m = mergeLora(te, [{ deltas: [delta], scale: 0.8 }]);
  const w1 = fc1.weight.value.toArray();
  m.unmerge();
  const [a, b] = [delta.down.toArray(), delta.up.toArray()];
  const [out, inp] = fc1.weight.shape as [number, number];
  let worst = 0;
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inp; i++) {
      const ba = (b[o * 2] as number) * (a[i] as number) + (b[o * 2 + 1] as number) * (a[inp + i] as number);
      worst = Math.max(
        worst,
        Math.abs((w1[o * inp + i] as number) - ((w0[o * inp + i] as number) + 0.8 * 0.5 * ba)),
      );
    }
  }
  assert.ok(worst < 1e-6, `worst ${worst}`);
});
