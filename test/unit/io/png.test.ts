import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { crc32, deflateSync } from 'node:zlib';
import {
  decodePng,
  encodeGrayPng,
  encodePng,
  imageToTensor,
  readPng,
  tensorToGray,
  tensorToImage,
  writeGrayPng,
  writePng,
} from '../../../src/io/png.js';
import { Tensor } from '../../../src/tensor/tensor.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-png-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A PNG built by hand: signature, IHDR, one IDAT of unfiltered scanlines, IEND. */
function handPng(
  width: number,
  height: number,
  bitDepth: number,
  colorType: number,
  rows: number[][],
): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colorType;
  const raw = Buffer.from(rows.flatMap((row) => [0, ...row])); // filter type 0 per scanline
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** Width, height, bit depth and colour type from a PNG's IHDR chunk. */
function ihdr(png: Uint8Array): [number, number, number, number] {
  const b = Buffer.from(png);
  assert.equal(b.subarray(12, 16).toString('latin1'), 'IHDR');
  return [b.readUInt32BE(16), b.readUInt32BE(20), b[24]!, b[25]!];
}

test('imageToTensor: byte b ↦ b / 127.5 − 1, RGBA interleaved → (1, 3, H, W) planes, alpha dropped', () => {
  // 2×1 image: pixel (0,0) = (0, 255, 51, 0), pixel (0,1) = (255, 128, 0, 255)
  const t = imageToTensor({ width: 2, height: 1, data: Uint8Array.of(0, 255, 51, 0, 255, 128, 0, 255) });
  assert.deepEqual(t.shape, [1, 3, 1, 2]);
  assert.deepEqual(t.toArray(), [-1, 1, 1, 1 / 255, -0.6, -1].map(Math.fround));
  assert.throws(
    () => imageToTensor({ width: 2, height: 2, data: new Uint8Array(12) }),
    /imageToTensor: expected 2×2 RGBA pixels \(16 bytes\), got 12 bytes/,
  );
});

test('tensorToImage: x ↦ round(clamp(x / 2 + 0.5, 0, 1) · 255), alpha 255', () => {
  // values, then the hand-worked byte: -1→0, 0→127.5→128, 1→255, 0.5→191.25→191, -0.5→63.75→64,
  // -2→clamped 0, 2→clamped 255, 0.002→127.755→128, -0.006→126.735→127
  const values = [-1, 0, 1, 0.5, -0.5, -2, 2, 0.002, -0.006];
  const bytes = [0, 128, 255, 191, 64, 0, 255, 128, 127];
  // (3, 1, 3): channel c holds values[3c .. 3c+2] along the row
  const image = tensorToImage(Tensor.from(values, [3, 1, 3]));
  assert.equal(image.width, 3);
  assert.equal(image.height, 1);
  assert.deepEqual(Array.from(image.data), [
    bytes[0],
    bytes[3],
    bytes[6],
    255,
    bytes[1],
    bytes[4],
    bytes[7],
    255,
    bytes[2],
    bytes[5],
    bytes[8],
    255,
  ]);
  assert.deepEqual(tensorToImage(Tensor.from(values, [1, 3, 1, 3])).data, image.data);
});

test('tensorToImage / tensorToGray validate shape, dtype and NaN', () => {
  assert.throws(() => tensorToImage(Tensor.zeros([2, 3, 4, 4])), {
    message:
      'tensorToImage: expected shape (1, 3, H, W) or (3, H, W), got [2, 3, 4, 4]; ' +
      'save batches one image at a time',
  });
  assert.throws(() => tensorToImage(Tensor.zeros([1, 4, 4, 4])), /got \[1, 4, 4, 4\]/);
  assert.throws(
    () => tensorToImage(Tensor.zeros([3, 2, 2], 'int32')),
    /expected a float32 tensor, got int32/,
  );
  assert.throws(
    () => tensorToImage(Tensor.from([0, 0, Number.NaN], [3, 1, 1])),
    /tensorToImage: value at flat index 2 is NaN/,
  );
  assert.throws(
    () => tensorToGray(Tensor.zeros([2, 4, 4])),
    /tensorToGray: expected shape \(H, W\), \(1, H, W\) or \(1, 1, H, W\), got \[2, 4, 4\]/,
  );
  assert.throws(() => tensorToGray(Tensor.zeros([4])), /got \[4\]/);
  assert.throws(() => encodePng(Tensor.zeros([3, 0, 4])), /a PNG needs at least 1×1 pixels, got 4×0/);
});

