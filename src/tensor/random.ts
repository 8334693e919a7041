// Seeded random numbers from the Philox4x32-10 counter-based generator (Salmon, Moraes, Dror & Shaw,
// "Parallel Random Numbers: As Easy as 1, 2, 3", SC 2011; the Random123 library).
//
// Philox maps a 128-bit counter and a 64-bit key to 128 random bits with ten rounds of 32×32→64-bit
// multiplies and xors. Everything here is integer math (Math.imul and 16-bit splits), so a seed gives the
// same 32-bit words on every machine. The stream of a `Generator` is fully specified:
//
//   key     = [seed mod 2^32, floor(seed / 2^32)]               (a 64-bit seed)
//   counter = the block index n as a 128-bit little-endian word vector [n₀, n₁, n₂, n₃], starting at 0
//   block n = philox4x32_10(counter, key) → four uint32 words w₀ w₁ w₂ w₃
//
// Each draw (`uint32`, `rand`, `randn`, `randint`) starts at a fresh block and consumes ⌈words / 4⌉ blocks,
// so a draw of n values is the same whatever came before it, given the generator's `counter`. Words map to
// values as follows:
//
//   uint32   w                                   — the raw words, in block order
//   rand     (w >>> 8) · 2^-24                   — float32 in [0, 1), exact, 24 random bits, 1 word each
//   randn    Box–Muller on word pairs (a, b):  u = (a + 1) · 2^-32 ∈ (0, 1],  v = b · 2^-32 ∈ [0, 1),
//            r = √(−2 ln u);  z₀ = r cos 2πv,  z₁ = r sin 2πv  (float64, then rounded to float32)
//   randint  low + ⌊(hi · 2^32 + lo) · (high − low) / 2^64⌋  on word pairs (lo, hi)  — bias ≤ 2^-32
//
// `rand`, `randint` and `uint32` are bit-exact everywhere. `randn` uses Math.log/cos/sin; V8 implements
// these with its own port of fdlibm rather than the platform's libm, so Node gives the same bits on every
// machine, but another JavaScript engine may differ in the last bit.

import { formatShape, type Shape, sizeOf, Tensor } from './tensor.js';

/** Philox4x32 multipliers and Weyl key increments (Random123 `philox.h`). */
const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

const TWO_POW_32 = 2 ** 32;
const TWO_POW_M24 = 2 ** -24;
const TWO_POW_M32 = 2 ** -32;

/** High 32 bits of the 64-bit product of two uint32s, exactly, in double arithmetic on 16-bit halves. */
function mulhi32(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const hilo = ah * bl; // < 2^32
  const cross = ((al * bl) >>> 16) + (hilo & 0xffff) + al * bh; // < 2^33, exact
  return (ah * bh + (hilo >>> 16) + Math.floor(cross / 65536)) >>> 0;
}

/**
 * One Philox4x32 block: writes the four output words for `counter` (c0..c3) and `key` (k0, k1) into
 * `out[at..at+3]`. `rounds` = 10 is Philox4x32-10.
 */
function philoxBlock(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  rounds: number,
  out: Uint32Array,
  at: number,
): void {
  for (let r = 0; r < rounds; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi32(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi32(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[at] = c0;
  out[at + 1] = c1;
  out[at + 2] = c2;
  out[at + 3] = c3;
}

function isUint32(x: number): boolean {
  return Number.isInteger(x) && x >= 0 && x < TWO_POW_32;
}

/**
 * The Philox4x32-R bijection on one block: `counter` (4 uint32 words) and `key` (2 uint32 words) → 4 uint32
 * words. With the default 10 rounds this is Philox4x32-10 and matches Random123's known-answer vectors.
 */
export function philox4x32(
  counter: readonly number[],
  key: readonly number[],
  rounds = 10,
): [number, number, number, number] {
  if (counter.length !== 4 || !counter.every(isUint32)) {
    throw new Error(`philox4x32: counter must be 4 uint32 words, got [${counter.join(', ')}]`);
  }
  if (key.length !== 2 || !key.every(isUint32)) {
    throw new Error(`philox4x32: key must be 2 uint32 words, got [${key.join(', ')}]`);
  }
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 16) {
    throw new Error(`philox4x32: rounds must be an integer in 1..16 (10 is standard), got ${rounds}`);
  }
  const out = new Uint32Array(4);
  philoxBlock(counter[0]!, counter[1]!, counter[2]!, counter[3]!, key[0]!, key[1]!, rounds, out, 0);
  return [out[0]!, out[1]!, out[2]!, out[3]!];
}

function checkShape(op: string, shape: Shape): number {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new Error(`${op}: shape ${formatShape(shape)} must hold non-negative integers`);
    }
  }
  return sizeOf(shape);
}

function seedToBigInt(seed: number | bigint): bigint {
  if (typeof seed === 'number') {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new Error(
        'Generator: seed must be a non-negative integer (a number below 2^53 or a bigint below 2^64), ' +
          `got ${seed}`,
      );
    }
    return BigInt(seed);
  }
  if (seed < 0n || seed >= 1n << 64n) {
    throw new Error(`Generator: a bigint seed must be in [0, 2^64), got ${seed}`);
  }
  return seed;
}

/** A seeded Philox4x32-10 stream; see the top of this file for the exact mapping from seed to values. */
export class Generator {
  /** The 64-bit seed; it is the Philox key. */
  readonly seed: bigint;
  readonly #k0: number;
  readonly #k1: number;
  /** Next block index as four 32-bit words, least significant first. */
  readonly #ctr = new Uint32Array(4);

