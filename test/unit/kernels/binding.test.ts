// src/kernels/ort.ts calls onnxruntime-node's internal native binding directly (DESIGN §3). This file
// fails loudly when that binding moves or changes shape, and checks that kernel sessions are cached per
// (op, attributes, dtypes, rank), not per shape.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import * as ortPublic from 'onnxruntime-node';
import { kernelCacheStats } from '../../../src/kernels/dispatch.js';
import { buildModel } from '../../../src/kernels/graph.js';
import { binding, createSession, ORT_VERSION, OrtTensor, runSession } from '../../../src/kernels/ort.js';
import {
  backward,
  concat,
  conv2d,
  cumsum,
  enableGrad,
  gather,
  groupNorm,
  interpolate,
  layerNorm,
  matmul,
  noGrad,
  type Shape,
  softmax,
  split,
  sum,
  Tensor,
  where,
} from '../../../src/tensor/index.js';
import { uniform } from '../../helpers/random.js';

const require = createRequire(import.meta.url);

const addModel = (): Uint8Array =>
  buildModel({
    name: 'add',
    nodes: [{ op: 'Add', inputs: ['a', 'b'], outputs: ['y'] }],
    inputs: [
      { name: 'a', dtype: 'float32', dims: ['n'] },
      { name: 'b', dtype: 'float32', dims: ['n'] },
    ],
    outputs: [{ name: 'y', dtype: 'float32' }],
  });

test('onnxruntime-node and -common are pinned to one exact version, and that version is installed', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const pinned = pkg.dependencies['onnxruntime-node'];
  assert.match(pinned ?? '', /^\d+\.\d+\.\d+$/, `onnxruntime-node must be pinned exactly, got '${pinned}'`);
  assert.equal(
    pkg.dependencies['onnxruntime-common'],
    pinned,
    'onnxruntime-common must match onnxruntime-node',
  );
  assert.equal(ORT_VERSION, pinned, `installed onnxruntime-node ${ORT_VERSION}, package.json pins ${pinned}`);
  assert.equal(ortPublic.env.versions.common, pinned, 'installed onnxruntime-common differs from the pin');
  assert.equal(ortPublic.env.versions.node, pinned);
});

test('the native binding is at onnxruntime-node/dist/binding with the API ort.ts uses', () => {
  const mod = require('onnxruntime-node/dist/binding') as { binding?: Record<string, unknown> };
  const raw = mod.binding;
  assert.ok(raw, `onnxruntime-node ${ORT_VERSION}: dist/binding no longer exports 'binding'`);
  assert.equal(typeof raw.InferenceSession, 'function', 'binding.InferenceSession is not a constructor');
  assert.equal(typeof raw.initOrtOnce, 'function', 'binding.initOrtOnce is missing');
  const proto = (raw.InferenceSession as { prototype: object }).prototype;
  for (const name of ['loadModel', 'run', 'dispose']) {
    assert.equal(typeof Reflect.get(proto, name), 'function', `binding.InferenceSession#${name} is missing`);
  }
  for (const name of ['inputMetadata', 'outputMetadata']) {
    assert.ok(Reflect.has(proto, name), `binding.InferenceSession#${name} is missing`);
  }
  // ort.ts hands out that same object
  assert.equal(binding(), raw);
});

