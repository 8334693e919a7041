// Function-level methods against independent numbers: chunked and sliced attention equal the softmax
// reference (and a float64 loop) within 1e-5; linear, agent and window attention match small cases
// computed here by hand from their definitions.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AttentionCall,
  AttentionFunctions,
  type AttentionInputs,
  flashAttention,
  softmaxAttention,
} from '../../../src/attention/index.js';
import {
  agentAttention,
  builtInAttentionFunctions,
  chunkedAttention,
  linearAttention,
  poolingMatrix,
  slicedAttention,
  windowAttention,
} from '../../../src/methods/function/index.js';
import { Tensor } from '../../../src/tensor/index.js';
import { uniform } from '../../helpers/random.js';
import { assertClose } from '../../helpers/tolerance.js';

type Mat = number[][];

/** Row i of (B, H, T, d) tensor slice [b, h] as plain arrays. */
function rows(x: Tensor, b: number, h: number): Mat {
  const [, H, T, d] = x.shape as [number, number, number, number];
  const base = (b * H + h) * T * d;
  return Array.from({ length: T }, (_, t) =>
    Array.from({ length: d }, (_, j) => x.data[base + t * d + j] as number),
  );
}

/** Naive float64 attention with weights w(i, j) = exp(logit) over the keys `allowed(i)`. */
function naive(
  q: Mat,
  k: Mat,
  v: Mat,
  scale: number,
  allowed: (i: number) => number[] = () => k.map((_, j) => j),
): Mat {
  return q.map((qi, i) => {
    const js = allowed(i);
    const logits = js.map((j) => scale * qi.reduce((s, x, c) => s + x * (k[j] as number[])[c]!, 0));
    const m = Math.max(...logits);
    const e = logits.map((l) => Math.exp(l - m));
    const z = e.reduce((a, b) => a + b, 0);
    return (v[0] as number[]).map((_, c) =>
      js.reduce((s, j, n) => s + (e[n]! / z) * (v[j] as number[])[c]!, 0),
    );
  });
}

function naiveAll(a: AttentionInputs, allowed?: (i: number) => number[]): number[] {
  const [B, H] = a.q.shape as [number, number];
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      out.push(...naive(rows(a.q, b, h), rows(a.k, b, h), rows(a.v, b, h), a.scale, allowed).flat());
  return out;
}

function inputs(
  b: number,
  h: number,
  tq: number,
  tk: number,
  d: number,
  seed: number,
  amp = 1,
): AttentionInputs {
  return {
    q: uniform([b, h, tq, d], seed, -amp, amp),
    k: uniform([b, h, tk, d], seed + 1, -amp, amp),
    v: uniform([b, h, tk, d + 1], seed + 2),
    scale: 1 / Math.sqrt(d),
  };
}

function call(
  size: [number, number] | undefined,
  tokens: number,
  kind: 'self' | 'cross' = 'self',
): AttentionCall {
  return {
    path: 'test.attn1',
    kind,
    place: 'down',
    index: 0,
    step: 0,
    numSteps: 1,
    timestep: 0,
    batch: { guidance: ['cond'], prompt: [0] },
    size,
    heads: 1,
    headDim: 2,
    queryTokens: tokens,
    keyTokens: tokens,
  };
}

test('chunked attention equals a float64 loop and the reference on hand-sized tensors, every tiling', () => {
  const a = inputs(2, 3, 11, 7, 4, 1, 3);
  const ref = softmaxAttention.run(a);
  const expected = { shape: ref.shape, data: naiveAll(a) };
  for (const o of [
    { queryChunkSize: 1, keyChunkSize: 1 },
    { queryChunkSize: 4, keyChunkSize: 3 },
    { keyChunkSize: 7 },
    {},
  ]) {
    const y = chunkedAttention(o).run(a);
    assertClose(y, expected, { atol: 1e-5, rtol: 0, label: JSON.stringify(o) });
    assertClose(y, ref, { atol: 1e-5, rtol: 0, label: JSON.stringify(o) });
  }
});

test('chunked attention applies an additive bias tile by tile (causal mask)', () => {
  const a = inputs(1, 2, 6, 6, 3, 4);
  const causal = Tensor.from(
    Array.from({ length: 36 }, (_, i) => (i % 6 > Math.floor(i / 6) ? -Infinity : 0)),
    [6, 6],
  );
  const ref = softmaxAttention.run({ ...a, bias: causal });
  const expected = naiveAll(a, (i) => Array.from({ length: i + 1 }, (_, j) => j));
  assertClose(ref, { shape: ref.shape, data: expected }, { atol: 1e-5, rtol: 0 });
  assertClose(chunkedAttention({ queryChunkSize: 4, keyChunkSize: 4 }).run({ ...a, bias: causal }), ref, {
    atol: 1e-5,
    rtol: 0,
  });
});

