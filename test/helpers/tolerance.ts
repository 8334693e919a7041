// assertClose: elementwise |actual − expected| ≤ atol + rtol·|expected| (NumPy's allclose, asymmetric:
// the scale comes from the expected value). On failure it names the worst element by multi-dimensional
// index, both shapes, the number of elements out of tolerance, and the actual/expected values there.
//
// The tolerance object is required and checked: both `atol` and `rtol` must be given as finite, non-negative
// numbers and no other key is accepted. A misplaced argument (a bare `6` where the tolerance belongs, a typo
// such as `{ tol: 1e-6 }`) throws instead of silently checking fewer digits — the bug that made
// transformers.js' tensor tests check 2 digits while claiming 6 (see STYLE.md).

import assert from 'node:assert/strict';
import { formatShape, type Shape, Tensor } from '../../src/tensor/index.js';

export interface Tolerance {
  /** Absolute tolerance. */
  atol: number;
  /** Relative tolerance, scaled by |expected|. */
  rtol: number;
}

/** Plain reference values with a shape (e.g. from a naive JS loop computed in float64). */
export interface Reference {
  shape: Shape;
  data: ArrayLike<number>;
}

export type Comparable = Tensor | Reference | ArrayLike<number> | number;

const TOLERANCE_KEYS = new Set(['atol', 'rtol', 'label']);

function checkTolerance(tol: unknown): asserts tol is Tolerance & { label?: string } {
  if (typeof tol !== 'object' || tol === null || Array.isArray(tol)) {
    throw new TypeError(`assertClose: expected a tolerance object { atol, rtol }, got ${String(tol)}`);
  }
  for (const k of Object.keys(tol)) {
    if (!TOLERANCE_KEYS.has(k)) {
      throw new TypeError(
        `assertClose: unknown tolerance key '${k}' (expected atol, rtol and optional label)`,
      );
    }
  }
  for (const k of ['atol', 'rtol'] as const) {
    const v = (tol as Record<string, unknown>)[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new TypeError(`assertClose: ${k} must be a finite number ≥ 0, got ${String(v)}`);
    }
  }
}

interface Flat {
  shape: Shape | null;
  values: ArrayLike<number>;
}

function flatten(x: Comparable): Flat {
  if (x instanceof Tensor) {
    const d = x.data;
    return { shape: x.shape, values: d instanceof BigInt64Array ? x.toArray() : d };
  }
  if (typeof x === 'number') return { shape: null, values: [x] };
  if ('shape' in x && 'data' in x) {
    const n = x.shape.reduce((a, b) => a * b, 1);
    if (x.data.length !== n) {
      throw new TypeError(
        `assertClose: reference of shape ${formatShape(x.shape)} has ${x.data.length} values, not ${n}`,
      );
    }
    return { shape: x.shape, values: x.data };
  }
  return { shape: null, values: x };
}

/** Multi-dimensional index of flat position `i` in `shape` (or `[i]` without a shape). */
export function unravel(i: number, shape: Shape | null): number[] {
  if (!shape || shape.length === 0) return shape ? [] : [i];
  const idx = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    const n = shape[d] as number;
    idx[d] = i % n;
    i = Math.floor(i / n);
  }
  return idx;
}

function describe(s: Shape | null, n: number): string {
  return s ? formatShape(s) : `flat(${n})`;
}

/**
 * Asserts that `actual` and `expected` agree elementwise within `atol + rtol·|expected|`. When both carry a
 * shape (Tensor or Reference) the shapes must be equal; a flat array only needs the same length. NaN matches
 * only NaN; ±Infinity matches only the same infinity.
 */
export function assertClose(
  actual: Comparable,
  expected: Comparable,
  tol: Tolerance & { label?: string },
): void {
  checkTolerance(tol);
  const a = flatten(actual);
  const e = flatten(expected);
  const where = tol.label ? `${tol.label}: ` : '';
  const shapes = `actual ${describe(a.shape, a.values.length)}, expected ${describe(e.shape, e.values.length)}`;
  if (
    a.shape &&
    e.shape &&
    (a.shape.length !== e.shape.length || a.shape.some((d, i) => d !== e.shape?.[i]))
  ) {
    assert.fail(`${where}shapes differ: ${shapes}`);
  }
  if (a.values.length !== e.values.length) assert.fail(`${where}sizes differ: ${shapes}`);

  let worst = -1;
  let worstExcess = -Infinity;
  let bad = 0;
  for (let i = 0; i < a.values.length; i++) {
    const av = Number(a.values[i]);
    const ev = Number(e.values[i]);
    let excess: number;
    if (Number.isNaN(av) || Number.isNaN(ev)) excess = Number.isNaN(av) && Number.isNaN(ev) ? -1 : Infinity;
    else if (!Number.isFinite(av) || !Number.isFinite(ev)) excess = av === ev ? -1 : Infinity;
    else excess = Math.abs(av - ev) - (tol.atol + tol.rtol * Math.abs(ev));
    if (excess > 0) bad++;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (bad === 0) return;
  const shape = a.shape ?? e.shape;
  const av = Number(a.values[worst]);
  const ev = Number(e.values[worst]);
  assert.fail(
    `${where}${bad} of ${a.values.length} values out of tolerance (atol ${tol.atol}, rtol ${tol.rtol}); ` +
      `${shapes}; worst at index [${unravel(worst, shape).join(', ')}]: actual ${av}, expected ${ev}, ` +
      `|diff| ${Math.abs(av - ev)} > allowed ${tol.atol + tol.rtol * Math.abs(ev)}`,
  );
}

/** Same values bit for bit (Object.is per element: −0 ≠ 0, NaN = NaN) and the same number of elements. */
export function sameBits(a: Tensor, b: Tensor): boolean {
  return a.size === b.size && a.data.every((v, i) => Object.is(v, b.data[i]));
}
