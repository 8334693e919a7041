// Bad input fails early with a message that names the op and the shapes involved (DESIGN §6), before any
// kernel runs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  argmax,
  backward,
  concat,
  conv2d,
  convTranspose2d,
  cumsum,
  enableGrad,
  gather,
  groupNorm,
  indexSelect,
  interpolate,
  layerNorm,
  linear,
  matmul,
  maximum,
  softmax,
  Tensor,
  where,
} from '../../../src/tensor/index.js';

/** Asserts that `fn` throws an Error whose message starts with `op:` and contains every fragment. */
function throwsNaming(fn: () => unknown, op: string, ...fragments: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof Error, `expected an Error, got ${String(e)}`);
    assert.ok(e.message.startsWith(`${op}: `), `message should name ${op}: ${e.message}`);
    for (const f of fragments)
      assert.ok(e.message.includes(f), `message should contain '${f}': ${e.message}`);
    return true;
  });
}

const a23 = Tensor.zeros([2, 3]);
const b45 = Tensor.zeros([4, 5]);

test('incompatible shapes name the op and both shapes', () => {
  throwsNaming(() => a23.add(b45), 'add', '[2, 3]', '[4, 5]');
  throwsNaming(() => a23.sub(Tensor.zeros([2])), 'sub', '[2, 3]', '[2]');
  throwsNaming(() => a23.mul(Tensor.zeros([3, 3])), 'mul', '[2, 3]', '[3, 3]');
  throwsNaming(() => a23.div(Tensor.zeros([2, 1, 4])), 'div', '[2, 3]', '[2, 1, 4]');
  throwsNaming(() => a23.pow(b45), 'pow', '[2, 3]', '[4, 5]');
  throwsNaming(() => maximum(a23, b45), 'maximum', '[2, 3]', '[4, 5]');
  throwsNaming(() => a23.minimum(b45), 'minimum', '[2, 3]', '[4, 5]');
  throwsNaming(() => a23.lt(b45), 'lt', '[2, 3]', '[4, 5]');
  throwsNaming(() => a23.gt(0).and(b45.gt(0)), 'and', '[2, 3]', '[4, 5]');
  throwsNaming(() => where(Tensor.bool([1, 0, 1, 1]), a23, 0), 'where', '[4]', '[2, 3]');
  throwsNaming(() => where(Tensor.bool([1, 0, 1]), a23, b45), 'where', '[2, 3]', '[4, 5]');
  throwsNaming(() => a23.expand([2, 4]), 'expand', '[2, 3]', '[2, 4]');
  throwsNaming(() => a23.expand([3]), 'expand', '[2, 3]', '[3]');
});

test('matmul and linear name both shapes when they do not fit', () => {
  throwsNaming(() => a23.matmul(Tensor.zeros([4, 2])), 'matmul', '[2, 3]', '[4, 2]', '3 vs 4');
  throwsNaming(() => matmul(a23, Tensor.zeros([3, 3]), { transA: true }), 'matmul', '[2, 3]ᵀ', '2 vs 3');
  throwsNaming(() => matmul(a23, b45, { transB: true }), 'matmul', '[4, 5]ᵀ', '3 vs 5');
  throwsNaming(
    () => Tensor.zeros([2, 2, 3]).matmul(Tensor.zeros([3, 3, 2])),
    'matmul',
    '[2, 2, 3]',
    '[3, 3, 2]',
  );
  throwsNaming(() => Tensor.zeros([3]).matmul(a23), 'matmul', '[3]', '[2, 3]');
  throwsNaming(() => linear(a23, b45), 'linear', '[2, 3]', '[4, 5]');
  throwsNaming(() => a23.matmul(Tensor.zeros([3, 2], 'int64')), 'matmul', 'float32');
});

test('dtype mismatches are reported, not coerced', () => {
  throwsNaming(() => a23.add(Tensor.zeros([2, 3], 'int64')), 'add', 'float32', 'int64');
  throwsNaming(() => where(a23, a23, a23), 'where', 'bool', 'float32');
  throwsNaming(() => concat([a23, Tensor.zeros([2, 3], 'int64')]), 'concat', 'float32', 'int64');
});

test('reshape to a wrong size names both shapes', () => {
  throwsNaming(() => a23.reshape([4, 2]), 'reshape', '[2, 3]', '[4, 2]');
  throwsNaming(() => a23.reshape([4, -1]), 'reshape', '[2, 3]', '[4, -1]');
  throwsNaming(() => a23.reshape([-1, -1]), 'reshape', '[-1, -1]');
  throwsNaming(() => a23.reshape([7]), 'reshape', '[2, 3]', '[7]');
  throwsNaming(() => a23.squeeze(0), 'squeeze', '[2, 3]');
  assert.throws(
    () => new Tensor(new Float32Array(5), [2, 3]),
    /Tensor: data has 5 elements but shape \[2, 3\]/,
  );
});

