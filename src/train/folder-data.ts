// A folder of images and captions as training data (the usual layout of DreamBooth / LoRA datasets): every
// `name.png` with its caption in `name.txt` beside it. Images must be square, of the model's training size
// (no resizing here: resize them first). Examples cycle through the files in a fixed order shuffled per data
// seed, so a resumed run sees the batches an uninterrupted one would.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { concat, Generator, readPng, type Tensor } from '../index.js';
import type { TrainingBatch, TrainingData } from './data.js';

/** At most this many images are read from a folder (they are held in memory). */
export const MAX_FOLDER_IMAGES = 10_000;

function shuffled(n: number, seed: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  const u = new Generator(seed).rand([n]).data as Float32Array;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.min(i, Math.floor((u[i] as number) * (i + 1)));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  return order;
}

/** The images and captions of `dir` as a TrainingData source of `imageSize`-pixel images. */
export function folderTrainingData(dir: string, imageSize: number): TrainingData {
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    throw new Error(`training data: ${dir} is not a folder`);
  const files = readdirSync(dir)
    .filter((f) => extname(f).toLowerCase() === '.png')
    .sort();
  if (files.length === 0)
    throw new Error(`training data: ${dir} holds no .png images (with a .txt caption each)`);
  if (files.length > MAX_FOLDER_IMAGES) {
    throw new Error(
      `training data: ${dir} holds ${files.length} images, more than ${MAX_FOLDER_IMAGES}; use a subset`,
    );
  }
  const items = files.map((f) => {
    const txt = join(dir, `${basename(f, extname(f))}.txt`);
    if (!existsSync(txt)) throw new Error(`training data: ${join(dir, f)} has no caption file ${txt}`);
    const image = readPng(join(dir, f)); // (1, 3, H, W) in [-1, 1]
    const [, , h, w] = image.shape as [number, number, number, number];
    if (h !== imageSize || w !== imageSize) {
      throw new Error(
        `training data: ${join(dir, f)} is ${w}×${h}; the model trains on ${imageSize}×${imageSize} images`,
      );
    }
    return { image, caption: readFileSync(txt, 'utf8').trim() };
  });
  const orders = new Map<number, number[]>();
  const at = (dataSeed: number, i: number) => {
    const epoch = Math.floor(i / items.length);
    const key = dataSeed * 1_000_003 + epoch;
    const order = orders.get(key) ?? shuffled(items.length, key);
    orders.set(key, order);
    return items[order[i % items.length] as number] as { image: Tensor; caption: string };
  };
  return {
    imageSize,
    examples(dataSeed, start, n): TrainingBatch {
      const rows = Array.from({ length: n }, (_, k) => at(dataSeed, start + k));
      const images = concat(
        rows.map((r) => r.image),
        0,
      );
      return {
        images,
        captions: rows.map((r) => r.caption),
        objects: images.mul(0).sum({ axes: [1], keepDims: true }),
        words: rows.map(() => []),
      };
    },
    captions: (dataSeed, n) => Array.from({ length: n }, (_, i) => at(dataSeed, i).caption),
    heldOut: (n) =>
      concat(
        items.slice(0, n).map((r) => r.image),
        0,
      ),
  };
}
