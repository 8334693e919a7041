// Half-precision safetensors (issue 26 item 3): F16 and BF16 data read into float32 exactly, bit for bit,
// through the chunked file reader (tensors larger than its scratch buffer, every F16 pattern, NaN payloads),
// BF16 written with round to nearest even, and round trips through written files into a module.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { bfloat16ToFloat32, float32ToBfloat16 } from '../../../src/io/half.js';
import {
  HALF_CHUNK_BYTES,
  parseSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  serializeSafetensors,
  writeSafetensors,
} from '../../../src/io/safetensors.js';
import { Linear, loadStateDict } from '../../../src/nn/index.js';
import { Tensor } from '../../../src/tensor/tensor.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-half-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** float32 bits of a float32 value. */
function bitsOf(value: number): number {
  return new Uint32Array(Float32Array.of(value).buffer)[0]!;
}

/** The value of a float16 pattern from its definition (IEEE 754 binary16), independent of the reader. */
function f16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0x1f) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  if (exp === 0) return sign * mant * 2 ** -24; // subnormal (and ±0)
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

/** The float32 bits a float16 pattern must become: its value, or for NaN the payload moved up 13 bits. */
function f16ExpectedBits(bits: number): number {
  const v = f16Value(bits);
  if (!Number.isNaN(v)) return bitsOf(v);
  return (((bits & 0x8000) << 16) | 0x7f800000 | ((bits & 0x3ff) << 13)) >>> 0;
}

/** A safetensors file from a header object and raw little-endian data bytes. */
function writeRaw(path: string, header: object, data: Uint8Array): void {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(json.length), true);
  writeFileSync(path, Buffer.concat([prefix, json, data]));
}

function floatBits(t: Tensor): Uint32Array {
  assert.equal(t.dtype, 'float32');
  return new Uint32Array(t.data.buffer, t.data.byteOffset, t.size);
}

test('the F16 reference on hand-picked patterns: ±0, subnormals, normals, max, ±inf, NaN', () => {
  const cases: [number, number][] = [
    [0x0000, 0],
    [0x0001, 2 ** -24], // smallest subnormal
    [0x03ff, 1023 * 2 ** -24], // largest subnormal
    [0x0400, 2 ** -14], // smallest normal
    [0x3c00, 1],
    [0x7bff, 65504], // largest finite
    [0xfbff, -65504],
    [0x7c00, Number.POSITIVE_INFINITY],
    [0xfc00, Number.NEGATIVE_INFINITY],
  ];
  for (const [bits, value] of cases) assert.equal(f16Value(bits), value, bits.toString(16));
  assert.ok(Object.is(f16Value(0x8000), -0));
  assert.ok(Number.isNaN(f16Value(0x7e00)) && Number.isNaN(f16Value(0xfc01)));
});

test('every F16 pattern read from a file in pieces is its float32 value exactly (NaN payloads kept)', () => {
  // more elements than the scratch buffer holds, and an odd count, so pieces end mid-tensor and short
  const n = HALF_CHUNK_BYTES / 2 + 65_539;
  const half = new Uint16Array(n);
  for (let i = 0; i < n; i++) half[i] = (i * 40_503 + (i >>> 16) * 12_345 + 7) & 0xffff; // every pattern, no period
  const lead = Float32Array.of(1.5, -2); // an F32 tensor first, so the F16 data starts at an offset
  const data = Buffer.concat([new Uint8Array(lead.buffer), new Uint8Array(half.buffer)]);
  const path = join(dir, 'all-f16.safetensors');
  writeRaw(
    path,
    {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      h: { dtype: 'F16', shape: [n], data_offsets: [8, 8 + 2 * n] },
    },
    data,
  );
  const { tensors } = readSafetensors(path);
  assert.deepEqual(tensors.get('a')!.toArray(), [1.5, -2]);
  const got = floatBits(tensors.get('h')!);
  const expected = Uint32Array.from({ length: 65_536 }, (_, bits) => f16ExpectedBits(bits));
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    seen.add(half[i]!);
    const want = expected[half[i]!]!;
    if (got[i] !== want)
      assert.fail(
        `element ${i}, F16 0x${half[i]!.toString(16)}: got 0x${got[i]!.toString(16)}, want 0x${want.toString(16)}`,
      );
  }
  assert.equal(seen.size, 65_536);
  // the in-memory parser converts the same way
  const parsed = parseSafetensors(new Uint8Array(readFileSync(path))).tensors.get('h')!;
  assert.deepEqual(floatBits(parsed), got);
});

test('every BF16 pattern read from a file is the top half of its float32, exactly', () => {
  const n = HALF_CHUNK_BYTES / 2 + 3;
  const half = new Uint16Array(n);
  for (let i = 0; i < n; i++) half[i] = (i + (i >>> 16) * 7919) & 0xffff; // every pattern, no period
  const path = join(dir, 'all-bf16.safetensors');
  writeRaw(path, { b: { dtype: 'BF16', shape: [n], data_offsets: [0, 2 * n] } }, new Uint8Array(half.buffer));
  const got = floatBits(readSafetensors(path).tensors.get('b')!);
  for (let i = 0; i < n; i++) {
    if (got[i] !== (half[i]! << 16) >>> 0)
      assert.fail(`BF16 0x${half[i]!.toString(16)}: got 0x${got[i]!.toString(16)}`);
  }
  // hand-picked values: ±0, float32 subnormals, the largest finite, ±inf, NaN with its payload
  const cases: [number, number][] = [
    [0x0000, 0],
    [0x0001, 2 ** -133],
    [0x007f, 127 * 2 ** -133],
    [0x0080, 2 ** -126],
    [0x3f80, 1],
    [0x7f7f, (2 - 2 ** -7) * 2 ** 127],
    [0xff7f, -(2 - 2 ** -7) * 2 ** 127],
    [0x7f80, Number.POSITIVE_INFINITY],
    [0xff80, Number.NEGATIVE_INFINITY],
  ];
  for (const [bits, value] of cases) assert.equal(bfloat16ToFloat32(bits), value, bits.toString(16));
  assert.ok(Object.is(bfloat16ToFloat32(0x8000), -0));
  assert.equal(got[0x7fc1], 0x7fc10000); // NaN payload kept
});