test('an axis out of range names the op, the axis and the rank', () => {
  throwsNaming(() => a23.sum({ axes: 2 }), 'sum', 'axis 2', 'rank 2');
  throwsNaming(() => a23.mean({ axes: [0, -3] }), 'mean', 'axis -3', 'rank 2');
  throwsNaming(() => a23.max({ axes: 5 }), 'max', 'axis 5');
  throwsNaming(() => argmax(a23, 2), 'argmax', 'axis 2');
  throwsNaming(() => softmax(a23, -3), 'softmax', 'axis -3', 'rank 2');
  throwsNaming(() => a23.slice(2, 0, 1), 'slice', 'axis 2');
  throwsNaming(() => concat([a23, a23], 2), 'concat', 'axis 2');
  throwsNaming(() => a23.split(2, 3), 'split', 'axis 3');
  throwsNaming(() => cumsum(a23, 3), 'cumsum', 'axis 3');
  throwsNaming(() => a23.transpose(0, 2), 'transpose', 'axis 2');
  throwsNaming(() => a23.unsqueeze(4), 'unsqueeze', 'axis 4');
  throwsNaming(() => a23.permute([0, 0]), 'permute', '[0,0]', '[2, 3]');
  throwsNaming(() => a23.permute([1, 0, 2]), 'permute', '[2, 3]');
  throwsNaming(() => gather(a23, Tensor.int64([0]), 2), 'gather', 'axis 2');
});

test('conv2d and convTranspose2d reject a channel mismatch naming input and weight', () => {
  throwsNaming(
    () => conv2d(Tensor.zeros([1, 3, 5, 5]), Tensor.zeros([2, 4, 3, 3])),
    'conv2d',
    '[1, 3, 5, 5]',
    '[2, 4, 3, 3]',
  );
  throwsNaming(
    () => conv2d(Tensor.zeros([1, 4, 5, 5]), Tensor.zeros([3, 2, 3, 3]), null, { groups: 2 }),
    'conv2d',
    '[1, 4, 5, 5]',
    '[3, 2, 3, 3]',
  );
  throwsNaming(() => conv2d(Tensor.zeros([3, 5, 5]), Tensor.zeros([2, 3, 3, 3])), 'conv2d', '[3, 5, 5]');
  throwsNaming(
    () => conv2d(Tensor.zeros([1, 3, 2, 2]), Tensor.zeros([2, 3, 3, 3])),
    'conv2d',
    '3×3',
    '[1, 3, 2, 2]',
  );
  throwsNaming(
    () => conv2d(Tensor.zeros([1, 3, 5, 5]), Tensor.zeros([2, 3, 3, 3]), Tensor.zeros([3])),
    'conv2d',
    'bias [3]',
  );
  throwsNaming(
    () => convTranspose2d(Tensor.zeros([1, 3, 5, 5]), Tensor.zeros([2, 3, 3, 3])),
    'convTranspose2d',
    '[1, 3, 5, 5]',
    '[2, 3, 3, 3]',
  );
});

test('gather rejects indices out of range, naming the index and the axis size', () => {
  throwsNaming(() => gather(a23, Tensor.int64([0, 2]), 0), 'gather', 'index 2', 'size 2');
  throwsNaming(() => gather(a23, Tensor.int64([-4]), 1), 'gather', 'index -4', 'size 3');
  throwsNaming(() => indexSelect(a23, 1, [0, 3]), 'gather', 'index 3', 'size 3');
  throwsNaming(() => gather(a23, Tensor.from([0]), 0), 'gather', 'float32');
});

test('concat, split and pad reject mismatched pieces', () => {
  throwsNaming(() => concat([a23, Tensor.zeros([3, 3])], 1), 'concat', '[2, 3]', '[3, 3]', 'axis 1');
  throwsNaming(() => concat([a23, Tensor.zeros([2, 3, 1])], 0), 'concat', '[2, 3]', '[2, 3, 1]');
  throwsNaming(() => concat([], 0), 'concat');
  throwsNaming(() => a23.split([1, 1], 1), 'split', '[2, 3]');
  throwsNaming(() => a23.split(2, 1), 'split', '[2, 3]');
  throwsNaming(() => a23.pad([1, 1]), 'pad', '[2, 3]');
});

test('normalisations and interpolate validate their inputs', () => {
  const x = Tensor.zeros([1, 6, 2, 2]);
  throwsNaming(
    () => groupNorm(x, 4, Tensor.ones([6]), Tensor.zeros([6])),
    'groupNorm',
    '6 channels',
    '4 groups',
  );
  throwsNaming(() => groupNorm(x, 3, Tensor.ones([5]), Tensor.zeros([6])), 'groupNorm', '5', '6 channels');
  // both the fused path (no gradient) and the recorded path must reject a wrong weight
  throwsNaming(() => layerNorm(a23, Tensor.ones([4]), null), 'layerNorm', '[4]', '[2, 3]');
  throwsNaming(
    () => enableGrad(() => layerNorm(a23.detach().requireGrad(), Tensor.ones([4]), null)),
    'layerNorm',
    '[4]',
  );
  throwsNaming(() => layerNorm(a23, Tensor.ones([3]), Tensor.ones([2])), 'layerNorm', 'bias [2]');
  throwsNaming(() => layerNorm(a23, null, null, 1e-5, 3), 'layerNorm', '[2, 3]');
  throwsNaming(() => interpolate(a23, { scale: 2 }), 'interpolate', '[2, 3]');
});

test('backward explains what is missing', () => {
  const x = Tensor.from([1, 2]).requireGrad();
  assert.throws(
    () => backward(enableGrad(() => x.mul(2))),
    /backward: expected a scalar loss, got shape \[2\]/,
  );
  assert.throws(() => backward(Tensor.from([1]).sum()), /backward: .*requiresGrad/);
  assert.throws(
    () =>
      backward(enableGrad(() => interpolate(x.reshape([1, 1, 1, 2]), { scale: 2, mode: 'bilinear' }).sum())),
    /interpolate: gradient is implemented for nearest mode/,
  );
  assert.throws(
    () => backward(enableGrad(() => x.slice(0, -1, undefined, -1).sum())),
    /slice: gradient of a negative-step slice/,
  );
});
