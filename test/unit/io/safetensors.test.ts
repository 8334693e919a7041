import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bfloat16ToFloat32, float16ToFloat32, float32ToFloat16 } from '../../../src/io/half.js';
import {
  parseSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  serializeSafetensors,
  writeSafetensors,
} from '../../../src/io/safetensors.js';
import { Tensor } from '../../../src/tensor/tensor.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-safetensors-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Hand-built file: u64 little-endian header length, the header text, then the given data bytes. */
function build(header: string | object, data: readonly number[] = [], lengthOverride?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const n = lengthOverride ?? json.length;
  const prefix: number[] = [];
  for (let i = 0; i < 8; i++) prefix.push(Math.floor(n / 2 ** (8 * i)) % 256);
  return Uint8Array.from([...prefix, ...json, ...data]);
}

const f32 = (shape: number[], begin: number, end: number) => ({
  dtype: 'F32',
  shape,
  data_offsets: [begin, end],
});

// ---------------------------------------------------------------------------------------------------------
// reading hand-built bytes

test('reads F32, I32, I64, U8, BOOL with little-endian bytes written by hand', () => {
  const bytes = build(
    {
      __metadata__: { format: 'pt', note: 'hand-built' },
      x: f32([2], 0, 8),
      i: { dtype: 'I32', shape: [2], data_offsets: [8, 16] },
      l: { dtype: 'I64', shape: [1], data_offsets: [16, 24] },
      u: { dtype: 'U8', shape: [3], data_offsets: [24, 27] },
      b: { dtype: 'BOOL', shape: [1, 2], data_offsets: [27, 29] },
    },
    [
      ...[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0], // F32 1.0, -2.0
      ...[0x07, 0x00, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff], // I32 7, -2
      ...[0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00], // I64 2^32
      ...[0x00, 0x80, 0xff], // U8 0, 128, 255
      ...[0x01, 0x00], // BOOL true, false
    ],
  );
  const { tensors, metadata } = parseSafetensors(bytes);
  assert.deepEqual(metadata, { format: 'pt', note: 'hand-built' });
  assert.deepEqual([...tensors.keys()], ['x', 'i', 'l', 'u', 'b']);
  const x = tensors.get('x')!;
  assert.equal(x.dtype, 'float32');
  assert.deepEqual(x.toArray(), [1, -2]);
  assert.equal(tensors.get('i')!.dtype, 'int32');
  assert.deepEqual(tensors.get('i')!.toArray(), [7, -2]);
  assert.equal(tensors.get('l')!.dtype, 'int64');
  assert.deepEqual(Array.from(tensors.get('l')!.data as BigInt64Array), [2n ** 32n]);
  assert.equal(tensors.get('u')!.dtype, 'uint8');
  assert.deepEqual(tensors.get('u')!.toArray(), [0, 128, 255]);
  assert.equal(tensors.get('b')!.dtype, 'bool');
  assert.deepEqual(tensors.get('b')!.shape, [1, 2]);
  assert.deepEqual(tensors.get('b')!.toArray(), [1, 0]);
});

test('scalars and empty tensors', () => {
  const bytes = build(
    { s: f32([], 0, 4), e: f32([0, 3], 4, 4) },
    [0x00, 0x00, 0x40, 0x40], // 3.0
  );
  const { tensors } = parseSafetensors(bytes);
  assert.deepEqual(tensors.get('s')!.shape, []);
  assert.equal(tensors.get('s')!.item(), 3);
  assert.deepEqual(tensors.get('e')!.shape, [0, 3]);
  assert.equal(tensors.get('e')!.size, 0);
});

