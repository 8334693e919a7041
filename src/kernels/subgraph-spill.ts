// The spill file of subgraph sessions (issue 32): the one place a weight lives while a session holds its own
// (prepacked) copy of it. A weight is written here once; onnxruntime reads it from here when a session is built
// (external data pointing into this file, so no JavaScript copy need be alive meanwhile), and a parked
// parameter reads it back from here when eager code needs it again (a hook applies, training, saving).
//
// The file is unlinked as soon as it is opened, so nothing is left on disk when the process ends, however it
// ends; onnxruntime opens it through /proc/self/fd.

import { existsSync, openSync, readSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where one array's bytes are in the spill file. */
export interface SpillRef {
  readonly offset: number;
  readonly length: number;
}

/** Each entry starts at a page boundary (onnxruntime may map external data). */
const ALIGN = 4096;

const state = { fd: -1, location: '', size: 0, reads: 0, readBytes: 0 };
/** A byte range of some buffer that is in the spill file at `offset`. */
interface Region {
  readonly start: number;
  readonly length: number;
  readonly offset: number;
}
/**
 * The spilled ranges of each buffer (written here or read back from here): an array — or a view inside one, as a
 * GEGLU weight's halves are — whose bytes are in the file is never written twice.
 */
const regions = new WeakMap<ArrayBufferLike, Region[]>();

function find(data: ArrayBufferView): SpillRef | undefined {
  const start = data.byteOffset;
  const end = start + data.byteLength;
  for (const r of regions.get(data.buffer) ?? [])
    if (r.start <= start && end <= r.start + r.length)
      return { offset: r.offset + start - r.start, length: data.byteLength };
  return undefined;
}

function record(data: ArrayBufferView, ref: SpillRef): void {
  let rs = regions.get(data.buffer);
  if (!rs) {
    rs = [];
    regions.set(data.buffer, rs);
  }
  rs.push({ start: data.byteOffset, length: data.byteLength, offset: ref.offset });
}

function spillDir(): string {
  return process.env['ATTNKIT_SPILL_DIR'] || tmpdir();
}

function open(): void {
  if (state.fd >= 0) return;
  const dir = spillDir();
  if (!existsSync(dir))
    throw new Error(
      `subgraph sessions: the spill folder ${dir} does not exist; set ATTNKIT_SPILL_DIR to a folder on a disk ` +
        'with room for the model weights, or ATTNKIT_SUBGRAPHS=0',
    );
  const path = join(dir, `attnkit-spill-${process.pid}-${Date.now()}.bin`);
  const fd = openSync(path, 'w+', 0o600);
  if (existsSync('/proc/self/fd')) {
    unlinkSync(path); // gone from the folder now; the open descriptor keeps the data
    state.location = `/proc/self/fd/${fd}`;
  } else {
    state.location = path;
    process.once('exit', () => {
      try {
        unlinkSync(path);
      } catch {}
    });
  }
  state.fd = fd;
}

function writeAll(bytes: Uint8Array, at: number): void {
  for (let off = 0; off < bytes.byteLength; )
    off += writeSync(state.fd, bytes, off, bytes.byteLength - off, at + off);
}

/** The spill place of `data`, writing it at the end of the file if it is not there yet. */
export function spill(data: ArrayBufferView): SpillRef {
  const known = find(data);
  if (known) return known;
  open();
  const length = data.byteLength;
  const free = statfsSync(spillDir());
  if (free.bavail * free.bsize < length + 64 * 2 ** 20)
    throw new Error(
      `subgraph sessions: no room for ${length} more bytes of weights in ${spillDir()}; set ATTNKIT_SPILL_DIR ` +
        'to a folder with room for the model weights, or ATTNKIT_SUBGRAPHS=0 (no spill, no subgraph sessions)',
    );
  const offset = Math.ceil(state.size / ALIGN) * ALIGN;
  writeAll(new Uint8Array(data.buffer, data.byteOffset, length), offset);
  state.size = offset + length;
  const ref = { offset, length };
  record(data, ref);
  return ref;
}

/** The spill place of `data` if its bytes were written or read back here, else undefined. */
export function spilledAt(data: ArrayBufferView): SpillRef | undefined {
  return find(data);
}

/** Reads a spilled array back into fresh memory (it keeps its spill place). */
export function readSpill(ref: SpillRef): ArrayBuffer {
  state.reads++;
  state.readBytes += ref.length;
  const buf = new ArrayBuffer(ref.length);
  const bytes = new Uint8Array(buf);
  for (let off = 0; off < ref.length; ) {
    const n = readSync(state.fd, bytes, off, ref.length - off, ref.offset + off);
    if (n === 0)
      throw new Error(`subgraph spill file: ${ref.length} bytes at ${ref.offset} are past its end`);
    off += n;
  }
  return buf;
}

/** Records that `data` holds the bytes at `ref` (an array read back by `readSpill`). */
export function markSpilled(data: ArrayBufferView, ref: SpillRef): void {
  record(data, ref);
}

/** The path onnxruntime opens the spill file by (the location of its external data). */
export function spillLocation(): string {
  open();
  return state.location;
}

/** Bytes written to the spill file so far (padding included). */
export function spillBytes(): number {
  return state.size;
}

/** Arrays read back from the spill file so far, and their bytes (parked parameters that eager code read). */
export function spillReads(): { reads: number; bytes: number } {
  return { reads: state.reads, bytes: state.readBytes };
}
