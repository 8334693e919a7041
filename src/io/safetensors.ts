// The safetensors format (huggingface/safetensors): an 8-byte little-endian u64 N, N bytes of UTF-8 JSON
// header, then the data area. The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]}
// with offsets relative to the start of the data area; an optional "__metadata__" entry maps strings to
// strings. Tensor data is little-endian and row-major.
//
// Reading: F32, I32, I64, BOOL, U8 keep their dtype; F16 and BF16 become float32 tensors. Files are read
// tensor by tensor straight into each tensor's own array (no whole-file buffer, so multi-GB checkpoints
// load); F16 / BF16 data goes through one small scratch buffer, converted piece by piece into the float32
// array, so a half-precision file costs its float32 size plus HALF_CHUNK_BYTES, never a second copy
// (bench/load.ts measures it). `parseSafetensors` on bytes in memory returns views into them where
// alignment allows.
// Writing: float32 tensors as F32, F16 or BF16 (round to nearest even), other dtypes as they are; tensors
// are laid out largest element size first and the header is padded to 8 bytes, so every tensor is aligned.

import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { formatShape, type Shape, Tensor } from '../tensor/tensor.js';
import { writeThroughTemp } from './atomic.js';
import { float32BitsToBfloat16Bits, float32BitsToFloat16Bits, halfToFloat32Bits } from './half.js';
import { jsonPreview } from './json-preview.js';

/** Safetensors dtypes that attnkit reads. */
export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'BOOL' | 'U8';

/** One header entry: what a tensor is and where its bytes are in the data area. */
export interface SafetensorsTensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  /** [begin, end) byte offsets relative to the start of the data area. */
  dataOffsets: [number, number];
}

/**
 * A safetensors file's header: each tensor's dtype, shape and byte range, the metadata, and where the data
 * starts.
 */
export interface SafetensorsHeader {
  /** Entries in header order. */
  tensors: Map<string, SafetensorsTensorInfo>;
  metadata: Record<string, string>;
  /** Byte offset of the data area in the file (8 + header length). */
  dataStart: number;
}

