// Forward values of the reductions (src/tensor/ops/reduce.ts) against hand-worked numbers and naive
// float64 JS references (test/helpers/reference.ts).
// Tolerances, float32 throughout:
//   EXACT  { atol 0, rtol 0 }        shape ops, selection, max/min, comparisons, and the IEEE-rounded
//                                    arithmetic (+ − × ÷ √ give the float32 rounding of the exact result,
//                                    so the reference is Math.fround of the float64 result)
//   ULP    { atol 1e-6, rtol 2e-6 }  transcendental functions (onnxruntime's vectorised exp/tanh/erf are
//                                    accurate to a few ulp; float32's ulp is 1.2e-7 relative)
//   ACCUM  { atol 1e-5, rtol 1e-5 }  sums, dot products and normalisations over up to ~100 terms of O(1)
//                                    values (float32 accumulation error grows with the number of terms)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { argmax, max, mean, min, sum, Tensor, variance } from '../../../src/tensor/index.js';
import { uniform } from '../../helpers/random.js';
import { reduce } from '../../helpers/reference.js';
import { assertClose } from '../../helpers/tolerance.js';

const EXACT = { atol: 0, rtol: 0 };
const ULP = { atol: 1e-6, rtol: 2e-6 };
const ACCUM = { atol: 1e-5, rtol: 1e-5 };

// reductions

test('sum/mean/max/min/var over axes with keepDims vs naive loops', () => {
  const x = uniform([2, 3, 4], 5, -2, 2);
  const sumF = (v: number[]): number => v.reduce((a, b) => a + b, 0);
  const meanF = (v: number[]): number => sumF(v) / v.length;
  const varF =
    (correction: number) =>
    (v: number[]): number => {
      const m = meanF(v);
      return v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - correction);
    };
  const axesCases: (number[] | undefined)[] = [undefined, [0], [1], [-1], [0, 2], [2, 0, 1]];
  for (const axes of axesCases) {
    for (const keepDims of [false, true]) {
      const ax = axes ?? [0, 1, 2];
      const label = `axes ${JSON.stringify(axes)} keepDims ${keepDims}`;
      const opts = { axes, keepDims };
      assertClose(sum(x, opts), reduce(x, ax, keepDims, sumF), { ...ACCUM, label: `sum ${label}` });
      assertClose(mean(x, opts), reduce(x, ax, keepDims, meanF), { ...ACCUM, label: `mean ${label}` });
      assertClose(
        max(x, opts),
        reduce(x, ax, keepDims, (v) => Math.max(...v)),
        {
          ...EXACT,
          label: `max ${label}`,
        },
      );
      assertClose(
        min(x, opts),
        reduce(x, ax, keepDims, (v) => Math.min(...v)),
        {
          ...EXACT,
          label: `min ${label}`,
        },
      );
      assertClose(variance(x, opts), reduce(x, ax, keepDims, varF(0)), { ...ACCUM, label: `var ${label}` });
      assertClose(variance(x, { ...opts, correction: 1 }), reduce(x, ax, keepDims, varF(1)), {
        ...ACCUM,
        label: `var(correction 1) ${label}`,
      });
    }
  }
});

test('reductions: hand-worked values', () => {
  const x = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]);
  assertClose(x.sum(), 21, EXACT);
  assert.deepEqual(x.sum().shape, []);
  assertClose(x.sum({ axes: 0 }), { shape: [3], data: [5, 7, 9] }, EXACT);
  assertClose(x.sum({ axes: 1, keepDims: true }), { shape: [2, 1], data: [6, 15] }, EXACT);
  assertClose(x.mean({ axes: -1 }), { shape: [2], data: [2, 5] }, EXACT);
  assertClose(x.max({ axes: 0 }), { shape: [3], data: [4, 5, 6] }, EXACT);
  assertClose(x.min({ axes: 1, keepDims: true }), { shape: [2, 1], data: [1, 4] }, EXACT);
  assertClose(variance(x, { axes: 1 }), { shape: [2], data: [2 / 3, 2 / 3] }, ULP);
  assertClose(variance(x, { axes: 1, correction: 1 }), { shape: [2], data: [1, 1] }, ULP);
  assertClose(variance(x), 35 / 12, ULP);
});

test('argmax along an axis, first index on ties', () => {
  const x = Tensor.from([3, 1, 3, 0, 7, 2, 5, 5, 9, 9, -1, 9], [2, 2, 3]);
  const a = argmax(x, -1);
  assert.equal(a.dtype, 'int64');
  assert.deepEqual(a.shape, [2, 2]);
  assert.deepEqual(a.toArray(), [0, 1, 2, 0]);
  const a1 = x.argmax(1, true);
  assert.deepEqual(a1.shape, [2, 1, 3]);
  assert.deepEqual(a1.toArray(), [0, 1, 0, 1, 0, 0]); // [3,0]→0 [1,7]→1 [3,2]→0 [5,9]→1 [5,−1]→0 [9,9]→0
  const r = uniform([3, 5, 4], 6);
  const expected = reduce(r, [1], false, (v) => v.indexOf(Math.max(...v)));
  assertClose(argmax(r, 1), expected, EXACT);
});
