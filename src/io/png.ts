// PNG images ↔ tensors, with pngjs doing the codec.
//
// Colour images are (1, 3, H, W) float32 tensors in [-1, 1], the range Stable Diffusion's VAE works in:
// byte b ↦ b / 127.5 − 1 on reading, and x ↦ round(clamp(x / 2 + 0.5, 0, 1) · 255) on writing (as diffusers'
// `VaeImageProcessor` does). Alpha is dropped; grayscale and palette PNGs come out as three equal channels
// and 16-bit PNGs are scaled to 8 bits (pngjs normalises every PNG to 8-bit RGBA).
// Grayscale images (masks, attention heat-maps) are written from [0, 1]: x ↦ round(clamp(x, 0, 1) · 255).

import { readFileSync } from 'node:fs';
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

/** Decodes PNG bytes to a (1, 3, H, W) float32 tensor in [-1, 1]. */
export function decodePng(bytes: Uint8Array, source = '<bytes>'): Tensor {
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