/** A safetensors file read: its tensors by name and its metadata. */
export interface SafetensorsContents {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Options of `readSafetensors`: which tensors to load. */
export interface ReadSafetensorsOptions {
  /** Load only these tensors (every name must exist); default: all. */
  names?: readonly string[];
}

/** How float32 tensors are stored: F32, F16 or BF16 (the last two rounded to nearest, ties to even). */
export type SafetensorsFloatFormat = 'float32' | 'float16' | 'bfloat16';

/** Options of `writeSafetensors`: the stored float format and the metadata. */
export interface SerializeSafetensorsOptions {
  /** How float32 tensors are stored: 'float32' (F32, default), 'float16' (F16) or 'bfloat16' (BF16). */
  dtype?: SafetensorsFloatFormat;
  /** String-to-string metadata, stored as "__metadata__". */
  metadata?: Record<string, string>;
}

/** Headers above this size are refused (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

const ELEMENT_BYTES: Record<SafetensorsDType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  BOOL: 1,
  U8: 1,
};
const METADATA_KEY = '__metadata__';
const IN_MEMORY = '<bytes>';

if (endianness() !== 'LE') {
  throw new Error('safetensors: this module assumes a little-endian host (tensor data is little-endian)');
}

function fail(source: string, message: string): never {
  throw new Error(`safetensors: ${source}: ${message}`);
}

function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.hasOwn(ELEMENT_BYTES, s);
}

// ---------------------------------------------------------------------------------------------------------
// header

function parseHeaderJson(
  json: Uint8Array,
  dataLength: number,
  dataStart: number,
  source: string,
): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch {
    fail(source, 'header is not valid UTF-8; the file is not safetensors or is corrupt');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    fail(
      source,
      `header is not valid JSON (${(e as Error).message}); the file is not safetensors or is corrupt`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    fail(source, `header must be a JSON object mapping tensor names to entries, got ${jsonPreview(parsed)}`);
  }

  let metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsTensorInfo>();
  for (const [name, entry] of Object.entries(parsed)) {
    if (name === METADATA_KEY) {
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
        fail(source, `"__metadata__" must be an object of strings, got ${jsonPreview(entry)}`);
      }
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== 'string') {
          fail(source, `"__metadata__" value of '${k}' must be a string, got ${jsonPreview(v)}`);
        }
      }
      metadata = Object.fromEntries(Object.entries(entry)); // own keys only, even '__proto__'
      continue;
    }
    tensors.set(name, parseEntry(name, entry, dataLength, source));
  }

  // overlap check: sort non-empty ranges by start
  const ranges = [...tensors].filter(([, t]) => t.dataOffsets[1] > t.dataOffsets[0]);
  ranges.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
  for (let i = 1; i < ranges.length; i++) {
    const [prevName, prev] = ranges[i - 1]!;
    const [name, cur] = ranges[i]!;
    if (cur.dataOffsets[0] < prev.dataOffsets[1]) {
      fail(
        source,
        `tensor '${name}' bytes [${cur.dataOffsets.join(', ')}) overlap tensor '${prevName}' bytes ` +
          `[${prev.dataOffsets.join(', ')}); the header is corrupt`,
      );
    }
  }
  return { tensors, metadata, dataStart };
}

function parseEntry(name: string, entry: unknown, dataLength: number, source: string): SafetensorsTensorInfo {
  const where = `tensor '${name}'`;
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    fail(source, `${where}: entry must be an object {dtype, shape, data_offsets}, got ${jsonPreview(entry)}`);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (!isSafetensorsDType(dtype)) {
    fail(
      source,
      `${where}: unsupported dtype ${jsonPreview(dtype)}; ` +
        `attnkit reads ${Object.keys(ELEMENT_BYTES).join(', ')} ` +
        '(convert the file, e.g. with safetensors in Python, to one of these)',
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(source, `${where}: shape must be an array of non-negative integers, got ${jsonPreview(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
  ) {
    fail(
      source,
      `${where}: data_offsets must be [begin, end] with non-negative integers, got ${jsonPreview(offsets)}`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(source, `${where}: data_offsets [${begin}, ${end}] has begin > end`);
  if (end > dataLength) {
    fail(
      source,
      `${where}: data_offsets [${begin}, ${end}] run past the data area (${dataLength} bytes); ` +
        'the file is truncated or the header is corrupt',
    );
  }
  const count = (shape as number[]).reduce((a, d) => a * d, 1);
  const expected = count * ELEMENT_BYTES[dtype];
  if (expected !== end - begin) {
    fail(
      source,
      `${where}: ${dtype} shape ${formatShape(shape as number[])} needs ${expected} bytes ` +
        `but data_offsets [${begin}, ${end}] hold ${end - begin}`,
    );
  }
  return { dtype, shape: [...(shape as number[])], dataOffsets: [begin, end] };
}

/** Validates the 8-byte prefix; returns the header length. */
function headerLength(prefix: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8) {
    fail(source, `file is ${fileSize} bytes, shorter than the 8-byte header length; it is not safetensors`);
  }
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    fail(
      source,
      `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit; the file is not safetensors`,
    );
  }
  if (8n + n > BigInt(fileSize)) {
    fail(
      source,
      `header length ${n} runs past the end of the file (${fileSize} bytes); the file is truncated`,
    );
  }
  return Number(n);
}

// ---------------------------------------------------------------------------------------------------------
// decoding

/** A Tensor from the raw bytes of one entry: a view of `raw` if no conversion is needed and it is aligned. */
function decode(info: SafetensorsTensorInfo, raw: Uint8Array, name: string, source: string): Tensor {
  const size = ELEMENT_BYTES[info.dtype];
  if (raw.byteOffset % size !== 0) raw = raw.slice(); // typed arrays need aligned offsets: copy
  const n = raw.byteLength / size;
  const { buffer, byteOffset } = raw;
  const shape: Shape = info.shape;
  try {
    switch (info.dtype) {
      case 'F32':
        return new Tensor(new Float32Array(buffer, byteOffset, n), shape);
      case 'I32':
        return new Tensor(new Int32Array(buffer, byteOffset, n), shape, 'int32');
      case 'I64':
        return new Tensor(new BigInt64Array(buffer, byteOffset, n), shape, 'int64');
      case 'U8':
        return new Tensor(raw, shape, 'uint8');
      case 'BOOL':
        return new Tensor(raw, shape, 'bool');
      case 'F16':
      case 'BF16': {
        const out = new Uint32Array(n);
        halfToFloat32Bits(info.dtype, new Uint16Array(buffer, byteOffset, n), n, out, 0);
        return new Tensor(new Float32Array(out.buffer), shape);
      }
    }
  } catch (e) {
    fail(source, `tensor '${name}': ${(e as Error).message}`);
  }
}

/**
 * Parses safetensors bytes held in memory. F32/I32/I64/U8/BOOL tensors are views into `bytes` where their
 * offset is aligned (copies otherwise), so keep `bytes` unchanged while the tensors are in use.
 */