test('a native session loads from (buffer, offset, length, options) and runs synchronously', () => {
  // place the model bytes at an offset inside a larger buffer: the 4-argument loadModel must honour it
  const bytes = addModel();
  const padded = new Uint8Array(bytes.length + 24);
  padded.set(bytes, 13);
  const session = createSession(padded.subarray(13, 13 + bytes.length));
  assert.deepEqual(
    session.inputMetadata.map((m) => m.name),
    ['a', 'b'],
  );
  assert.deepEqual(
    session.outputMetadata.map((m) => m.name),
    ['y'],
  );
  const a = new OrtTensor('float32', Float32Array.of(1, 2, 3), [3]);
  const b = new OrtTensor('float32', Float32Array.of(10, 20, 30), [3]);
  const raw = session.run({ a, b }, { y: null }, {});
  assert.ok(
    !(raw instanceof Promise) && typeof (raw as { then?: unknown }).then !== 'function',
    'run must be sync',
  );
  const [y] = runSession(session, { a, b }, ['y']) as [OrtTensor];
  assert.ok(y instanceof OrtTensor, 'outputs must be onnxruntime-common Tensors (initOrtOnce constructor)');
  assert.deepEqual(y.dims, [3]);
  assert.deepEqual(Array.from(y.data as Float32Array), [11, 22, 33]);
  // a different length through the same session (symbolic dims)
  const [y2] = runSession(
    session,
    {
      a: new OrtTensor('float32', Float32Array.of(1), [1]),
      b: new OrtTensor('float32', Float32Array.of(2), [1]),
    },
    ['y'],
  ) as [OrtTensor];
  assert.deepEqual(Array.from(y2.data as Float32Array), [3]);
  session.dispose();
});

test('the native binding agrees with the public async InferenceSession', async () => {
  const session = await ortPublic.InferenceSession.create(addModel());
  const out = await session.run({
    a: new ortPublic.Tensor('float32', Float32Array.of(0.5, -1), [2]),
    b: new ortPublic.Tensor('float32', Float32Array.of(2, 4), [2]),
  });
  assert.deepEqual(Array.from(out.y?.data as Float32Array), [2.5, 3]);
  await session.release();
});

test('errors from the native binding surface as exceptions', () => {
  assert.throws(() => createSession(Uint8Array.of(1, 2, 3, 4)));
  const session = createSession(addModel());
  const a = new OrtTensor('float32', Float32Array.of(1, 2), [2]);
  assert.throws(() =>
    runSession(session, { a, b: new OrtTensor('float32', Float32Array.of(1, 2, 3), [3]) }, ['y']),
  );
  session.dispose();
});

/** Runs `op` at the first shape set, then asserts that the other shape sets build no new session. */
function assertCached(name: string, op: (...xs: Tensor[]) => unknown, shapeSets: Shape[][]): void {
  noGrad(() => op(...(shapeSets[0] as Shape[]).map((s, i) => uniform(s, i))));
  const before = kernelCacheStats();
  for (const shapes of shapeSets.slice(1)) {
    noGrad(() => op(...shapes.map((s, i) => uniform(s, 10 + i))));
    assert.equal(
      kernelCacheStats().built,
      before.built,
      `${name} at shapes ${JSON.stringify(shapes)} built a new session (first run at ${JSON.stringify(shapeSets[0])})`,
    );
  }
}

