// setThreads: the count is a positive integer up to a stated limit (each cached op session has its own
// intra-op pool: `--threads 10000` took 2.7 GB and > 90 s), and a new count takes effect at the next op,
// also after sessions were cached (before, cached sessions kept the old count, silently).

import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { after, test } from 'node:test';
import { kernelCacheStats } from '../../../src/kernels/dispatch.js';
import { MAX_THREADS, setThreads, threads } from '../../../src/kernels/ort.js';
import { Tensor } from '../../../src/tensor/index.js';

const initial = threads();
after(() => setThreads(initial));

test('setThreads refuses 0, negative, fractional and non-numbers, naming the value', () => {
  for (const n of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => setThreads(n), new RegExp(`setThreads: .*positive integer.*got ${n}`));
  }
  assert.equal(threads(), initial);
});

test('setThreads refuses counts above the limit (4 × cores, at most 256), naming value and limit', () => {
  assert.equal(MAX_THREADS, Math.min(256, 4 * availableParallelism()));
  for (const n of [MAX_THREADS + 1, 10000]) {
    assert.throws(
      () => setThreads(n),
      (e: Error) => e.message.includes(`got ${n}`) && e.message.includes(`at most ${MAX_THREADS}`),
    );
  }
  setThreads(MAX_THREADS); // the limit itself is allowed
  assert.equal(threads(), MAX_THREADS);
  setThreads(initial);
});

test('setThreads after ops ran: the next op runs in a session with the new count', () => {
  const a = Tensor.from([1, 2, 3, 4], [2, 2]);
  const tasks = () => readdirSync('/proc/self/task').length; // OS threads of this process
  setThreads(1);
  assert.deepEqual(a.matmul(a).toArray(), [7, 10, 15, 22]);
  const built = kernelCacheStats().built;
  const before = process.platform === 'linux' ? tasks() : 0;
  setThreads(3);
  assert.deepEqual(a.matmul(a).toArray(), [7, 10, 15, 22]);
  assert.equal(kernelCacheStats().built, built + 1, 'the cached 1-thread session was used again');
  // a 3-thread session has a pool of 2 worker threads beside the caller's
  if (process.platform === 'linux') assert.ok(tasks() >= before + 2, `threads ${before} → ${tasks()}`);
  // the same count again keeps the cache
  setThreads(3);
  assert.deepEqual(a.matmul(a).toArray(), [7, 10, 15, 22]);
  assert.equal(kernelCacheStats().built, built + 1);
});
