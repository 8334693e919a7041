// LoRA against diffusers 0.21.4's load_lora_weights (test/fixtures/lora, made by make_lora_goldens.py):
// the tiny-sd-a UNet's output with a kohya-ss LoRA (attention, ff, proj_in/out, LoCon ResNet convolutions;
// α ≠ r), the same LoRA under kohya's LDM-style names, and an older diffusers processor-layout LoRA (also
// renamed to PEFT's layout here), at scales 1 and 0.5; merged against unmerged; unmerge restores the weights.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { isAttentionProjection, type LoraAdapter, loraController } from '../../../src/methods/weight/lora.js';
import { mergeLora } from '../../../src/methods/weight/lora-merge.js';
import { loraFromTensors, readLora } from '../../../src/models/lora-file.js';
import type { UNet2DConditionModel } from '../../../src/models/unet2d-condition.js';
import { noGrad, type Tensor } from '../../../src/tensor/index.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { golden, goldenUNet } from '../../helpers/golden.js';
import { assertClose, sameBits } from '../../helpers/tolerance.js';

const dir = join(repoRoot, 'test', 'fixtures', 'lora');
const ref = readSafetensors(join(dir, 'goldens.safetensors')).tensors;
const want = (k: string) => ref.get(k) as Tensor;

const unet = goldenUNet();
const targets = { unet, unetLayersPerBlock: unet.config.layersPerBlock };

function run(u: UNet2DConditionModel, controllers: Parameters<typeof loraController>[0] = []): Tensor {
  const ctx = {
    controllers: controllers.length ? [loraController(controllers)] : [],
    step: 0,
    numSteps: 1,
    timestep: 0,
    batch: { guidance: [], prompt: [] },
  };
  return noGrad(() =>
    u.forward(
      golden('unet.in.sample'),
      golden('unet.in.timestep').item(),
      golden('unet.in.encoder_hidden_states'),
      {
        ctx,
      },
    ),
  );
}

function merged(adapter: LoraAdapter, scale: number): Tensor {
  const m = mergeLora(unet, [{ deltas: adapter.unet, scale }], 'the UNet');
  try {
    return run(unet);
  } finally {
    m.unmerge();
  }
}

test('base UNet output is the golden base (the fixture and the model agree)', () => {
  assertClose(run(unet), want('base'), { atol: 1e-4, rtol: 0 });
});

for (const file of ['kohya', 'kohya-ldm', 'diffusers']) {
  const golden = file === 'kohya-ldm' ? 'kohya' : file;
  for (const scale of [1, 0.5]) {
    test(`${file} LoRA merged at scale ${scale} matches diffusers within 1e-4`, () => {
      const adapter = readLora(join(dir, `${file}.safetensors`), targets);
      assert.equal(adapter.layout, file === 'diffusers' ? 'diffusers' : 'kohya');
      assertClose(merged(adapter, scale), want(`${golden}.s${scale}`), { atol: 1e-4, rtol: 0 });
    });
  }
}

test('kohya LoRA: every module resolves the same under diffusers-style and LDM-style names', () => {
  const a = readLora(join(dir, 'kohya.safetensors'), targets);
  const b = readLora(join(dir, 'kohya-ldm.safetensors'), targets);
  const mods = (x: LoraAdapter) => x.unet.map((d) => d.module).sort();
  assert.deepEqual(mods(b), mods(a));
  assert.equal(a.unet.length, 96); // lora_down keys in the file
  assert.equal(a.unet[0]?.alphaScale, 0.5); // α 2, rank 4
});

test('PEFT layout (the diffusers file renamed to lora_A / lora_B) matches the same golden', () => {
  const src = readSafetensors(join(dir, 'diffusers.safetensors')).tensors;
  const peft = new Map<string, Tensor>();
  for (const [k, t] of src) {
    const name = k
      .replace('.processor.', '.')
      .replace(/\.to_out_lora\./, '.to_out.0.')
      .replace(/_lora\./, '.')
      .replace('.down.weight', '.lora_A.weight')
      .replace('.up.weight', '.lora_B.weight');
    peft.set(name, t);
  }
  assert.ok(peft.has('unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0.lora_B.weight'));
  const adapter = loraFromTensors(peft, targets, 'peft');
  assert.equal(adapter.layout, 'peft');
  assertClose(merged(adapter, 0.5), want('diffusers.s0.5'), { atol: 1e-4, rtol: 0 });
});

test('unmerged (weights hook) equals merged within 1e-5; per-call scale 0 is the base model', () => {
  const adapter = readLora(join(dir, 'diffusers.safetensors'), targets);
  assert.ok(adapter.unet.every(isAttentionProjection));
  const hooked = run(unet, [{ deltas: adapter.unet, scale: 0.5 }]);
  assertClose(hooked, merged(adapter, 0.5), { atol: 1e-5, rtol: 0 });
  assertClose(hooked, want('diffusers.s0.5'), { atol: 1e-4, rtol: 0 });
  assert.ok(sameBits(run(unet, [{ deltas: adapter.unet, scale: () => 0 }]), run(unet)));
});

test('two LoRAs stack with their own scales, merged and unmerged alike', () => {
  const a = readLora(join(dir, 'diffusers.safetensors'), targets);
  const uses = [
    { deltas: a.unet, scale: 0.25 },
    { deltas: a.unet, scale: 0.25 },
  ];
  const m = mergeLora(unet, uses, 'the UNet');
  const both = run(unet);
  m.unmerge();
  assertClose(both, want('diffusers.s0.5'), { atol: 1e-4, rtol: 0 });
  assertClose(run(unet, uses), both, { atol: 1e-5, rtol: 0 });
});

test('unmerge restores every weight bit for bit', () => {
  const before = new Map([...unet.namedParameters()].map(([k, p]) => [k, p.value]));
  const adapter = readLora(join(dir, 'kohya.safetensors'), targets);
  const m = mergeLora(unet, [{ deltas: adapter.unet, scale: 0.7 }]);
  const changed = [...unet.namedParameters()].filter(([k, p]) => p.value !== before.get(k)).length;
  assert.equal(changed, 96);
  m.unmerge();
  for (const [k, p] of unet.namedParameters()) assert.ok(sameBits(p.value, before.get(k) as Tensor), k);
});