test('RGB round trip: every byte value survives tensor → PNG → tensor → bytes', () => {
  const w = 16;
  const h = 16;
  const rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) rgba.set([i, 255 - i, (i * 7) % 256, 255], 4 * i);
  const t = imageToTensor({ width: w, height: h, data: rgba });
  const png = encodePng(t);
  assert.deepEqual(ihdr(png), [16, 16, 8, 2]); // 8-bit RGB
  const back = decodePng(png);
  assert.deepEqual(back.shape, [1, 3, 16, 16]);
  assert.deepEqual(back.toArray(), t.toArray());
  assert.deepEqual(tensorToImage(back).data, rgba);

  const path = join(dir, 'rgb.png');
  writePng(path, t);
  assert.deepEqual(readPng(path).toArray(), t.toArray());
});

test('reads hand-built PNGs: RGB, RGBA (alpha dropped, not composited), gray, gray+alpha, 16-bit', () => {
  const cases: [name: string, png: Buffer, rgb: number[][]][] = [
    [
      'RGB 8-bit',
      handPng(2, 1, 8, 2, [[10, 20, 30, 255, 0, 128]]),
      [
        [10, 20, 30],
        [255, 0, 128],
      ],
    ],
    [
      'RGBA 8-bit',
      handPng(2, 1, 8, 6, [[10, 20, 30, 0, 40, 50, 60, 128]]),
      [
        [10, 20, 30],
        [40, 50, 60],
      ],
    ],
    [
      'gray 8-bit',
      handPng(3, 1, 8, 0, [[0, 77, 255]]),
      [
        [0, 0, 0],
        [77, 77, 77],
        [255, 255, 255],
      ],
    ],
    [
      'gray+alpha 8-bit',
      handPng(1, 2, 8, 4, [
        [200, 0],
        [9, 255],
      ]),
      [
        [200, 200, 200],
        [9, 9, 9],
      ],
    ],
    // 16-bit samples: 0xffff → 255, 0x0000 → 0, 0x8080 → 128 (pngjs scales by 255/65535)
    ['RGB 16-bit', handPng(1, 1, 16, 2, [[0xff, 0xff, 0x00, 0x00, 0x80, 0x80]]), [[255, 0, 128]]],
  ];
  for (const [name, png, rgb] of cases) {
    const t = decodePng(png);
    const n = rgb.length;
    assert.equal(t.size, 3 * n, name);
    const expected = [0, 1, 2].flatMap((c) => rgb.map((px) => Math.fround(px[c]! / 127.5 - 1)));
    assert.deepEqual(t.toArray(), expected, name);
  }
  assert.deepEqual(
    decodePng(
      handPng(1, 2, 8, 4, [
        [200, 0],
        [9, 255],
      ]),
    ).shape,
    [1, 3, 2, 1],
  );
});

test('gray PNG: x ↦ round(clamp(x, 0, 1) · 255), written as 8-bit grayscale', () => {
  // 0→0, 0.5→127.5→128, 1→255, 0.25→63.75→64, -1→0, 2→255
  const t = Tensor.from([0, 0.5, 1, 0.25, -1, 2], [2, 3]);
  assert.deepEqual(Array.from(tensorToGray(t).data), [0, 128, 255, 64, 0, 255]);
  const png = encodeGrayPng(t);
  assert.deepEqual(ihdr(png), [3, 2, 8, 0]);
  const path = join(dir, 'mask.png');
  writeGrayPng(path, Tensor.from([0, 0.5, 1, 0.25, -1, 2], [1, 1, 2, 3]));
  assert.deepEqual(readFileSync(path), Buffer.from(png));
  // read back: three equal channels in [-1, 1]
  const back = readPng(path);
  assert.deepEqual(back.shape, [1, 3, 2, 3]);
  const plane = [0, 128, 255, 64, 0, 255].map((b) => Math.fround(b / 127.5 - 1));
  assert.deepEqual(back.toArray(), [...plane, ...plane, ...plane]);
});

test('decodePng names the source of bytes that are not a PNG', () => {
  assert.throws(() => decodePng(Uint8Array.of(1, 2, 3)), /decodePng: <bytes> is not a readable PNG \(.+\)/);
  const path = join(dir, 'not.png');
  writeFileSync(path, 'hello');
  assert.throws(
    () => readPng(path),
    new RegExp(`decodePng: ${path.replace(/[.\\]/g, '\\$&')} is not a readable PNG`),
  );
});

