// LoRA on small modules: the update by hand, the weights hook under autograd (finite differences), and
// every bad file an error naming key and module with the model untouched.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Attention } from '../../../src/attention/attention.js';
import type { AttentionContext } from '../../../src/attention/hooks.js';
import { serializeSafetensors } from '../../../src/io/safetensors.js';
import { type LoraDelta, loraController } from '../../../src/methods/weight/lora.js';
import { mergeLora } from '../../../src/methods/weight/lora-merge.js';
import { loraFromTensors, readLora } from '../../../src/models/lora-file.js';
import { Conv2d, Linear, Module, type Parameter } from '../../../src/nn/index.js';
import { Tensor } from '../../../src/tensor/index.js';
import { gradcheck } from '../../helpers/gradcheck.js';
import { uniform } from '../../helpers/random.js';
import { sameBits } from '../../helpers/tolerance.js';

class Toy extends Module {
  to_q = new Linear(3, 2, { bias: false });
  conv = new Conv2d(2, 3, 3, { padding: 1 });
  constructor() {
    super();
    this.to_q.weight.value = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]);
    this.conv.weight.value = uniform([3, 2, 3, 3], 1);
    (this.conv.bias as Parameter).value = Tensor.zeros([3]);
  }
}

const ctxWith = (c: AttentionContext['controllers']): AttentionContext => ({
  controllers: c,
  step: 0,
  numSteps: 1,
  timestep: 0,
  batch: { guidance: [], prompt: [] },
});

test('merge adds s·α/r·B·A (by hand) and unmerge puts the original tensor back', () => {
  const toy = new Toy();
  const original = toy.to_q.weight.value;
  // A (1, 3) = [1, 0, -1], B (2, 1) = [2, 3]ᵀ, α = 2, r = 1: α/r·B·A = 2·[[2, 0, -2], [3, 0, -3]]
  const d: LoraDelta = {
    module: 'to_q',
    down: Tensor.from([1, 0, -1], [1, 3]),
    up: Tensor.from([2, 3], [2, 1]),
    alphaScale: 2,
  };
  const m = mergeLora(toy, [{ deltas: [d], scale: 0.5 }]);
  assert.deepEqual(toy.to_q.weight.value.toArray(), [1 + 2, 2, 3 - 2, 4 + 3, 5, 6 - 3]);
  m.unmerge();
  assert.equal(toy.to_q.weight.value, original);
});

test('a LoCon delta (r, in, kh, kw) × (out, r, 1, 1) merges as a kernel: B·A over flattened taps', () => {
  const toy = new Toy();
  const down = uniform([1, 2, 3, 3], 2);
  const up = Tensor.from([1, -1, 2], [3, 1, 1, 1]);
  const w0 = toy.conv.weight.value.toArray();
  mergeLora(toy, [{ deltas: [{ module: 'conv', down, up, alphaScale: 1 }], scale: 1 }]);
  const a = down.toArray();
  const got = toy.conv.weight.value.toArray();
  for (let o = 0; o < 3; o++) {
    for (let i = 0; i < 18; i++) {
      const want = (w0[o * 18 + i] as number) + [1, -1, 2][o]! * (a[i] as number);
      assert.ok(Math.abs((got[o * 18 + i] as number) - want) < 1e-6);
    }
  }
});

test('a failed merge changes no weight: the good delta before the bad one is not applied', () => {
  const toy = new Toy();
  const before = toy.to_q.weight.value;
  const good: LoraDelta = {
    module: 'to_q',
    down: Tensor.ones([1, 3]),
    up: Tensor.ones([2, 1]),
    alphaScale: 1,
  };
  const rankMismatch: LoraDelta = {
    module: 'to_q',
    down: Tensor.ones([2, 3]),
    up: Tensor.ones([2, 1]),
    alphaScale: 1,
  };
  const missing: LoraDelta = {
    module: 'to_k',
    down: Tensor.ones([1, 3]),
    up: Tensor.ones([2, 1]),
    alphaScale: 1,
  };
  assert.throws(() => mergeLora(toy, [{ deltas: [good, rankMismatch], scale: 1 }]), /to_q.*rank mismatch/);
  assert.throws(() => mergeLora(toy, [{ deltas: [good, missing], scale: 1 }]), /no module 'to_k'/);
  assert.equal(toy.to_q.weight.value, before);
});

test('the weights hook under autograd: gradients of A and B match finite differences', () => {
  const attn = new Attention({ queryDim: 4, heads: 2, dimHead: 2, crossAttentionDim: 3 }, 'cross');
  attn.info = { path: 'attn2', kind: 'cross', place: 'mid', index: 0 };
  let seed = 10;
  for (const [, p] of attn.namedParameters()) p.value = uniform(p.shape, seed++, -0.5, 0.5);
  const x = uniform([1, 3, 4], 20);
  const context = uniform([1, 2, 3], 21);
  const f = (a: Tensor, b: Tensor, a2: Tensor, b2: Tensor) => {
    const deltas: LoraDelta[] = [
      { module: 'attn2.to_k', down: a, up: b, alphaScale: 0.5 },
      { module: 'attn2.to_out.0', down: a2, up: b2, alphaScale: 1 },
    ];
    return attn.forward(x, { ctx: ctxWith([loraController([{ deltas, scale: 0.7 }])]), context });
  };
  gradcheck(f, [uniform([2, 3], 30), uniform([4, 2], 31), uniform([1, 4], 32), uniform([4, 1], 33)], {
    label: 'lora hook',
  });
});