export function parseSafetensors(bytes: Uint8Array, source = IN_MEMORY): SafetensorsContents {
  // a Node Buffer's slice() is a view, not a copy: read through a plain Uint8Array so decode() can copy
  bytes = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = headerLength(bytes, bytes.byteLength, source);
  const dataStart = 8 + n;
  const header = parseHeaderJson(
    bytes.subarray(8, dataStart),
    bytes.byteLength - dataStart,
    dataStart,
    source,
  );
  const tensors = new Map<string, Tensor>();
  for (const [name, info] of header.tensors) {
    const [begin, end] = info.dataOffsets;
    tensors.set(name, decode(info, bytes.subarray(dataStart + begin, dataStart + end), name, source));
  }
  return { tensors, metadata: header.metadata };
}

// ---------------------------------------------------------------------------------------------------------
// files

const IO_CHUNK = 1 << 30; // fs reads and writes are limited to 2 GiB per call

function readFully(fd: number, into: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < into.byteLength) {
    const len = Math.min(IO_CHUNK, into.byteLength - done);
    const got = readSync(fd, into, done, len, position + done);
    if (got === 0)
      fail(path, `unexpected end of file at byte ${position + done}; was the file changed while reading?`);
    done += got;
  }
}

function writeFully(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += writeSync(fd, bytes, done, Math.min(IO_CHUNK, bytes.byteLength - done));
  }
}

function withFile<T>(path: string, fn: (fd: number, size: number) => T): T {
  const fd = openSync(path, 'r');
  try {
    return fn(fd, fstatSync(fd).size);
  } finally {
    closeSync(fd);
  }
}

function readHeaderFd(fd: number, size: number, path: string): SafetensorsHeader {
  const prefix = new Uint8Array(8);
  if (size >= 8) readFully(fd, prefix, 0, path);
  const n = headerLength(prefix, size, path);
  const json = new Uint8Array(n);
  readFully(fd, json, 8, path);
  return parseHeaderJson(json, size - 8 - n, 8 + n, path);
}

/** Reads only the header of a safetensors file: names, dtypes, shapes and offsets, without the data. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  return withFile(path, (fd, size) => readHeaderFd(fd, size, path));
}

/** Bytes of the scratch buffer that F16 / BF16 data is read through (the only memory beyond the tensors). */
export const HALF_CHUNK_BYTES = 1 << 22;

/**
 * An F16 / BF16 tensor read into a float32 array piece by piece through `scratch` (at most
 * HALF_CHUNK_BYTES), so no half-precision copy of the tensor ever exists in full.
 */
function readHalfTensor(
  fd: number,
  info: SafetensorsTensorInfo & { dtype: 'F16' | 'BF16' },
  position: number,
  scratch: Uint16Array,
  path: string,
): Tensor {
  const n = (info.dataOffsets[1] - info.dataOffsets[0]) / 2;
  const out = new Uint32Array(n);
  for (let done = 0; done < n; ) {
    const count = Math.min(n - done, scratch.length);
    readFully(fd, new Uint8Array(scratch.buffer, 0, 2 * count), position + 2 * done, path);
    halfToFloat32Bits(info.dtype, scratch, count, out, done);
    done += count;
  }
  return new Tensor(new Float32Array(out.buffer), info.shape);
}

/**
 * Reads a safetensors file. Each tensor is read from disk straight into its own (aligned) array; F16 and
 * BF16 are converted to float32 while reading, through one scratch buffer of HALF_CHUNK_BYTES.
 */
export function readSafetensors(path: string, options: ReadSafetensorsOptions = {}): SafetensorsContents {
  return withFile(path, (fd, size) => {
    const header = readHeaderFd(fd, size, path);
    let names = [...header.tensors.keys()];
    if (options.names) {
      const missing = options.names.filter((name) => !header.tensors.has(name));
      if (missing.length > 0) {
        fail(
          path,
          `no tensor named ${missing.map((m) => `'${m}'`).join(', ')} (the file has ${names.length} tensors)`,
        );
      }
      names = [...options.names];
    }
    const tensors = new Map<string, Tensor>();
    let scratch: Uint16Array | null = null;
    for (const name of names) {
      const info = header.tensors.get(name)!;
      const [begin, end] = info.dataOffsets;
      if (info.dtype === 'F16' || info.dtype === 'BF16') {
        scratch ??= new Uint16Array(HALF_CHUNK_BYTES / 2);
        const half = info as SafetensorsTensorInfo & { dtype: 'F16' | 'BF16' };
        tensors.set(name, readHalfTensor(fd, half, header.dataStart + begin, scratch, path));
        continue;
      }
      // allocate with the element size's alignment so decode() can view it in place
      const raw = new Uint8Array(new ArrayBuffer(end - begin));
      readFully(fd, raw, header.dataStart + begin, path);
      tensors.set(name, decode(info, raw, name, path));
    }
    return { tensors, metadata: header.metadata };
  });
}