test('writePng makes the folders above its path (a long run never ends in ENOENT), and reads back', () => {
  const path = join(dir, 'new', 'nested', 'x.png');
  const image = Tensor.from([-1, 1, -1, 1, 1, -1, 1, -1, -1, -1, 1, 1], [1, 3, 2, 2]);
  writePng(path, image);
  assert.deepEqual(readPng(path).toArray(), image.toArray());
});

// ---------------------------------------------------------------------------------------------------------
// hostile PNGs (issue 25): the header is checked before anything is allocated, and broken data is an error

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function pngChunk(type: string, data: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A PNG from an IHDR's fields and the given IDAT payloads (each one chunk). */
function pngWith(width: number, height: number, idats: Buffer[], bitDepth = 8, colorType = 0, interlace = 0) {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = bitDepth;
  header[9] = colorType;
  header[12] = interlace;
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', header),
    ...idats.map((d) => pngChunk('IDAT', d)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

test('decodePng refuses a declared size past the limit before decoding, naming value, limit and file', () => {
  // 2147483647×1 RGBA (68 bytes) used to abort the process inside zlib; 16385×1 and 8193×8193 allocated first
  const tiny = deflateSync(Buffer.from([0, 0]));
  const path = join(dir, 'huge.png');
  writeFileSync(path, pngWith(2147483647, 1, [tiny], 8, 6));
  assert.throws(
    () => readPng(path),
    (e: Error) => {
      assert.equal(e.constructor, Error);
      assert.match(e.message, /huge\.png/);
      assert.match(e.message, /width 2147483647/);
      assert.match(e.message, /16384/);
      assert.match(e.message, /resize/);
      return true;
    },
  );
  assert.throws(() => decodePng(pngWith(16385, 1, [tiny])), /<bytes>.*width 16385.*16384/);
  assert.throws(() => decodePng(pngWith(1, 16385, [tiny])), /height 16385/);
  assert.throws(() => decodePng(pngWith(8193, 8193, [tiny])), /8193×8193 = 67125249 pixels.*67108864/);
});

test('decodePng refuses a 0 width or height by name (interlaced too)', () => {
  const tiny = deflateSync(Buffer.from([0]));
  for (const interlace of [0, 1]) {
    assert.throws(
      () => decodePng(pngWith(0, 1, [tiny], 8, 0, interlace), 'zero.png'),
      (e: Error) => {
        assert.equal(e.constructor, Error);
        assert.match(e.message, /zero\.png.*width 0/);
        return true;
      },
    );
    assert.throws(() => decodePng(pngWith(1, 0, [tiny], 8, 0, interlace), 'zero.png'), /zero\.png.*height 0/);
  }
});

test('decodePng refuses a PNG without image data, or with image data that is not zlib, naming the file', () => {
  const path = join(dir, 'no-idat.png');
  writeFileSync(path, pngWith(2, 2, []));
  assert.throws(() => readPng(path), /no-idat\.png.*no image data \(IDAT\)/);
  const notZlib = join(dir, 'not-zlib.png');
  writeFileSync(notZlib, pngWith(2, 2, [Buffer.from('this is not zlib data')]));
  assert.throws(() => readPng(notZlib), /not-zlib\.png.*image data .*zlib/);
  // zlib, but fewer bytes than 2×2 gray needs (2 rows of 1 filter byte + 2 pixels)
  assert.throws(
    () => decodePng(pngWith(2, 2, [deflateSync(Buffer.from([0, 7, 7]))]), 'short.png'),
    /short\.png.*3 bytes.*6/,
  );
  // the valid one still reads
  assert.deepEqual(decodePng(pngWith(2, 1, [deflateSync(Buffer.from([0, 0, 255]))])).shape, [1, 3, 1, 2]);
});

test('decodePng refuses an IHDR with a bit depth / colour type pair PNG does not define', () => {
  const data = [deflateSync(Buffer.from([0, 0]))];
  assert.throws(
    () => decodePng(pngWith(1, 1, data, 7, 0), 'odd.png'),
    /odd\.png.*bit depth 7.*colour type 0/,
  );
  assert.throws(() => decodePng(pngWith(1, 1, data, 8, 5), 'odd.png'), /odd\.png.*colour type 5/);
});