test('aligned F32 data is a view of the input; unaligned data is copied and still correct', () => {
  // header padded to 62 bytes → data area at byte 70; F32 at data offset 2 sits at byte 72, aligned
  const aligned = build(
    '{"x":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}'.padEnd(62, ' '),
    [0xaa, 0xbb, 0x00, 0x00, 0x80, 0x3f],
  );
  const a = parseSafetensors(aligned).tensors.get('x')!;
  assert.deepEqual(a.toArray(), [1]);
  assert.equal(a.data.buffer, aligned.buffer);
  // header padded to 111 bytes → data area at byte 119; F32 at data offset 1 sits at byte 120, aligned in
  // the file but not in this buffer, which starts 1 byte into a larger one
  const header =
    '{"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},' +
    '"x":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}';
  const file = build(header.padEnd(111, ' '), [0x05, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x80, 0xbf]);
  const backing = new Uint8Array(file.length + 1);
  backing.set(file, 1);
  const unaligned = backing.subarray(1);
  assert.notEqual((unaligned.byteOffset + 8 + 111 + 1) % 4, 0);
  const { tensors } = parseSafetensors(unaligned);
  assert.deepEqual(tensors.get('x')!.toArray(), [1, -1]);
  assert.notEqual(tensors.get('x')!.data.buffer, backing.buffer);
  assert.deepEqual(tensors.get('u')!.toArray(), [5]);
});

// ---------------------------------------------------------------------------------------------------------
// float16 / bfloat16

const F16_CASES: [bits: number, value: number][] = [
  [0x0000, 0],
  [0x3c00, 1],
  [0xc000, -2],
  [0x3c01, 1 + 2 ** -10],
  [0x3555, 0.333251953125],
  [0x7bff, 65504],
  [0x0400, 2 ** -14], // smallest normal
  [0x0001, 2 ** -24], // smallest subnormal
  [0x03ff, 1023 * 2 ** -24], // largest subnormal
  [0x8001, -(2 ** -24)],
  [0x0200, 2 ** -15],
  [0x7c00, Number.POSITIVE_INFINITY],
  [0xfc00, Number.NEGATIVE_INFINITY],
];

test('float16 → float32 on hand-worked bit patterns (normals, subnormals, ±inf, NaN, -0)', () => {
  for (const [bits, value] of F16_CASES)
    assert.equal(float16ToFloat32(bits), value, `0x${bits.toString(16)}`);
  assert.ok(Object.is(float16ToFloat32(0x8000), -0));
  assert.ok(Number.isNaN(float16ToFloat32(0x7e00)));
  assert.ok(Number.isNaN(float16ToFloat32(0xfc01)));
  // the same patterns through an F16 tensor in a file
  const data = F16_CASES.flatMap(([bits]) => [bits & 0xff, bits >> 8]);
  const n = F16_CASES.length;
  const bytes = build({ h: { dtype: 'F16', shape: [n], data_offsets: [0, 2 * n] } }, data);
  const h = parseSafetensors(bytes).tensors.get('h')!;
  assert.equal(h.dtype, 'float32');
  assert.deepEqual(
    h.toArray(),
    F16_CASES.map(([, v]) => v),
  );
});

test('bfloat16 → float32 on hand-worked bit patterns', () => {
  const cases: [number, number][] = [
    [0x3f80, 1],
    [0xc000, -2],
    [0x4049, 3.140625],
    [0x0001, 2 ** -133], // float32 subnormal 0x00010000
    [0x0080, 2 ** -126],
    [0x7f7f, (2 - 2 ** -7) * 2 ** 127],
    [0x7f80, Number.POSITIVE_INFINITY],
    [0xff80, Number.NEGATIVE_INFINITY],
  ];
  for (const [bits, value] of cases) assert.equal(bfloat16ToFloat32(bits), value, `0x${bits.toString(16)}`);
  assert.ok(Number.isNaN(bfloat16ToFloat32(0x7fc0)));
  assert.ok(Object.is(bfloat16ToFloat32(0x8000), -0));
  const data = cases.flatMap(([bits]) => [bits & 0xff, bits >> 8]);
  const bytes = build({ b: { dtype: 'BF16', shape: [2, 4], data_offsets: [0, 16] } }, data);
  const b = parseSafetensors(bytes).tensors.get('b')!;
  assert.deepEqual(b.shape, [2, 4]);
  assert.deepEqual(
    b.toArray(),
    cases.map(([, v]) => v),
  );
});