test('flash, chunked and sliced attention equal the reference within 1e-5 on 1024 tokens', () => {
  const a = inputs(1, 4, 1024, 1024, 40, 7, 2);
  const ref = softmaxAttention.run(a);
  assertClose(chunkedAttention({ queryChunkSize: 256, keyChunkSize: 384 }).run(a), ref, {
    atol: 1e-5,
    rtol: 0,
  });
  assertClose(chunkedAttention().run(a), ref, { atol: 1e-5, rtol: 0 });
  assertClose(slicedAttention({ sliceSize: 3 }).run(a), ref, { atol: 1e-5, rtol: 0 });
  assertClose(flashAttention.run(a), ref, { atol: 1e-5, rtol: 0 });
});

test('sliced attention equals a float64 loop for every slice size', () => {
  const a = inputs(2, 3, 5, 9, 4, 11, 2);
  const expected = { shape: [2, 3, 5, 5], data: naiveAll(a) };
  for (const sliceSize of [1, 2, 4, 6, 'auto', 'max'] as const) {
    assertClose(slicedAttention({ sliceSize }).run(a), expected, {
      atol: 1e-5,
      rtol: 0,
      label: String(sliceSize),
    });
  }
  assert.throws(() => slicedAttention({ sliceSize: 0 }), /sliceSize must be a positive integer/);
});

test('linear attention matches a hand-computed case (elu + 1 and relu feature maps)', () => {
  // one head, q = [[1, -1]], k = [[0, 2], [-1, 1]], v = [[1], [3]]
  const q = Tensor.from([1, -1], [1, 1, 1, 2]);
  const k = Tensor.from([0, 2, -1, 1], [1, 1, 2, 2]);
  const v = Tensor.from([1, 3], [1, 1, 2, 1]);
  // elu+1: φ(q) = [2, e⁻¹], φ(k₁) = [1, 3], φ(k₂) = [e⁻¹, 2]
  const e = Math.exp(-1);
  const s1 = 2 * 1 + e * 3;
  const s2 = 2 * e + e * 2;
  const elu = (s1 * 1 + s2 * 3) / (s1 + s2);
  assertClose(linearAttention({ featureMap: 'elu' }).run({ q, k, v, scale: 1 }), [elu], {
    atol: 1e-6,
    rtol: 0,
  });
  // relu: φ(q) = [1, 0], φ(k₁) = [0, 2], φ(k₂) = [0, 1] → every similarity 0: the output is 0 / (0 + eps)
  assertClose(linearAttention({ featureMap: 'relu' }).run({ q, k, v, scale: 1 }), [0], {
    atol: 1e-6,
    rtol: 0,
  });
  // relu with q = [1, 1]: similarities 2 and 1 → (2·1 + 1·3) / 3
  const q2 = Tensor.from([1, 1], [1, 1, 1, 2]);
  assertClose(linearAttention({ featureMap: 'relu' }).run({ q: q2, k, v, scale: 1 }), [5 / 3], {
    atol: 1e-6,
    rtol: 0,
  });
});

test('pooling matrix: adaptive average pooling bins of a 3×4 grid to 2×2', () => {
  const p = poolingMatrix(3, 4, 2, 2);
  // rows [0, 2) and [1, 3); columns [0, 2) and [2, 4): every cell averages 2×2 tokens
  const cell00 = [0, 1, 4, 5];
  const row0 = Array.from({ length: 12 }, (_, i) => (cell00.includes(i) ? 0.25 : 0));
  assert.deepEqual(p.toArray().slice(0, 12), row0);
  const cell11 = [6, 7, 10, 11];
  assert.deepEqual(
    p.toArray().slice(36, 48),
    Array.from({ length: 12 }, (_, i) => (cell11.includes(i) ? 0.25 : 0)),
  );
});

test('agent attention with one agent: every query gets softmax(mean(Q)·Kᵀ)·V (+ kShortcut·V)', () => {
  const a = inputs(1, 2, 4, 4, 3, 21);
  const fn = agentAttention({ agentNum: 1, kShortcut: 0.5 })(call([2, 2], 4));
  assert.ok(fn);
  const y = fn.run(a);
  const expected: number[] = [];
  for (let h = 0; h < 2; h++) {
    const q = rows(a.q, 0, h);
    const mean = q[0]!.map((_, c) => q.reduce((s, r) => s + r[c]!, 0) / 4);
    const agentV = naive([mean], rows(a.k, 0, h), rows(a.v, 0, h), a.scale)[0]!;
    for (const vt of rows(a.v, 0, h)) expected.push(...agentV.map((x, c) => x + 0.5 * vt[c]!));
  }
  assertClose(y, { shape: y.shape, data: expected }, { atol: 1e-5, rtol: 0 });
});