  constructor(seed: number | bigint) {
    this.seed = seedToBigInt(seed);
    this.#k0 = Number(this.seed & 0xffffffffn);
    this.#k1 = Number(this.seed >> 32n);
  }

  /** Index of the next Philox block to be used. Set it to replay or skip ahead (e.g. to resume a run). */
  get counter(): bigint {
    const c = this.#ctr;
    return (BigInt(c[3]!) << 96n) | (BigInt(c[2]!) << 64n) | (BigInt(c[1]!) << 32n) | BigInt(c[0]!);
  }

  set counter(value: bigint) {
    if (value < 0n || value >= 1n << 128n) {
      throw new Error(`Generator: counter must be in [0, 2^128), got ${value}`);
    }
    for (let i = 0; i < 4; i++) this.#ctr[i] = Number((value >> BigInt(32 * i)) & 0xffffffffn);
  }

  /** The next ⌈n / 4⌉ blocks as 4·⌈n / 4⌉ words; advances the counter by that many blocks. */
  #blocks(n: number): Uint32Array {
    const blocks = Math.ceil(n / 4);
    const out = new Uint32Array(blocks * 4);
    const c = this.#ctr;
    for (let b = 0; b < blocks; b++) {
      philoxBlock(c[0]!, c[1]!, c[2]!, c[3]!, this.#k0, this.#k1, 10, out, 4 * b);
      // 128-bit increment with carry; Uint32Array stores wrap 2^32 to 0
      for (let i = 0; i < 4; i++) {
        c[i] = c[i]! + 1;
        if (c[i] !== 0) break;
      }
    }
    return out;
  }

  /** `n` raw uint32 words. */
  uint32(n: number): Uint32Array {
    if (!Number.isSafeInteger(n) || n < 0)
      throw new Error(`Generator.uint32: n must be a non-negative integer, got ${n}`);
    return this.#blocks(n).subarray(0, n);
  }

  /** Uniform float32 values in [0, 1): (w >>> 8) · 2^-24. */
  rand(shape: Shape): Tensor {
    const n = checkShape('rand', shape);
    const words = this.#blocks(n);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = (words[i]! >>> 8) * TWO_POW_M24;
    return new Tensor(out, shape);
  }

  /** Standard normal float32 values (mean 0, variance 1) by Box–Muller on pairs of words. */
  randn(shape: Shape): Tensor {
    const n = checkShape('randn', shape);
    const words = this.#blocks(2 * Math.ceil(n / 2));
    const out = new Float32Array(n);
    for (let i = 0; i < n; i += 2) {
      const u = (words[i]! + 1) * TWO_POW_M32; // (0, 1]: never log(0)
      const v = words[i + 1]! * TWO_POW_M32; // [0, 1)
      const r = Math.sqrt(-2 * Math.log(u));
      const theta = 2 * Math.PI * v;
      out[i] = r * Math.cos(theta);
      if (i + 1 < n) out[i + 1] = r * Math.sin(theta);
    }
    return new Tensor(out, shape);
  }

  /**
   * Uniform integers in [low, high) from 64 random bits each (bias below 2^-32). `high - low` may be at most
   * 2^32; for int32 output both ends must fit in int32.
   */
  randint(shape: Shape, low: number, high: number, dtype: 'int32' | 'int64' = 'int32'): Tensor {
    const n = checkShape('randint', shape);
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || high <= low) {
      throw new Error(`randint: need integers low < high, got low=${low}, high=${high}`);
    }
    const range = high - low;
    if (range > TWO_POW_32) throw new Error(`randint: high - low must be at most 2^32, got ${range}`);
    if (dtype === 'int32' && (low < -(2 ** 31) || high > 2 ** 31)) {
      throw new Error(`randint: [${low}, ${high}) does not fit in int32; pass dtype 'int64'`);
    }
    const words = this.#blocks(2 * n);
    const values = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const lo = words[2 * i]!;
      const hi = words[2 * i + 1]!;
      if (range === TWO_POW_32) {
        values[i] = low + hi;
        continue;
      }
      // ⌊(hi·2^32 + lo) · range / 2^64⌋ = high word of hi·range, plus the carry from its low word
      // and the high word of lo·range
      const carry = (Math.imul(hi, range) >>> 0) + mulhi32(lo, range) >= TWO_POW_32 ? 1 : 0;
      values[i] = low + mulhi32(hi, range) + carry;
    }
    if (dtype === 'int32') return new Tensor(Int32Array.from(values), shape, 'int32');
    return new Tensor(
      BigInt64Array.from(values, (v) => BigInt(v)),
      shape,
      'int64',
    );
  }
}

/** Standard normal float32 tensor from a fresh `Generator(seed)`. */
export function randn(shape: Shape, seed: number | bigint): Tensor {
  return new Generator(seed).randn(shape);
}

/** Uniform [0, 1) float32 tensor from a fresh `Generator(seed)`. */
export function rand(shape: Shape, seed: number | bigint): Tensor {
  return new Generator(seed).rand(shape);
}

/** Uniform integers in [low, high) from a fresh `Generator(seed)`. */
export function randint(
  shape: Shape,
  low: number,
  high: number,
  seed: number | bigint,
  dtype: 'int32' | 'int64' = 'int32',
): Tensor {
  return new Generator(seed).randint(shape, low, high, dtype);
}