test('the controller refuses a delta the weights hook cannot reach, naming it', () => {
  const d: LoraDelta = {
    module: 'down_blocks.0.resnets.0.conv1',
    down: Tensor.ones([1, 2]),
    up: Tensor.ones([2, 1]),
    alphaScale: 1,
  };
  assert.throws(
    () => loraController([{ deltas: [d], scale: 1 }]),
    /'down_blocks.0.resnets.0.conv1' is not an attention projection.*mergeLora/,
  );
});

// --- files

const dir = mkdtempSync(join(tmpdir(), 'attnkit-lora-'));
const toy = new Toy();
const targets = { unet: toy };
const kohya = (name: string, down: Tensor, up: Tensor, alpha?: number) =>
  new Map<string, Tensor>([
    [`lora_unet_${name}.lora_down.weight`, down],
    [`lora_unet_${name}.lora_up.weight`, up],
    ...(alpha === undefined ? [] : [[`lora_unet_${name}.alpha`, Tensor.scalar(alpha)] as [string, Tensor]]),
  ]);

test('kohya α/r scaling, and B·A where the file has no α', () => {
  const a = loraFromTensors(kohya('to_q', Tensor.ones([2, 3]), Tensor.ones([2, 2]), 1), targets, 'f');
  assert.equal(a.unet[0]?.alphaScale, 0.5);
  const b = loraFromTensors(kohya('to_q', Tensor.ones([2, 3]), Tensor.ones([2, 2])), targets, 'f');
  assert.equal(b.unet[0]?.alphaScale, 1);
});

test('bad files are errors naming what is wrong', () => {
  // another architecture: a module the model lacks
  assert.throws(
    () =>
      loraFromTensors(
        kohya('mid_block_attentions_0_proj_in', Tensor.ones([1, 3]), Tensor.ones([2, 1])),
        targets,
        'other.safetensors',
      ),
    /other.safetensors: key 'lora_unet_mid_block_attentions_0_proj_in.lora_down.weight' names module 'mid_block_attentions_0_proj_in', which the UNet does not have/,
  );
  // rank mismatch between A and B
  assert.throws(
    () => loraFromTensors(kohya('to_q', Tensor.ones([4, 3]), Tensor.ones([2, 2])), targets, 'r.safetensors'),
    /r.safetensors: .*module 'to_q'.*rank mismatch.*down \[4, 3\], up \[2, 2\]/,
  );
  // a shape that does not fit the module
  assert.throws(
    () => loraFromTensors(kohya('to_q', Tensor.ones([2, 5]), Tensor.ones([2, 2])), targets, 's.safetensors'),
    /module 'to_q'.*down columns are not the weight inputs/,
  );
  // A without B
  const half = new Map([['lora_unet_to_q.lora_down.weight', Tensor.ones([2, 3])]]);
  assert.throws(() => loraFromTensors(half, targets, 'h'), /module 'to_q' has no up \(B\) tensor/);
  // a text-encoder LoRA without a text encoder
  const te = new Map([['lora_te_text_model_x.lora_down.weight', Tensor.ones([2, 3])]]);
  assert.throws(
    () => loraFromTensors(te, targets, 't'),
    /adapts the text encoder, which this model does not have/,
  );
  // LyCORIS tensors are not LoRA
  const loha = new Map([['lora_unet_to_q.hada_w1_a', Tensor.ones([2, 3])]]);
  assert.throws(
    () => loraFromTensors(loha, targets, 'l'),
    /'lora_unet_to_q.hada_w1_a' is not part of the kohya LoRA layout/,
  );
  assert.throws(
    () => loraFromTensors(new Map([['x.weight', Tensor.ones([1])]]), targets, 'n'),
    /no LoRA keys found/,
  );
});

test('a truncated or pickled file is an error, and the model is untouched after any failed load', () => {
  const before = [...toy.namedParameters()].map(([, p]) => p.value);
  const bytes = serializeSafetensors(kohya('to_q', Tensor.ones([2, 3]), Tensor.ones([2, 2]), 2));
  const whole = join(dir, 'whole.safetensors');
  writeFileSync(whole, bytes);
  assert.equal(readLora(whole, targets).unet.length, 1);
  const cut = join(dir, 'cut.safetensors');
  writeFileSync(cut, readFileSync(whole).subarray(0, bytes.length - 5));
  assert.throws(() => readLora(cut, targets), /cut.safetensors/);
  assert.throws(
    () => readLora(join(dir, 'x.ckpt'), targets),
    /x.ckpt: attnkit reads LoRA files as .safetensors only \(pickled/,
  );
  assert.throws(() => readLora(join(dir, 'absent.safetensors'), targets), /does not exist/);
  const after = [...toy.namedParameters()].map(([, p]) => p.value);
  assert.ok(after.every((t, i) => t === before[i] && sameBits(t, before[i] as Tensor)));
});
