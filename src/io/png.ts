// PNG images ↔ tensors, with pngjs doing the codec.
//
// Colour images are (1, 3, H, W) float32 tensors in [-1, 1], the range Stable Diffusion's VAE works in:
// byte b ↦ b / 127.5 − 1 on reading, and x ↦ round(clamp(x / 2 + 0.5, 0, 1) · 255) on writing (as diffusers'
// `VaeImageProcessor` does). Alpha is dropped; grayscale and palette PNGs come out as three equal channels
// and 16-bit PNGs are scaled to 8 bits (pngjs normalises every PNG to 8-bit RGBA).
// Grayscale images (masks, attention heat-maps) are written from [0, 1]: x ↦ round(clamp(x, 0, 1) · 255).
// Reading checks the IHDR (size within MAX_PNG_SIDE / MAX_PNG_PIXELS, a defined bit depth and colour type) and
// that the image data inflates to the size it declares before pngjs allocates anything for the image.

import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { formatShape, Tensor } from '../tensor/tensor.js';
import { writeOutput } from './output.js';

/** 8-bit RGBA pixels, row-major, 4 bytes per pixel (the layout of pngjs and of the browser's ImageData). */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** RGBA pixels → (1, 3, H, W) float32 in [-1, 1]; alpha is dropped. */
export function imageToTensor(image: RgbaImage): Tensor {
  const { width: w, height: h, data } = image;
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 0 || h < 0 || data.length !== w * h * 4) {
    throw new Error(
      `imageToTensor: expected ${w}×${h} RGBA pixels (${w * h * 4} bytes), got ${data.length} bytes`,
    );
  }
  const plane = w * h;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    out[p] = data[4 * p]! / 127.5 - 1;
    out[plane + p] = data[4 * p + 1]! / 127.5 - 1;
    out[2 * plane + p] = data[4 * p + 2]! / 127.5 - 1;
  }
  return new Tensor(out, [1, 3, h, w]);
}

function checkFloat(op: string, t: Tensor): Float32Array {
  if (t.dtype !== 'float32') throw new Error(`${op}: expected a float32 tensor, got ${t.dtype}`);
  return t.data as Float32Array;
}

function toByte(op: string, v: number, index: number): number {
  if (Number.isNaN(v)) {
    throw new Error(`${op}: value at flat index ${index} is NaN; check the model output before saving it`);
  }
  return Math.round(Math.min(Math.max(v, 0), 1) * 255);
}

/** (1, 3, H, W) or (3, H, W) float32 in [-1, 1] → RGBA pixels with alpha 255 (values clamped, rounded). */
export function tensorToImage(tensor: Tensor): RgbaImage {
  const s = tensor.shape;
  const ok = (s.length === 4 && s[0] === 1 && s[1] === 3) || (s.length === 3 && s[0] === 3);
  if (!ok) {
    throw new Error(
      `tensorToImage: expected shape (1, 3, H, W) or (3, H, W), got ${formatShape(s)}; ` +
        'save batches one image at a time',
    );
  }
  const x = checkFloat('tensorToImage', tensor);
  const h = s[s.length - 2]!;
  const w = s[s.length - 1]!;
  const plane = w * h;
  const data = new Uint8Array(4 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const i = c * plane + p;
      data[4 * p + c] = toByte('tensorToImage', x[i]! / 2 + 0.5, i);
    }
    data[4 * p + 3] = 255;
  }
  return { width: w, height: h, data };
}

/** (H, W), (1, H, W) or (1, 1, H, W) float32 in [0, 1] → 8-bit gray pixels, row-major (clamped, rounded). */
export function tensorToGray(tensor: Tensor): { width: number; height: number; data: Uint8Array } {
  const s = tensor.shape;
  if (s.length < 2 || s.length > 4 || s.slice(0, -2).some((d) => d !== 1)) {
    throw new Error(`tensorToGray: expected shape (H, W), (1, H, W) or (1, 1, H, W), got ${formatShape(s)}`);
  }
  const x = checkFloat('tensorToGray', tensor);
  const data = new Uint8Array(x.length);
  for (let i = 0; i < x.length; i++) data[i] = toByte('tensorToGray', x[i]!, i);
  return { width: s[s.length - 1]!, height: s[s.length - 2]!, data };
}

