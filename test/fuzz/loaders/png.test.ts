// Fuzzing the PNG reader (issue 25): seeded mutations of small valid PNGs (gray, RGB, RGBA, 16-bit, palette,
// interlaced) — raw bytes, and chunk-aware ones with the CRC made right again so the mutation reaches the
// decoder (IHDR fields, huge sizes, IDAT bytes, chunks dropped or repeated). Every case loads or throws a
// plain Error naming the file and the problem; nothing allocates for a size it has not checked.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import { decodePng, encodeGrayPng, encodePng, readPng } from '../../../src/io/png.js';
import { Tensor } from '../../../src/tensor/tensor.js';
import { check, int, mutateBytes, pick, type Rand, rng, scratchDir, summary, tally } from './mutate.js';

const dir = scratchDir('png');

interface Chunk {
  type: string;
  data: Buffer;
}

function chunks(png: Uint8Array): Chunk[] {
  const b = Buffer.from(png);
  const out: Chunk[] = [];
  for (let pos = 8; pos + 12 <= b.length; ) {
    const length = b.readUInt32BE(pos);
    out.push({ type: b.toString('latin1', pos + 4, pos + 8), data: b.subarray(pos + 8, pos + 8 + length) });
    pos += 12 + length;
  }
  return out;
}

function assemble(list: Chunk[]): Buffer {
  const parts = list.map(({ type, data }) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const head = Buffer.alloc(4);
    head.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([head, body, crc]);
  });
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ...parts]);
}

/** A hand-built PNG: random filter-0 scanlines for the given IHDR (Adam7 passes when interlaced). */
function handPng(
  r: Rand,
  w: number,
  h: number,
  depth: number,
  colour: number,
  interlace: number,
  plte = false,
) {
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[colour]!;
  const rowBytes = (pw: number) => Math.ceil((pw * channels * depth) / 8);
  const passes = interlace
    ? ([
        [0, 0, 8, 8],
        [4, 0, 8, 8],
        [0, 4, 4, 8],
        [2, 0, 4, 4],
        [0, 2, 2, 4],
        [1, 0, 2, 2],
        [0, 1, 1, 2],
      ] as const)
    : ([[0, 0, 1, 1]] as const);
  const raw: number[] = [];
  for (const [x0, y0, dx, dy] of passes) {
    const pw = Math.max(0, Math.ceil((w - x0) / dx));
    const ph = Math.max(0, Math.ceil((h - y0) / dy));
    if (pw === 0) continue;
    for (let y = 0; y < ph; y++) {
      raw.push(int(r, 5)); // filter type
      for (let i = 0; i < rowBytes(pw); i++) raw.push(colour === 3 ? int(r, 2) : int(r, 256));
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = depth;
  ihdr[9] = colour;
  ihdr[12] = interlace;
  return assemble([
    { type: 'IHDR', data: ihdr },
    ...(plte ? [{ type: 'PLTE', data: Buffer.from([0, 0, 0, 255, 255, 255, 9, 9, 9, 80, 90, 100]) }] : []),
    { type: 'IDAT', data: deflateSync(Buffer.from(raw)) },
    { type: 'IEND', data: Buffer.alloc(0) },
  ]);
}

const seedRng = rng(1);
const SEEDS: Uint8Array[] = [
  encodePng(
    new Tensor(
      Float32Array.from({ length: 3 * 5 * 7 }, () => seedRng() * 2 - 1),
      [1, 3, 5, 7],
    ),
  ),
  encodeGrayPng(
    new Tensor(
      Float32Array.from({ length: 6 * 4 }, () => seedRng()),
      [6, 4],
    ),
  ),
  handPng(seedRng, 5, 3, 16, 6, 0),
  handPng(seedRng, 9, 7, 8, 2, 1),
  handPng(seedRng, 3, 9, 1, 0, 1),
  handPng(seedRng, 4, 4, 2, 3, 0, true),
  handPng(seedRng, 6, 2, 8, 4, 0),
];

const BIG = [0, 1, 16384, 16385, 8193, 65535, 2147483647, 0xffffffff];

function mutate(r: Rand): Uint8Array {
  const png = pick(r, SEEDS);
  if (r() < 0.3) return mutateBytes(png, r);
  const list = chunks(png).map((c) => ({ type: c.type, data: Buffer.from(c.data) }));
  const ihdr = list[0]!.data;
  switch (int(r, 6)) {
    case 0: // width / height: huge, 0, the limits
      ihdr.writeUInt32BE(pick(r, BIG), r() < 0.5 ? 0 : 4);
      break;
    case 1: // bit depth, colour type, compression, filter, interlace
      ihdr[8 + int(r, 5)] = pick(r, [0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 255]);
      break;
    case 2: {
      // IDAT bytes
      const idat = list.find((c) => c.type === 'IDAT')!;
      idat.data = Buffer.from(mutateBytes(idat.data, r));
      break;
    }
    case 3: // drop a chunk
      list.splice(int(r, list.length), 1);
      break;
    case 4: // repeat a chunk
      list.splice(int(r, list.length), 0, pick(r, list));
      break;
    default: {
      // an IDAT of other (valid zlib) content: too short, too long, zeros
      const idat = list.find((c) => c.type === 'IDAT')!;
      idat.data = deflateSync(Buffer.alloc(pick(r, [0, 1, 7, 100, 5000]), pick(r, [0, 1, 255])));
    }
  }
  return assemble(list);
}

test('fuzz: 2,000 mutated PNGs load or give an Error naming the file and the problem', () => {
  const r = rng(25_001);
  const t = tally();
  const path = join(dir, 'case.png');
  for (let k = 0; k < 2000; k++) {
    const png = mutate(r);
    if (k % 4 === 0) {
      writeFileSync(path, png);
      check(t, `file #${k}`, /^decodePng: .*case\.png/, () => readPng(path));
    } else check(t, `bytes #${k}`, /^decodePng: <bytes>/, () => decodePng(png));
  }
  console.log(`png fuzz: ${summary(t)}`);
  assert.ok(t.ok > 0 && t.refused > 0);
});