test('agent attention with 2×2 agents on a 4×4 grid matches the two-softmax definition', () => {
  const a = inputs(1, 1, 16, 16, 2, 31, 2);
  const fn = agentAttention({ agentNum: 4, kScale2: 0.3, kShortcut: 0.075 })(call([4, 4], 16));
  assert.ok(fn);
  const q = rows(a.q, 0, 0);
  const k = rows(a.k, 0, 0);
  const v = rows(a.v, 0, 0);
  const agents = [0, 1, 2, 3].map((cell) => {
    const [cy, cx] = [Math.floor(cell / 2) * 2, (cell % 2) * 2];
    const members = [0, 1].flatMap((dy) => [0, 1].map((dx) => (cy + dy) * 4 + cx + dx));
    return q[0]!.map((_, c) => members.reduce((s, t) => s + q[t]![c]!, 0) / 4);
  });
  const agentV = naive(agents, k, v, a.scale);
  const broadcast = naive(q, agents, agentV, a.scale ** 0.3);
  const expected = broadcast.flatMap((row, t) => row.map((x, c) => x + 0.075 * v[t]![c]!));
  assertClose(fn.run(a), { shape: [1, 1, 16, 3], data: expected }, { atol: 1e-5, rtol: 0 });
});

test('agent attention stays off where it does not apply', () => {
  const make = agentAttention({ agentNum: 8 });
  assert.equal(make(call([4, 4], 16)), undefined, '8 agents for 16 tokens is not fewer than half');
  assert.equal(make(call(undefined, 16)), undefined, 'no grid');
  assert.equal(make(call([8, 8], 64, 'cross')), undefined, 'cross-attention');
  assert.equal(make({ ...call([8, 8], 64), queryTokens: 32 }), undefined, 'merged tokens are not a grid');
  assert.ok(make(call([8, 8], 64)));
});

test('window attention: one window is full attention, 1×1 windows return V', () => {
  const a = inputs(2, 2, 12, 12, 3, 41);
  const full = windowAttention({ windowSize: [3, 4] })(call([3, 4], 12));
  assertClose(full!.run(a), softmaxAttention.run(a), { atol: 1e-6, rtol: 0 });
  const single = windowAttention({ windowSize: 1 })(call([3, 4], 12));
  assertClose(single!.run(a), a.v, { atol: 1e-6, rtol: 0 });
});

test('window attention on a 5×3 grid with 2×2 windows (padded) matches per-window softmax', () => {
  const a = inputs(1, 2, 15, 15, 3, 51);
  const fn = windowAttention({ windowSize: 2 })(call([5, 3], 15));
  const windowOf = (t: number) => `${Math.floor(Math.floor(t / 3) / 2)},${Math.floor((t % 3) / 2)}`;
  const allowed = (i: number) =>
    Array.from({ length: 15 }, (_, j) => j).filter((j) => windowOf(j) === windowOf(i));
  assertClose(fn!.run(a), { shape: [1, 2, 15, 4], data: naiveAll(a, allowed) }, { atol: 1e-5, rtol: 0 });
  assert.equal(windowAttention()(call([4, 4], 16, 'cross')), undefined);
});

test('attention functions by name: a registry built from a list, one per caller, nothing registered globally', () => {
  const builtIn = builtInAttentionFunctions();
  assert.deepEqual(builtIn.names, ['softmax', 'flash', 'chunked', 'sliced', 'linear-elu', 'linear-relu']);
  assert.equal(builtIn.get('softmax'), softmaxAttention);
  assert.equal(builtIn.get('linear-relu').name, 'linear-relu');
  assert.throws(
    () => builtIn.get('window'),
    /unknown attention function 'window'; known: softmax, flash, chunked/,
  );

  const mine = new AttentionFunctions([
    softmaxAttention,
    { ...chunkedAttention({ queryChunkSize: 2 }), name: 'tiny' },
  ]);
  assert.deepEqual(mine.names, ['softmax', 'tiny']);
  assert.ok(!builtInAttentionFunctions().has('tiny'), 'another registry does not see it');
  assert.throws(() => new AttentionFunctions([flashAttention, flashAttention]), /'flash' is listed twice/);
});