test('kernel sessions are cached: the same op at a new shape of the same rank builds no session', () => {
  assertCached('add', (a, b) => a.add(b as Tensor), [
    [
      [2, 3],
      [2, 3],
    ],
    [
      [5, 7],
      [5, 7],
    ],
    [
      [4, 1],
      [1, 6],
    ],
  ]);
  assertCached('matmul', (a, b) => a.matmul(b as Tensor), [
    [
      [2, 3, 4],
      [2, 4, 5],
    ],
    [
      [7, 8, 2],
      [7, 2, 9],
    ],
  ]);
  assertCached('matmul transB α', (a, b) => matmul(a, b as Tensor, { transB: true, alpha: 0.5 }), [
    [
      [3, 4],
      [5, 4],
    ],
    [
      [6, 2],
      [1, 2],
    ],
  ]);
  assertCached('softmax', (a) => softmax(a), [[[2, 3, 4]], [[1, 9, 16]]]);
  assertCached('sum over axis 1', (a) => sum(a, { axes: 1 }), [[[2, 3, 4]], [[5, 1, 6]]]);
  assertCached('conv2d', (x, w) => conv2d(x, w as Tensor, null, { stride: 2, padding: 1 }), [
    [
      [1, 3, 8, 8],
      [4, 3, 3, 3],
    ],
    [
      [2, 5, 11, 6],
      [2, 5, 3, 3],
    ],
  ]);
  assertCached(
    'groupNorm',
    (x) => groupNorm(x, 2, Tensor.ones([x.shape[1] as number]), Tensor.zeros([x.shape[1] as number])),
    [[[1, 4, 3, 3]], [[2, 6, 5, 2]]],
  );
  assertCached('layerNorm', (x) => layerNorm(x, null, null), [[[2, 3, 8]], [[4, 1, 5]]]);
  assertCached('interpolate', (x) => interpolate(x, { scale: 2 }), [[[1, 2, 3, 3]], [[2, 1, 5, 4]]]);
  assertCached('bilinear', (x) => interpolate(x, { size: [7, 5], mode: 'bilinear' }), [
    [[1, 2, 3, 3]],
    [[2, 1, 5, 4]],
  ]);
  assertCached('slice', (x) => x.slice(1, 1, 3), [[[2, 5]], [[4, 9]]]);
  assertCached('pad', (x) => x.pad([0, 1, 0, 2]), [[[2, 5]], [[4, 9]]]);
  assertCached('transpose', (x) => x.transpose(), [[[2, 5, 3]], [[4, 9, 1]]]);
  assertCached('expand', (x) => x.expand([x.shape[0] as number, 4, 6]), [[[2, 1, 6]], [[3, 1, 6]]]);
  assertCached('concat', (a, b) => concat([a, b as Tensor], 1), [
    [
      [2, 3],
      [2, 4],
    ],
    [
      [5, 1],
      [5, 7],
    ],
  ]);
  assertCached('split', (x) => split(x, [1, (x.shape[0] as number) - 1], 0), [[[3, 2]], [[6, 5]]]);
  assertCached('gather', (x) => gather(x, Tensor.int64([0, 1, 0]), 0), [[[2, 5]], [[4, 9]]]);
  assertCached('cumsum', (x) => cumsum(x, 0), [[[2, 5]], [[4, 9]]]);
  assertCached('where', (a, b) => where(a.gt(0), a, b as Tensor), [
    [
      [2, 5],
      [2, 5],
    ],
    [
      [4, 9],
      [1, 9],
    ],
  ]);
});

test('a new rank or new attributes build a new session; rerunning a backward pass builds none', () => {
  const x = uniform([2, 3], 1);
  noGrad(() => x.mul(x));
  let before = kernelCacheStats().built;
  noGrad(() => uniform([2, 3, 4], 2).mul(uniform([2, 3, 4], 3)));
  assert.equal(kernelCacheStats().built, before + 1, 'a rank-3 Mul needs its own session');
  before = kernelCacheStats().built;
  noGrad(() => softmax(uniform([2, 3, 4], 4), 0));
  noGrad(() => softmax(uniform([2, 3, 4], 4), 1));
  assert.equal(kernelCacheStats().built, before + 2, 'softmax over a different axis is a different kernel');
  // the gradient of a conv at one shape, then at another: the second builds nothing (both shapes leave the
  // same remainder rows, so ConvTranspose's output_padding attribute — one of 0…stride−1 — is the same)
  const convGrad = (shape: Shape): void => {
    const w = uniform([4, 2, 3, 3], 5).requireGrad();
    enableGrad(() =>
      backward(conv2d(uniform(shape, 6).requireGrad(), w, null, { stride: 2, padding: 1 }).sum()),
    );
    assert.deepEqual(w.grad?.shape, [4, 2, 3, 3]);
  };
  convGrad([1, 2, 6, 6]);
  before = kernelCacheStats().built;
  convGrad([3, 2, 8, 10]);
  assert.equal(kernelCacheStats().built, before, 'a conv2d backward pass at a new shape built new sessions');
});
