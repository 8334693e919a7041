// Seeded random tensors for tests (mulberry32): the same seed gives the same values on every machine.

import { type Shape, Tensor } from '../../src/tensor/index.js';

/** A seeded uniform generator on [0, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** float32 tensor with values uniform on [lo, hi). */
export function uniform(shape: Shape, seed: number, lo = -1, hi = 1): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(
    Float32Array.from({ length: n }, () => lo + (hi - lo) * r()),
    shape,
  );
}

/** float32 tensor of uniform values whose magnitude is at least `gap` (kept away from kinks at 0). */
export function awayFromZero(shape: Shape, seed: number, gap = 0.1, hi = 1): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(
    Float32Array.from({ length: n }, () => (r() < 0.5 ? -1 : 1) * (gap + (hi - gap) * r())),
    shape,
  );
}

/** float32 tensor holding a random permutation of evenly spaced values (distinct by at least `spacing`). */
export function distinct(shape: Shape, seed: number, spacing = 0.1): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const v = Array.from({ length: n }, (_, i) => (i - (n - 1) / 2) * spacing);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [v[i], v[j]] = [v[j] as number, v[i] as number];
  }
  return Tensor.from(v, shape);
}
