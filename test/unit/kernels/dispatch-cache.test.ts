// The session cache keys inputs by dtype and rank (symbolic dims) or by fixed dims (short int64 vectors):
// the two must never collide, or a session built for one is fed the other.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gather, Tensor } from '../../../src/tensor/index.js';

test('a fixed-dims int64 vector of length 2 and a rank-2 int64 tensor get different sessions', () => {
  const table = Tensor.from([10, 11, 12, 13, 14, 15], [3, 2]);
  // int64 [2]: a short vector, fixed dims
  assert.deepEqual(gather(table, Tensor.int64([2, 0]), 0).toArray(), [14, 15, 10, 11]);
  // int64 [2, 2]: rank 2, symbolic dims
  const out = gather(table, Tensor.int64([0, 1, 2, 1], [2, 2]), 0);
  assert.deepEqual(out.shape, [2, 2, 2]);
  assert.deepEqual(out.toArray(), [10, 11, 12, 13, 14, 15, 12, 13]);
});
