import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Generator, philox4x32, rand, randint, randn } from '../../../src/tensor/random.js';

// Known-answer vectors from Random123's tests/kat_vectors (github.com/DEShawResearch/random123), lines
// "philox4x32 R CTR[4] KEY[2] EXPECTED[4]".
const KAT: [rounds: number, ctr: number[], key: number[], expected: number[]][] = [
  [10, [0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
  [
    10,
    [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    [0xffffffff, 0xffffffff],
    [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
  ],
  [
    10,
    [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
    [0xa4093822, 0x299f31d0],
    [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
  ],
  [7, [0, 0, 0, 0], [0, 0], [0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48]],
  [
    7,
    [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
    [0xffffffff, 0xffffffff],
    [0x5207ddc2, 0x45165e59, 0x4d8ee751, 0x8c52f662],
  ],
  [
    7,
    [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
    [0xa4093822, 0x299f31d0],
    [0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a],
  ],
];

const hex = (ws: readonly number[]) => ws.map((w) => w.toString(16).padStart(8, '0')).join(' ');

test('philox4x32 matches the Random123 known-answer vectors (10 and 7 rounds)', () => {
  for (const [rounds, ctr, key, expected] of KAT) {
    assert.equal(hex(philox4x32(ctr, key, rounds)), hex(expected), `rounds=${rounds} ctr=${hex(ctr)}`);
  }
});

test('philox4x32 rejects malformed counters, keys and round counts', () => {
  assert.throws(() => philox4x32([0, 0, 0], [0, 0]), /counter must be 4 uint32 words/);
  assert.throws(() => philox4x32([0, 0, 0, 2 ** 32], [0, 0]), /counter must be 4 uint32 words/);
  assert.throws(() => philox4x32([0, 0, 0, 0], [-1, 0]), /key must be 2 uint32 words/);
  assert.throws(() => philox4x32([0, 0, 0, 0], [0, 0], 0), /rounds must be an integer in 1\.\.16/);
});

test('Generator: key is the seed, block n uses counter n (little-endian words)', () => {
  const g = new Generator(0);
  assert.equal(hex(Array.from(g.uint32(4))), '6627e8d5 e169c58d bc57ac4c 9b00dbd8');
  assert.equal(g.counter, 1n);
  // seed 0x299f31d0_a4093822 → key [a4093822, 299f31d0]; counter set to the KAT's 128-bit counter
  const h = new Generator(0x299f31d0a4093822n);
  h.counter = 0x03707344_13198a2e_85a308d3_243f6a88n;
  assert.equal(hex(Array.from(h.uint32(4))), 'd16cfe09 94fdcceb 5001e420 24126ea1');
  // all-ones counter and key; the counter then wraps to 0
  const f = new Generator(2n ** 64n - 1n);
  f.counter = 2n ** 128n - 1n;
  assert.equal(hex(Array.from(f.uint32(4))), '408f276d 41c83b0e a20bc7c6 6d5451fd');
  assert.equal(f.counter, 0n);
});

test('Generator: the 128-bit counter carries across words', () => {
  const g = new Generator(7);
  g.counter = 0xffffffffn;
  g.uint32(8);
  assert.equal(g.counter, 0x1_00000001n);
  const expect = philox4x32([0, 1, 0, 0], [7, 0]);
  const h = new Generator(7);
  h.counter = 0x1_00000000n;
  assert.deepEqual(Array.from(h.uint32(4)), expect);
});

test('Generator: each draw starts at a fresh block and uses ceil(words / 4) blocks', () => {
  const g = new Generator(3);
  g.uint32(5); // 2 blocks
  assert.equal(g.counter, 2n);
  g.rand([3]); // 1 block
  assert.equal(g.counter, 3n);
  g.randn([5]); // 6 words → 2 blocks
  assert.equal(g.counter, 5n);
  g.randint([3], 0, 10); // 6 words → 2 blocks
  assert.equal(g.counter, 7n);
  g.rand([0]);
  assert.equal(g.counter, 7n);
});

test('rand: (w >>> 8) · 2^-24 on the first Philox block of seed 0', () => {
  const words = [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8];
  const expected = [0x6627e8 / 2 ** 24, 0xe169c5 / 2 ** 24, 0xbc57ac / 2 ** 24, 0x9b00db / 2 ** 24];
  assert.deepEqual(
    expected,
    words.map((w) => Math.floor(w / 256) / 16777216),
  );
  const t = rand([2, 2], 0);
  assert.equal(t.dtype, 'float32');
  assert.deepEqual(t.shape, [2, 2]);
  assert.deepEqual(t.toArray(), expected);
});

test('randn: Box–Muller on the first Philox block of seed 0', () => {
  const [a, b, c, d] = [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8];
  const bm = (x: number, y: number): [number, number] => {
    const r = Math.sqrt(-2 * Math.log((x + 1) / 2 ** 32));
    return [r * Math.cos((2 * Math.PI * y) / 2 ** 32), r * Math.sin((2 * Math.PI * y) / 2 ** 32)];
  };
  const expected = [...bm(a, b), ...bm(c, d)].map(Math.fround);
  assert.deepEqual(randn([4], 0).toArray(), expected);
  // an odd count drops the sine of the last pair
  assert.deepEqual(randn([3], 0).toArray(), expected.slice(0, 3));
});

test('randint: floor(U64 · range / 2^64) on word pairs, checked with BigInt', () => {
  const words = new Generator(11).uint32(8);
  for (const [low, high] of [
    [0, 10],
    [-5, 5],
    [0, 2 ** 32],
    [-(2 ** 31), 2 ** 31],
    [100, 100 + 0xfffffffb],
  ] as const) {
    const expected: number[] = [];
    for (let i = 0; i < 4; i++) {
      const u = (BigInt(words[2 * i + 1]!) << 32n) | BigInt(words[2 * i]!);
      expected.push(low + Number((u * BigInt(high - low)) >> 64n));
    }
    const dtype = high > 2 ** 31 ? 'int64' : 'int32';
    const t = randint([4], low, high, 11, dtype);
    assert.equal(t.dtype, dtype);
    assert.deepEqual(t.toArray(), expected, `[${low}, ${high})`);
  }
});

test('randint: validates its range', () => {
  const g = new Generator(0);
  assert.throws(() => g.randint([2], 5, 5), /need integers low < high/);
  assert.throws(() => g.randint([2], 0, 2 ** 32 + 1, 'int64'), /at most 2\^32/);
  assert.throws(() => g.randint([2], 0, 2 ** 31 + 1), /does not fit in int32; pass dtype 'int64'/);
});

test('seeds: validation, and number and bigint seeds agree', () => {
  assert.throws(() => new Generator(-1), /seed must be a non-negative integer/);
  assert.throws(() => new Generator(1.5), /seed must be a non-negative integer/);
  assert.throws(() => new Generator(2n ** 64n), /bigint seed must be in \[0, 2\^64\)/);
  assert.deepEqual(randn([10], 12345).toArray(), randn([10], 12345n).toArray());
  assert.notDeepEqual(randn([10], 1).toArray(), randn([10], 2).toArray());
  // seeds above 2^32 use the key's second word
  assert.notDeepEqual(rand([4], 2 ** 32).toArray(), rand([4], 0).toArray());
  assert.throws(() => rand([2, -1], 0), /rand: shape \[2, -1\] must hold non-negative integers/);
});

test('same seed, same bits; replaying the counter replays the stream', () => {
  const g = new Generator(42);
  const first = g.randn([1, 4, 8, 8]);
  const second = g.randn([1, 4, 8, 8]);
  assert.notDeepEqual(first.toArray(), second.toArray());
  g.counter = 0n;
  assert.deepEqual(g.randn([1, 4, 8, 8]).toArray(), first.toArray());
  assert.deepEqual(new Generator(42).randn([1, 4, 8, 8]).toArray(), first.toArray());
});

test('statistics of 1e5 samples: randn mean≈0, std≈1; rand mean≈1/2, var≈1/12; randint counts even', () => {
  const n = 100_000;
  const z = randn([n], 2024).data as Float32Array;
  let s = 0;
  let s2 = 0;
  let s4 = 0;
  for (const v of z) {
    s += v;
    s2 += v * v;
    s4 += v ** 4;
  }
  const mean = s / n;
  const variance = s2 / n - mean * mean;
  // standard errors: mean 1/√n ≈ 0.0032, variance √(2/n) ≈ 0.0045, 4th moment √(96/n) ≈ 0.031
  assert.ok(Math.abs(mean) < 0.015, `randn mean ${mean}`);
  assert.ok(Math.abs(Math.sqrt(variance) - 1) < 0.015, `randn std ${Math.sqrt(variance)}`);
  assert.ok(Math.abs(s4 / n - 3) < 0.15, `randn 4th moment ${s4 / n}`);
  let within1 = 0;
  for (const v of z) if (Math.abs(v) < 1) within1++;
  assert.ok(Math.abs(within1 / n - 0.682689) < 0.006, `P(|z|<1) = ${within1 / n}`);

  const u = rand([n], 2024).data as Float32Array;
  let us = 0;
  let us2 = 0;
  for (const v of u) {
    assert.ok(v >= 0 && v < 1);
    us += v;
    us2 += v * v;
  }
  assert.ok(Math.abs(us / n - 0.5) < 0.005, `rand mean ${us / n}`);
  assert.ok(Math.abs(us2 / n - (us / n) ** 2 - 1 / 12) < 0.002, `rand variance`);

  const k = randint([n], 0, 10, 2024).data as Int32Array;
  const counts = new Array<number>(10).fill(0);
  for (const v of k) counts[v]!++;
  // chi-square with 9 degrees of freedom; 27.9 is the 0.999 quantile
  const chi2 = counts.reduce((acc, c) => acc + (c - n / 10) ** 2 / (n / 10), 0);
  assert.ok(chi2 < 27.9, `randint chi-square ${chi2}, counts ${counts}`);
});
