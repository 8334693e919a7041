// Shape arithmetic shared by the ops: broadcasting, axis normalisation, validation with clear errors.

import { formatShape, type Shape, type Tensor } from '../tensor.js';

/** NumPy broadcasting of two shapes; throws naming the op and both shapes when they do not broadcast. */
export function broadcastShapes(op: string, a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${op}: shapes ${formatShape(a)} and ${formatShape(b)} cannot be broadcast together`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Normalises a possibly negative axis for a tensor of rank `rank`. */
export function normAxis(op: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= Math.max(rank, 1)) {
    throw new Error(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function requireFloat(op: string, ...xs: Tensor[]): void {
  for (const x of xs) {
    if (x.dtype !== 'float32') throw new Error(`${op}: expected a float32 tensor, got ${x.dtype}`);
  }
}

export function requireRank(op: string, x: Tensor, rank: number, what = 'input'): void {
  if (x.rank !== rank) {
    throw new Error(`${op}: expected ${what} of rank ${rank}, got shape ${formatShape(x.shape)}`);
  }
}