/** Largest width or height `decodePng` accepts. */
export const MAX_PNG_SIDE = 16384;
/** Largest pixel count `decodePng` accepts (8192²: 256 MB as RGBA bytes, 768 MB as a float32 tensor). */
export const MAX_PNG_PIXELS = 8192 * 8192;

/** Bit depths each PNG colour type allows (PNG spec §11.2.2), and its samples per pixel. */
const PNG_COLOUR_TYPES: Record<number, { depths: number[]; channels: number }> = {
  0: { depths: [1, 2, 4, 8, 16], channels: 1 }, // gray
  2: { depths: [8, 16], channels: 3 }, // RGB
  3: { depths: [1, 2, 4, 8], channels: 1 }, // palette
  4: { depths: [8, 16], channels: 2 }, // gray + alpha
  6: { depths: [8, 16], channels: 4 }, // RGBA
};
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Adam7 passes: [x start, y start, x step, y step]. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  colourType: number;
  interlaced: boolean;
}

/** Bytes of filtered scanlines the header calls for: one filter byte per row, per interlace pass. */
function scanlineBytes({ width, height, bitDepth, colourType, interlaced }: PngHeader): number {
  const bits = PNG_COLOUR_TYPES[colourType]!.channels * bitDepth;
  const rows = (w: number, h: number) => (w === 0 ? 0 : h * (1 + Math.ceil((w * bits) / 8)));
  if (!interlaced) return rows(width, height);
  let total = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    total += rows(Math.max(0, Math.ceil((width - x0) / dx)), Math.max(0, Math.ceil((height - y0) / dy)));
  }
  return total;
}

/**
 * Reads the chunk layout and IHDR, checks the declared size against the limits, then inflates the image data
 * (at most the size the header calls for) so that a missing, non-zlib or short IDAT is an error here rather
 * than a black image from pngjs. Nothing is allocated for the image before the size is checked.
 */
function checkPng(bytes: Uint8Array, source: string): void {
  const fail: (problem: string) => never = (problem) => {
    throw new Error(`decodePng: ${source} is not a readable PNG (${problem})`);
  };
  if (bytes.byteLength < 8 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) fail('no PNG signature');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let header: PngHeader | undefined;
  let palette = false;
  const idat: Uint8Array[] = [];
  for (let pos = 8; pos + 8 <= bytes.byteLength; ) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = pos + 8;
    if (data + length + 4 > bytes.byteLength) {
      fail(`chunk ${JSON.stringify(type)} at byte ${pos} runs past the end of the file; it is truncated`);
    }
    if (!header && type !== 'IHDR') fail(`the first chunk is ${JSON.stringify(type)}, not IHDR`);
    if (type === 'IHDR') {
      if (header) fail('two IHDR chunks');
      if (length !== 13) fail(`IHDR holds ${length} bytes, not 13`);
      header = {
        width: view.getUint32(data),
        height: view.getUint32(data + 4),
        bitDepth: bytes[data + 8]!,
        colourType: bytes[data + 9]!,
        interlaced: bytes[data + 12] === 1,
      };
      checkHeader(header, bytes[data + 12]!, fail);
    } else if (type === 'PLTE') palette = true;
    else if (type === 'IDAT') idat.push(bytes.subarray(data, data + length));
    else if (type === 'IEND') break;
    pos = data + length + 4;
  }
  if (!header) fail('no IHDR chunk');
  if (idat.length === 0) fail('no image data (IDAT); the file is truncated');
  if (header.colourType === 3 && !palette) fail('colour type 3 (palette) but no PLTE chunk');
  const needed = scanlineBytes(header);
  let inflated = needed; // more than needed (ERR_BUFFER_TOO_LARGE): pngjs ignores the rest, as before
  try {
    inflated = inflateSync(Buffer.concat(idat), { maxOutputLength: needed }).byteLength;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') {
      fail(`its image data (IDAT) is not a complete zlib stream: ${(e as Error).message}`);
    }
  }
  if (inflated < needed) {
    const { width, height } = header;
    fail(`its image data holds ${inflated} bytes; ${width}×${height} as declared in IHDR needs ${needed}`);
  }
}