test('float32 → float16 rounds to nearest, ties to even', () => {
  const cases: [value: number, bits: number, why: string][] = [
    [1, 0x3c00, 'exact'],
    [-2, 0xc000, 'exact'],
    [0.1, 0x2e66, '0.1 = 1.6·2^-4, 0.6·1024 = 614.4 → 614'],
    [1 + 2 ** -11, 0x3c00, 'halfway 1 ↔ 1+2^-10: to even 0x3c00'],
    [1 + 3 * 2 ** -11, 0x3c02, 'halfway 0x3c01 ↔ 0x3c02: to even 0x3c02'],
    [1 + 2 ** -11 + 2 ** -20, 0x3c01, 'just above halfway: up'],
    [1 + 2 ** -11 - 2 ** -20, 0x3c00, 'just below halfway: down'],
    [65504, 0x7bff, 'largest finite'],
    [65519, 0x7bff, 'below halfway to 65536'],
    [65520, 0x7c00, 'halfway 65504 ↔ 65536: to even, which overflows to inf'],
    [1e6, 0x7c00, 'overflow'],
    [2 ** -14, 0x0400, 'smallest normal'],
    [2 ** -14 - 2 ** -25, 0x0400, 'halfway 0x03ff ↔ 0x0400: to even 0x0400'],
    [2 ** -24, 0x0001, 'smallest subnormal'],
    [2 ** -25, 0x0000, 'halfway 0 ↔ 2^-24: to even 0'],
    [2 ** -25 * (1 + 2 ** -10), 0x0001, 'just above half the smallest subnormal'],
    [3 * 2 ** -25, 0x0002, 'halfway 1 ↔ 2 subnormal units: to even 2'],
    [5 * 2 ** -25, 0x0002, 'halfway 2 ↔ 3 subnormal units: to even 2'],
    [1e-10, 0x0000, 'underflow'],
    [-0, 0x8000, 'negative zero'],
    [Number.NEGATIVE_INFINITY, 0xfc00, '-inf'],
  ];
  for (const [value, bits, why] of cases) {
    assert.equal(float32ToFloat16(value).toString(16), bits.toString(16), `${value}: ${why}`);
  }
  assert.equal(float32ToFloat16(Number.NaN) & 0x7e00, 0x7e00);
  // the same through the writer: F16 bytes of the data area, little-endian
  const values = cases.map(([v]) => v);
  const bytes = serializeSafetensors({ h: Tensor.from(values) }, { dtype: 'float16' });
  const dataStart = bytes.length - 2 * values.length;
  for (let i = 0; i < cases.length; i++) {
    const got = bytes[dataStart + 2 * i]! | (bytes[dataStart + 2 * i + 1]! << 8);
    assert.equal(got.toString(16), cases[i]![1].toString(16), `written ${values[i]}`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// writing and round trips

test('writer output: header length prefix, JSON header padded to 8 bytes, aligned tensors', () => {
  const bytes = serializeSafetensors(
    { u: Tensor.bool([1, 0, 1]), z: Tensor.from([1.5]), a: Tensor.int64([-3]) },
    { metadata: { format: 'pt' } },
  );
  let n = 0;
  for (let i = 7; i >= 0; i--) n = n * 256 + bytes[i]!;
  assert.equal(n % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  assert.deepEqual(header, {
    __metadata__: { format: 'pt' },
    a: { dtype: 'I64', shape: [1], data_offsets: [0, 8] },
    z: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    u: { dtype: 'BOOL', shape: [3], data_offsets: [12, 15] },
  });
  assert.equal(bytes.length, 8 + n + 15);
  // -3 as little-endian int64, 1.5 as float32 (0x3fc00000), then 1 0 1
  assert.deepEqual(
    Array.from(bytes.subarray(8 + n)),
    [0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0xc0, 0x3f, 1, 0, 1],
  );
});

test('round trip through bytes and through a file, all dtypes, with metadata', () => {
  const tensors = new Map<string, Tensor>([
    ['unet.conv_in.weight', Tensor.from([0.5, -1.25, 3, 1e-8, -0, 7e30], [2, 3])],
    ['step', Tensor.int64([0, -1, 2 ** 40])],
    ['ids', Tensor.int32([1, -2147483648, 2147483647])],
    ['mask', Tensor.bool([true, false])],
    ['pixels', new Tensor(Uint8Array.of(0, 255, 17), [3], 'uint8')],
    ['scalar', Tensor.scalar(42)],
  ]);
  const check = (got: Map<string, Tensor>) => {
    assert.deepEqual([...got.keys()].sort(), [...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const g = got.get(name)!;
      assert.equal(g.dtype, t.dtype, name);
      assert.deepEqual(g.shape, t.shape, name);
      assert.deepEqual(
        Array.from(g.data as ArrayLike<unknown>),
        Array.from(t.data as ArrayLike<unknown>),
        name,
      );
    }
  };
  const metadata = { format: 'pt', 'modelspec.title': 'tiny ✓' };
  const parsed = parseSafetensors(serializeSafetensors(tensors, { metadata }));
  check(parsed.tensors);
  assert.deepEqual(parsed.metadata, metadata);

  const path = join(dir, 'roundtrip.safetensors');
  writeSafetensors(path, tensors, { metadata });
  const read = readSafetensors(path);
  check(read.tensors);
  assert.deepEqual(read.metadata, metadata);
  assert.deepEqual(readFileSync(path), Buffer.from(serializeSafetensors(tensors, { metadata })));
});

test('float16 round trip: values come back rounded to float16', () => {
  const values = [1, 0.1, -65504, 1 / 3, 2 ** -24, 70000];
  const path = join(dir, 'half.safetensors');
  writeSafetensors(path, { w: Tensor.from(values, [2, 3]) }, { dtype: 'float16' });
  const w = readSafetensors(path).tensors.get('w')!;
  assert.equal(readSafetensorsHeader(path).tensors.get('w')!.dtype, 'F16');
  assert.deepEqual(w.toArray(), [
    1,
    0.0999755859375,
    -65504,
    0.333251953125,
    2 ** -24,
    Number.POSITIVE_INFINITY,
  ]);
});

test('readSafetensorsHeader reports names, dtypes, shapes and offsets without loading data', () => {
  const path = join(dir, 'header.safetensors');
  writeFileSync(
    path,
    build(
      {
        __metadata__: { a: 'b' },
        w: { dtype: 'BF16', shape: [2, 2], data_offsets: [0, 8] },
        b: f32([1], 8, 12),
      },
      new Array(12).fill(0),
    ),
  );
  const header = readSafetensorsHeader(path);
  assert.deepEqual(header.metadata, { a: 'b' });
  assert.deepEqual(
    [...header.tensors],
    [
      ['w', { dtype: 'BF16', shape: [2, 2], dataOffsets: [0, 8] }],
      ['b', { dtype: 'F32', shape: [1], dataOffsets: [8, 12] }],
    ],
  );
  const headerText = JSON.stringify({
    __metadata__: { a: 'b' },
    w: { dtype: 'BF16', shape: [2, 2], data_offsets: [0, 8] },
    b: f32([1], 8, 12),
  });
  assert.equal(header.dataStart, 8 + new TextEncoder().encode(headerText).length);
});

test('readSafetensors loads only the requested names, and names a missing one', () => {
  const path = join(dir, 'subset.safetensors');
  writeSafetensors(path, { a: Tensor.from([1]), b: Tensor.from([2]), c: Tensor.from([3]) });
  const { tensors } = readSafetensors(path, { names: ['c', 'a'] });
  assert.deepEqual([...tensors.keys()], ['c', 'a']);
  assert.deepEqual(tensors.get('c')!.toArray(), [3]);
  assert.throws(
    () => readSafetensors(path, { names: ['a', 'nope'] }),
    new RegExp(
      `safetensors: ${path.replace(/[.\\]/g, '\\$&')}: no tensor named 'nope' \\(the file has 3 tensors\\)`,
    ),
  );
});

test('writeSafetensors replaces a file atomically and leaves no temporary file', () => {
  const sub = mkdtempSync(join(dir, 'atomic-'));
  const path = join(sub, 'model.safetensors');
  writeSafetensors(path, { a: Tensor.from([1]) });
  writeSafetensors(path, { a: Tensor.from([2]) });
  assert.deepEqual(readdirSync(sub), ['model.safetensors']);
  assert.deepEqual(readSafetensors(path).tensors.get('a')!.toArray(), [2]);

  // a failure after the header was written: the old file stays, the temporary file is removed
  const broken = Tensor.from([9, 9]);
  const data = broken.data;
  let reads = 0;
  Object.defineProperty(broken, 'data', {
    get() {
      if (++reads > 1) throw new Error('disk on fire');
      return data;
    },
  });
  assert.throws(() => writeSafetensors(path, { a: Tensor.from([3]), b: broken }), /disk on fire/);
  assert.deepEqual(readdirSync(sub), ['model.safetensors']);
  assert.deepEqual(readSafetensors(path).tensors.get('a')!.toArray(), [2]);
});

test('writer validation', () => {
  assert.throws(
    () => serializeSafetensors({ __metadata__: Tensor.from([1]) }),
    /safetensors: '__metadata__' is reserved and cannot name a tensor/,
  );
  assert.throws(
    () => serializeSafetensors({ a: Tensor.from([1]) }, { metadata: { n: 3 as unknown as string } }),
    /safetensors: metadata value of 'n' must be a string, got 3/,
  );
  assert.throws(
    () => serializeSafetensors({ a: Tensor.from([1]) }, { dtype: 'float64' as 'float16' }),
    /dtype option must be 'float32', 'float16' or 'bfloat16', got "float64"/,
  );
});

// ---------------------------------------------------------------------------------------------------------
// malformed files: one test each, asserting the message

test('error: file shorter than 8 bytes (bytes and file, naming the file)', () => {
  assert.throws(() => parseSafetensors(new Uint8Array(5)), {
    message:
      'safetensors: <bytes>: file is 5 bytes, shorter than the 8-byte header length; it is not safetensors',
  });
  const path = join(dir, 'short.safetensors');
  writeFileSync(path, Uint8Array.of(1, 2, 3));
  assert.throws(() => readSafetensors(path), {
    message:
      `safetensors: ${path}: file is 3 bytes, shorter than the 8-byte header length; ` +
      'it is not safetensors',
  });
  assert.throws(() => readSafetensorsHeader(path), /file is 3 bytes/);
});

test('error: header length past the end of the file', () => {
  const bytes = build('{}', [], 50);
  assert.throws(() => parseSafetensors(bytes), {
    message:
      'safetensors: <bytes>: header length 50 runs past the end of the file (10 bytes); ' +
      'the file is truncated',
  });
  const path = join(dir, 'truncated.safetensors');
  writeFileSync(path, bytes);
  assert.throws(() => readSafetensorsHeader(path), {
    message:
      `safetensors: ${path}: header length 50 runs past the end of the file (10 bytes); ` +
      'the file is truncated',
  });
});

test('error: header length above 100 MB', () => {
  assert.throws(() => parseSafetensors(build('{}', [], 100_000_001)), {
    message:
      'safetensors: <bytes>: header length 100000001 exceeds the 100000000-byte limit; ' +
      'the file is not safetensors',
  });
  // a u64 too big for a double is reported exactly
  const huge = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7b, 0x7d]);
  assert.throws(
    () => parseSafetensors(huge),
    /header length 18446744073709551615 exceeds the 100000000-byte limit/,
  );
});

test('error: header not valid JSON', () => {
  assert.throws(() => parseSafetensors(build('{"a": {"dtype": "F32",')), {
    message: new RegExp(
      String.raw`^safetensors: <bytes>: header is not valid JSON \(.+\); ` +
        'the file is not safetensors or is corrupt$',
    ),
  });
});

test('error: header not valid UTF-8', () => {
  const bytes = build('{}');
  const bad = Uint8Array.from([...bytes.subarray(0, 8), 0xff, 0xfe]);
  assert.throws(() => parseSafetensors(bad), {
    message: 'safetensors: <bytes>: header is not valid UTF-8; the file is not safetensors or is corrupt',
  });
});

test('error: header not a JSON object', () => {
  assert.throws(() => parseSafetensors(build('[1, 2]')), {
    message: 'safetensors: <bytes>: header must be a JSON object mapping tensor names to entries, got [1,2]',
  });
  assert.throws(() => parseSafetensors(build('null')), /header must be a JSON object .*, got null/);
});

test('error: entry not an object', () => {
  assert.throws(() => parseSafetensors(build({ w: [1, 2] })), {
    message:
      "safetensors: <bytes>: tensor 'w': entry must be an object {dtype, shape, data_offsets}, " +
      'got [1,2]',
  });
});

test('error: __metadata__ not string to string', () => {
  assert.throws(() => parseSafetensors(build({ __metadata__: { epoch: 3 } })), {
    message: `safetensors: <bytes>: "__metadata__" value of 'epoch' must be a string, got 3`,
  });
  assert.throws(
    () => parseSafetensors(build({ __metadata__: 'x' })),
    /"__metadata__" must be an object of strings, got "x"/,
  );
});

test('error: unknown or unsupported dtype', () => {
  assert.throws(
    () =>
      parseSafetensors(
        build({ w: { dtype: 'F64', shape: [1], data_offsets: [0, 8] } }, new Array(8).fill(0)),
      ),
    {
      message:
        `safetensors: <bytes>: tensor 'w': unsupported dtype "F64"; ` +
        'attnkit reads F32, F16, BF16, I64, I32, BOOL, U8 ' +
        '(convert the file, e.g. with safetensors in Python, to one of these)',
    },
  );
  assert.throws(
    () => parseSafetensors(build({ w: { shape: [1], data_offsets: [0, 4] } }, [0, 0, 0, 0])),
    /tensor 'w': unsupported dtype nothing/,
  );
  assert.throws(
    () => parseSafetensors(build({ w: { dtype: 'toString', shape: [], data_offsets: [0, 0] } })),
    /unsupported dtype "toString"/,
  );
});

test('error: shape not an array of non-negative integers', () => {
  const msg = (shape: string) =>
    `safetensors: <bytes>: tensor 'w': shape must be an array of non-negative integers, got ${shape}`;
  assert.throws(
    () => parseSafetensors(build({ w: f32(3 as unknown as number[], 0, 12) }, new Array(12).fill(0))),
    { message: msg('3') },
  );
  assert.throws(() => parseSafetensors(build({ w: f32([2, -1], 0, 0) })), { message: msg('[2,-1]') });
  assert.throws(() => parseSafetensors(build({ w: f32([1.5], 0, 0) })), { message: msg('[1.5]') });
  assert.throws(
    () => parseSafetensors(build({ w: f32(['2'] as unknown as number[], 0, 8) }, new Array(8).fill(0))),
    { message: msg('["2"]') },
  );
});

test('error: data_offsets malformed', () => {
  assert.throws(
    () => parseSafetensors(build({ w: { dtype: 'F32', shape: [1], data_offsets: [0] } }, [0, 0, 0, 0])),
    {
      message:
        "safetensors: <bytes>: tensor 'w': data_offsets must be [begin, end] with non-negative integers, " +
        'got [0]',
    },
  );
  assert.throws(
    () => parseSafetensors(build({ w: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } })),
    /data_offsets must be \[begin, end\]/,
  );
});

test('error: data_offsets outside the data area', () => {
  assert.throws(() => parseSafetensors(build({ w: f32([2], 0, 8) }, [0, 0, 0, 0])), {
    message:
      `safetensors: <bytes>: tensor 'w': data_offsets [0, 8] run past the data area (4 bytes); ` +
      'the file is truncated or the header is corrupt',
  });
  const path = join(dir, 'outside.safetensors');
  writeFileSync(path, build({ w: f32([2], 0, 8) }, [0, 0, 0, 0]));
  assert.throws(
    () => readSafetensors(path),
    new RegExp(
      `^Error: safetensors: ${path.replace(/[.\\]/g, '\\$&')}: tensor 'w': data_offsets \\[0, 8\\] run past`,
    ),
  );
});

test('error: data_offsets with begin > end', () => {
  assert.throws(() => parseSafetensors(build({ w: f32([1], 8, 4) }, new Array(8).fill(0))), {
    message: `safetensors: <bytes>: tensor 'w': data_offsets [8, 4] has begin > end`,
  });
});

test('error: overlapping tensors', () => {
  const bytes = build({ a: f32([2], 0, 8), b: f32([2], 4, 12) }, new Array(12).fill(0));
  assert.throws(() => parseSafetensors(bytes), {
    message:
      "safetensors: <bytes>: tensor 'b' bytes [4, 12) overlap tensor 'a' bytes [0, 8); " +
      'the header is corrupt',
  });
  // header order does not matter; empty tensors overlap nothing
  const reordered = build(
    { b: f32([2], 4, 12), e: f32([0], 6, 6), a: f32([2], 0, 8) },
    new Array(12).fill(0),
  );
  assert.throws(
    () => parseSafetensors(reordered),
    /tensor 'b' bytes \[4, 12\) overlap tensor 'a' bytes \[0, 8\)/,
  );
  const touching = build({ a: f32([2], 0, 8), e: f32([0], 4, 4), b: f32([1], 8, 12) }, new Array(12).fill(0));
  assert.equal(parseSafetensors(touching).tensors.size, 3);
});

test('error: byte length does not match dtype size × shape', () => {
  assert.throws(() => parseSafetensors(build({ w: f32([2, 3], 0, 20) }, new Array(20).fill(0))), {
    message:
      "safetensors: <bytes>: tensor 'w': F32 shape [2, 3] needs 24 bytes " +
      'but data_offsets [0, 20] hold 20',
  });
  assert.throws(
    () => parseSafetensors(build({ w: { dtype: 'BF16', shape: [3], data_offsets: [0, 4] } }, [0, 0, 0, 0])),
    /tensor 'w': BF16 shape \[3\] needs 6 bytes but data_offsets \[0, 4\] hold 4/,
  );
});

// ---------------------------------------------------------------------------------------------------------
// a file written by Python's safetensors (the shared golden folder); values checked with Python's struct

const golden = fileURLToPath(
  new URL('../../../../shared/golden/tiny-sd-a/goldens.safetensors', import.meta.url),
);

test('reads a file written by the reference implementation', { skip: !existsSync(golden) }, () => {
  const header = readSafetensorsHeader(golden);
  assert.deepEqual(header.tensors.get('text.in.ids')!.dtype, 'I32');
  assert.match(header.metadata['source'] ?? '', /^diffusers 0\.21\.4/);
  const { tensors } = readSafetensors(golden, {
    names: ['text.in.ids', 'unet.in.sample', 'unet.in.timestep'],
  });
  const ids = tensors.get('text.in.ids')!;
  assert.equal(ids.dtype, 'int32');
  assert.deepEqual(ids.shape, [2, 16]);
  assert.deepEqual(ids.toArray().slice(0, 3), [998, 413, 265]);
  const sample = tensors.get('unet.in.sample')!;
  assert.deepEqual(sample.shape, [2, 4, 16, 16]);
  assert.deepEqual(
    sample.toArray().slice(0, 3),
    [-0.3051748275756836, 0.5662037134170532, 0.8032536506652832],
  );
  assert.deepEqual(tensors.get('unet.in.timestep')!.toArray(), [401]);
  // the whole file parsed from memory agrees with the file reader
  const all = parseSafetensors(readFileSync(golden)).tensors;
  assert.equal(all.size, header.tensors.size);
  assert.deepEqual(all.get('unet.in.sample')!.toArray(), sample.toArray());
});

// ---------------------------------------------------------------------------------------------------------
// hostile headers (issue 25)

test('error: deeply nested JSON in the header is a clear error, not a stack overflow while describing it', () => {
  const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`;
  const cases: [header: string, expected: RegExp][] = [
    [deep(20_000), /header must be a JSON object .*got \[\[\[/],
    [`{"w":{"dtype":"F32","shape":${deep(20_000)},"data_offsets":[0,0]}}`, /tensor 'w': shape must be/],
    [`{"w":{"dtype":${deep(20_000)},"shape":[],"data_offsets":[0,0]}}`, /tensor 'w': unsupported dtype/],
    [`{"w":{"dtype":"F32","shape":[],"data_offsets":${deep(20_000)}}}`, /tensor 'w': data_offsets must be/],
    [`{"w":${deep(20_000)}}`, /tensor 'w': entry must be an object/],
    [`{"__metadata__":{"k":${deep(20_000)}}}`, /"__metadata__" value of 'k' must be a string/],
  ];
  for (const [header, expected] of cases) {
    assert.throws(
      () => parseSafetensors(build(header)),
      (e: Error) => {
        assert.equal(e.constructor, Error, e.message.slice(0, 200));
        assert.match(e.message, expected);
        assert.ok(e.message.length < 400, `message of ${e.message.length} characters`);
        return true;
      },
    );
  }
});

test('error: a huge value is quoted in a bounded form', () => {
  const shape = new Array(200_000).fill(-1);
  assert.throws(
    () => parseSafetensors(build({ w: f32(shape, 0, 0) })),
    (e: Error) => e.message.length < 300 && /shape must be .*got \[-1,-1,.*\.\.\.$/.test(e.message),
  );
  assert.throws(
    () => parseSafetensors(build({ w: { dtype: 'x'.repeat(1_000_000), shape: [], data_offsets: [0, 0] } })),
    (e: Error) => e.message.length < 400 && /unsupported dtype "xxx+\.\.\./.test(e.message),
  );
});

test('a Node Buffer with unaligned tensor data parses as the file reader reads it (odd header length)', () => {
  // header padded to 9 + 8k bytes → data area at an odd byte; F32, I64, F16 all unaligned in the Buffer
  const header =
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]},' +
    '"c":{"dtype":"F16","shape":[1],"data_offsets":[16,18]},' +
    '"d":{"dtype":"U8","shape":[1],"data_offsets":[18,19]}}';
  const padded = header.padEnd(Math.ceil((header.length - 1) / 8) * 8 + 9, ' ');
  assert.equal(padded.length % 2, 1);
  const bytes = build(padded, [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 7, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x3c, 9]);
  const path = join(dir, 'odd-header.safetensors');
  writeFileSync(path, bytes);
  const expected = { a: [1, -2], b: [7], c: [1], d: [9] };
  const fromFile = readSafetensors(path).tensors;
  const fromBuffer = parseSafetensors(readFileSync(path)).tensors; // a Buffer: slice() is a view, not a copy
  const fromPool = parseSafetensors(Buffer.from(bytes)).tensors;
  for (const tensors of [fromFile, fromBuffer, fromPool]) {
    for (const [name, values] of Object.entries(expected)) {
      assert.deepEqual(tensors.get(name)!.toArray(), values, name);
    }
  }
});