test('float32 → bfloat16 rounds to nearest, ties to even; NaN stays NaN', () => {
  const cases: [value: number, bits: number, why: string][] = [
    [1, 0x3f80, 'exact'],
    [-2, 0xc000, 'exact'],
    [1 + 2 ** -8, 0x3f80, 'halfway 0x3f80 ↔ 0x3f81: to even'],
    [1 + 3 * 2 ** -8, 0x3f82, 'halfway 0x3f81 ↔ 0x3f82: to even'],
    [1 + 2 ** -8 + 2 ** -20, 0x3f81, 'just above halfway: up'],
    [1 + 2 ** -8 - 2 ** -20, 0x3f80, 'just below halfway: down'],
    [(2 - 2 ** -7) * 2 ** 127, 0x7f7f, 'largest finite'],
    [(2 - 2 ** -8) * 2 ** 127, 0x7f80, 'halfway largest ↔ 2^128: to even, which is inf'],
    [3.4028234663852886e38, 0x7f80, 'float32 max rounds to inf'],
    [2 ** -133, 0x0001, 'smallest bfloat16 subnormal'],
    [2 ** -134, 0x0000, 'halfway 0 ↔ 2^-133: to even 0'],
    [3 * 2 ** -134, 0x0002, 'halfway 1 ↔ 2 units: to even 2'],
    [2 ** -149, 0x0000, 'smallest float32 subnormal'],
    [-0, 0x8000, 'negative zero'],
    [Number.NEGATIVE_INFINITY, 0xff80, '-inf'],
  ];
  for (const [value, bits, why] of cases) {
    assert.equal(float32ToBfloat16(value).toString(16), bits.toString(16), `${value}: ${why}`);
  }
  // NaNs through the writer, including one whose payload is only in the low 16 bits (must not become inf)
  const nans = new Uint32Array([0x7fc00000, 0x7f800001, 0xff800001, 0x7fa50000]);
  const bytes = serializeSafetensors(
    { n: new Tensor(new Float32Array(nans.buffer), [4]) },
    { dtype: 'bfloat16' },
  );
  const written = new Uint16Array(bytes.slice(bytes.length - 8).buffer);
  for (const w of written)
    assert.ok((w & 0x7f80) === 0x7f80 && (w & 0x7f) !== 0, `NaN → 0x${w.toString(16)}`);
  assert.equal(written[3], 0x7fe5); // payload kept, made quiet
});

test('round trip through written F16 and BF16 files into a module: float32 parameters, rounded values', () => {
  const linear = new Linear(3, 2);
  const weight = Tensor.from([1, 0.1, -65504, 1 / 3, 2 ** -24, 70_000], [2, 3]);
  const bias = Tensor.from([-0, Math.PI]);
  const expected = {
    float16: {
      weight: [1, 0.0999755859375, -65504, 0.333251953125, 2 ** -24, Number.POSITIVE_INFINITY],
      bias: [-0, 3.140625],
    },
    bfloat16: { weight: [1, 0.10009765625, -65536, 0.333984375, 2 ** -24, 70_144], bias: [-0, 3.140625] },
  };
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const path = join(dir, `linear.${dtype}.safetensors`);
    writeSafetensors(path, { weight, bias }, { dtype });
    assert.equal(
      readSafetensorsHeader(path).tensors.get('weight')!.dtype,
      dtype === 'float16' ? 'F16' : 'BF16',
    );
    loadStateDict(linear, readSafetensors(path).tensors, { what: 'linear' });
    assert.equal(linear.weight.value.dtype, 'float32');
    assert.deepEqual(linear.weight.value.toArray(), expected[dtype].weight, dtype);
    assert.deepEqual(linear.bias!.value.toArray(), expected[dtype].bias, dtype);
    assert.ok(Object.is(linear.bias!.value.toArray()[0], -0));
  }
  // a large random tensor: reading back equals rounding in memory, for both formats
  const big = new Float32Array(HALF_CHUNK_BYTES / 2 + 1001);
  for (let i = 0; i < big.length; i++) big[i] = Math.sin(i) * 10 ** ((i % 13) - 6);
  for (const dtype of ['float16', 'bfloat16'] as const) {
    const path = join(dir, `big.${dtype}.safetensors`);
    writeSafetensors(path, { x: new Tensor(big, [big.length]) }, { dtype });
    const fromFile = floatBits(readSafetensors(path).tensors.get('x')!);
    const inMemory = floatBits(
      parseSafetensors(serializeSafetensors({ x: new Tensor(big, [big.length]) }, { dtype })).tensors.get(
        'x',
      )!,
    );
    assert.deepEqual(fromFile, inMemory, dtype);
  }
});