function checkHeader(h: PngHeader, interlace: number, fail: (problem: string) => never): void {
  const { width, height, bitDepth, colourType } = h;
  if (width === 0 || height === 0)
    fail(`IHDR declares width ${width} and height ${height}; both must be ≥ 1`);
  for (const [name, value] of [
    ['width', width],
    ['height', height],
  ] as const) {
    if (value > MAX_PNG_SIDE) {
      fail(`IHDR declares ${name} ${value}, over the ${MAX_PNG_SIDE}-pixel limit per side; resize the image`);
    }
  }
  if (width * height > MAX_PNG_PIXELS) {
    fail(
      `IHDR declares ${width}×${height} = ${width * height} pixels, over the limit of ${MAX_PNG_PIXELS} ` +
        '(8192×8192); resize the image',
    );
  }
  const colour = PNG_COLOUR_TYPES[colourType];
  if (!colour) fail(`IHDR declares colour type ${colourType}; PNG defines 0, 2, 3, 4 and 6`);
  if (!colour!.depths.includes(bitDepth)) {
    fail(
      `IHDR declares bit depth ${bitDepth} with colour type ${colourType}, which allows ${colour!.depths.join(', ')}`,
    );
  }
  if (interlace > 1) fail(`IHDR declares interlace method ${interlace}; PNG defines 0 and 1`);
}

/** Decodes PNG bytes to a (1, 3, H, W) float32 tensor in [-1, 1]. Sizes over the limits above are refused. */
export function decodePng(bytes: Uint8Array, source = '<bytes>'): Tensor {
  checkPng(bytes, source);
  let png: PNG;
  try {
    png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new Error(`decodePng: ${source} is not a readable PNG (${(e as Error).message})`);
  }
  return imageToTensor(png);
}

/** Encodes a (1, 3, H, W) or (3, H, W) tensor in [-1, 1] as an 8-bit RGB PNG. */
export function encodePng(tensor: Tensor): Uint8Array {
  const { width, height, data } = tensorToImage(tensor);
  return pack(width, height, data, 2, 6);
}

/** Encodes an (H, W) / (1, H, W) / (1, 1, H, W) tensor in [0, 1] as an 8-bit grayscale PNG. */
export function encodeGrayPng(tensor: Tensor): Uint8Array {
  const { width, height, data } = tensorToGray(tensor);
  return pack(width, height, data, 0, 0);
}

function pack(width: number, height: number, data: Uint8Array, colorType: 0 | 2, inputColorType: 0 | 6) {
  if (width < 1 || height < 1)
    throw new Error(`encodePng: a PNG needs at least 1×1 pixels, got ${width}×${height}`);
  const png = new PNG({ width, height });
  png.data = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out = PNG.sync.write(png, { colorType, inputColorType, inputHasAlpha: inputColorType === 6 });
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Reads a PNG file as a (1, 3, H, W) float32 tensor in [-1, 1]. */
export function readPng(path: string): Tensor {
  return decodePng(readFileSync(path), path);
}

/** Writes a (1, 3, H, W) or (3, H, W) tensor in [-1, 1] as an 8-bit RGB PNG. */
export function writePng(path: string, tensor: Tensor): void {
  writeOutput(path, encodePng(tensor));
}

/** Writes an (H, W) / (1, H, W) / (1, 1, H, W) tensor in [0, 1] (a mask, a heat-map) as a grayscale PNG. */
export function writeGrayPng(path: string, tensor: Tensor): void {
  writeOutput(path, encodeGrayPng(tensor));
}