// ---------------------------------------------------------------------------------------------------------
// writing

interface PlannedTensor {
  name: string;
  tensor: Tensor;
  dtype: SafetensorsDType;
  begin: number;
  end: number;
}

interface Plan {
  header: Uint8Array;
  items: PlannedTensor[];
  dataLength: number;
}

const FLOAT_FORMATS: Record<SafetensorsFloatFormat, SafetensorsDType> = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
};

function storedDType(t: Tensor, name: string, floatAs: SafetensorsFloatFormat): SafetensorsDType {
  switch (t.dtype) {
    case 'float32':
      return FLOAT_FORMATS[floatAs];
    case 'int32':
      return 'I32';
    case 'int64':
      return 'I64';
    case 'bool':
      return 'BOOL';
    case 'uint8':
      return 'U8';
    default:
      throw new Error(`safetensors: tensor '${name}': cannot write dtype ${t.dtype}`);
  }
}

function plan(
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  options: SerializeSafetensorsOptions,
): Plan {
  const floatAs = options.dtype ?? 'float32';
  if (!Object.hasOwn(FLOAT_FORMATS, floatAs)) {
    throw new Error(
      "safetensors: dtype option must be 'float32', 'float16' or 'bfloat16', " +
        `got ${jsonPreview(floatAs)}`,
    );
  }
  const entries = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  const items: PlannedTensor[] = entries.map(([name, tensor]) => {
    if (name === METADATA_KEY)
      throw new Error(`safetensors: '${METADATA_KEY}' is reserved and cannot name a tensor`);
    return { name, tensor, dtype: storedDType(tensor, name, floatAs), begin: 0, end: 0 };
  });
  // largest element size first, then by name: every tensor starts at a multiple of its element size
  items.sort(
    (a, b) =>
      ELEMENT_BYTES[b.dtype] - ELEMENT_BYTES[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const header: Record<string, unknown> = {};
  if (options.metadata) {
    for (const [k, v] of Object.entries(options.metadata)) {
      if (typeof v !== 'string') {
        throw new Error(`safetensors: metadata value of '${k}' must be a string, got ${jsonPreview(v)}`);
      }
    }
    header[METADATA_KEY] = options.metadata;
  }
  let offset = 0;
  for (const item of items) {
    item.begin = offset;
    item.end = offset + item.tensor.size * ELEMENT_BYTES[item.dtype];
    offset = item.end;
    header[item.name] = { dtype: item.dtype, shape: item.tensor.shape, data_offsets: [item.begin, item.end] };
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8; // spaces pad the header so the data area is 8-aligned
  const bytes = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(padded), true);
  bytes.set(json, 8);
  return { header: bytes, items, dataLength: offset };
}

/** The little-endian bytes of one planned tensor (a view of its data unless converted to F16 / BF16). */
function encode(item: PlannedTensor): Uint8Array {
  const data = item.tensor.data;
  if (item.tensor.dtype === 'float32' && (item.dtype === 'F16' || item.dtype === 'BF16')) {
    const src = new Uint32Array(data.buffer, data.byteOffset, data.length);
    const out = new Uint16Array(data.length);
    const round = item.dtype === 'F16' ? float32BitsToFloat16Bits : float32BitsToBfloat16Bits;
    for (let i = 0; i < out.length; i++) out[i] = round(src[i]!);
    return new Uint8Array(out.buffer);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The safetensors bytes of `tensors` in one buffer. Prefer `writeSafetensors` for large models. */
export function serializeSafetensors(
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  options: SerializeSafetensorsOptions = {},
): Uint8Array {
  const { header, items, dataLength } = plan(tensors, options);
  const out = new Uint8Array(header.byteLength + dataLength);
  out.set(header, 0);
  for (const item of items) out.set(encode(item), header.byteLength + item.begin);
  return out;
}

/**
 * Writes `tensors` to `path` as safetensors, tensor by tensor, into a temporary file beside it that is
 * flushed and then renamed over `path`: a crash leaves either the old file or the new one, never a torn one.
 */
export function writeSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  options: SerializeSafetensorsOptions = {},
): void {
  const { header, items } = plan(tensors, options);
  writeThroughTemp(path, (fd) => {
    writeFully(fd, header);
    for (const item of items) writeFully(fd, encode(item));
  });
}
