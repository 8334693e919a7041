// runOp (src/tensor/ops/run.ts): large outputs are written into attnkit-allocated buffers; their values
// are exact (add) or within 1e-5 relative of a float64 loop (matmul), and a wrong output shape fails.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runOp1, Tensor } from '../../../src/tensor/index.js';

test('preallocated outputs: large ops write into attnkit-allocated buffers, with exact values; a wrong shape fails', () => {
  // 2·64·256 = 32768 elements, above the preallocation threshold
  const n = 2 * 64 * 256;
  const a = new Tensor(
    Float32Array.from({ length: n }, (_, i) => (i % 97) * 0.25),
    [2, 64, 256],
  );
  const b = new Tensor(
    Float32Array.from({ length: 256 }, (_, i) => i - 100),
    [256],
  );
  const sum = a.add(b);
  assert.deepEqual(sum.shape, [2, 64, 256]);
  for (let i = 0; i < n; i++) {
    const expected = Math.fround(((i % 97) * 0.25 + ((i % 256) - 100)) as number);
    if (sum.data[i] !== expected) assert.fail(`add at ${i}: ${sum.data[i]} ≠ ${expected}`);
  }
  // matmul (2, 64, 256)·(256, 8): checked against the float64 loop
  const w = new Tensor(
    Float32Array.from({ length: 256 * 8 }, (_, i) => ((i * 7) % 13) / 13 - 0.5),
    [256, 8],
  );
  const y = a.matmul(w);
  assert.deepEqual(y.shape, [2, 64, 8]);
  for (const [r, c] of [
    [0, 0],
    [77, 5],
    [127, 7],
  ] as const) {
    let s = 0;
    for (let k = 0; k < 256; k++) s += (a.data[r * 256 + k] as number) * (w.data[k * 8 + c] as number);
    assert.ok(Math.abs((y.data[r * 8 + c] as number) - s) <= 1e-5 * Math.max(1, Math.abs(s)));
  }
  assert.throws(() => runOp1('Add', [a, a], { shape: [2, 64, 255] }), /Add/);
});
