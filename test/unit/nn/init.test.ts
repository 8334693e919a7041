// Parameter initialisation against PyTorch's rules (bounds and moments of the distributions), determinism
// by seed, and AdamW's fused update against the formula worked by hand.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AdamW,
  Conv2d,
  Embedding,
  fanIn,
  GroupNorm,
  initParameters,
  Linear,
  Module,
  type Parameter,
  zeroInit,
} from '../../../src/nn/index.js';
import { Tensor } from '../../../src/tensor/index.js';
import { Generator } from '../../../src/tensor/random.js';

class Net extends Module {
  conv = new Conv2d(16, 32, 3);
  norm = new GroupNorm(8, 32);
  fc = new Linear(200, 300);
  emb = new Embedding(500, 64);
}

const stats = (t: Tensor) => {
  const d = t.data as Float32Array;
  let s = 0;
  let s2 = 0;
  let max = 0;
  for (const x of d) {
    s += x;
    s2 += x * x;
    max = Math.max(max, Math.abs(x));
  }
  return { mean: s / d.length, std: Math.sqrt(s2 / d.length - (s / d.length) ** 2), max };
};

test('init: kaiming-uniform(a=√5) weights and ±1/√fan_in biases, as torch.nn.Linear/Conv2d', () => {
  const net = new Net();
  initParameters(net, new Generator(7));
  for (const layer of [net.conv, net.fc]) {
    const bound = 1 / Math.sqrt(fanIn(layer.weight.shape)); // √(2/(1+5)) · √(3/fan_in)
    const w = stats(layer.weight.value);
    assert.ok(w.max <= bound && w.max > 0.98 * bound, `weight max ${w.max} vs bound ${bound}`);
    assert.ok(Math.abs(w.std - bound / Math.sqrt(3)) < 0.03 * bound, `weight std ${w.std}`);
    assert.ok(Math.abs(w.mean) < 0.02 * bound);
    assert.ok(stats(layer.bias?.value as Tensor).max <= bound);
  }
  assert.equal(fanIn([32, 16, 3, 3]), 144);
});

test('init: norms start at weight 1, bias 0; embeddings at N(0, std²)', () => {
  const net = new Net();
  initParameters(net, new Generator(7), { embeddingStd: 0.02 });
  assert.ok((net.norm.weight.value.data as Float32Array).every((x) => x === 1));
  assert.ok((net.norm.bias.value.data as Float32Array).every((x) => x === 0));
  const e = stats(net.emb.weight.value);
  assert.ok(Math.abs(e.std - 0.02) < 0.001 && Math.abs(e.mean) < 0.001, `embedding std ${e.std}`);
});

test('init: the same seed gives the same parameters, another seed others; zeroInit zeroes a layer', () => {
  const [a, b, c] = [new Net(), new Net(), new Net()];
  initParameters(a, new Generator(1));
  initParameters(b, new Generator(1));
  initParameters(c, new Generator(2));
  assert.deepEqual(a.fc.weight.value.data, b.fc.weight.value.data);
  assert.notDeepEqual(a.fc.weight.value.data, c.fc.weight.value.data);
  zeroInit(a.conv);
  assert.ok((a.conv.weight.value.data as Float32Array).every((x) => x === 0));
  assert.ok(((a.conv.bias as Parameter).value.data as Float32Array).every((x) => x === 0));
});

test('AdamW: two steps match the update worked by hand (torch.optim.AdamW)', () => {
  const fc = new Linear(1, 1, { bias: false });
  fc.weight.value = Tensor.from([0.5], [1, 1]).requireGrad();
  const opt = new AdamW([fc.weight], { lr: 0.1, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.01 });
  let w = 0.5;
  let m = 0;
  let v = 0;
  for (const [t, g] of [
    [1, 2],
    [2, -1],
  ] as const) {
    fc.weight.value.grad = Tensor.from([g], [1, 1]);
    opt.step();
    m = 0.9 * m + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    w = w * (1 - 0.1 * 0.01) - (0.1 * (m / (1 - 0.9 ** t))) / (Math.sqrt(v / (1 - 0.999 ** t)) + 1e-8);
    assert.ok(
      Math.abs((fc.weight.value.data[0] as number) - w) < 1e-6,
      `step ${t}: ${fc.weight.value.data[0]} vs ${w}`,
    );
  }
  assert.equal(fc.weight.value.requiresGrad, true);
});
