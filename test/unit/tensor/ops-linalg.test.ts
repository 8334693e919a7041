// Forward values of the matrix products (src/tensor/ops/linalg.ts) against hand-worked numbers and naive
// float64 JS references (test/helpers/reference.ts).
// Tolerances, float32 throughout:
//   EXACT  { atol 0, rtol 0 }        shape ops, selection, max/min, comparisons, and the IEEE-rounded
//                                    arithmetic (+ − × ÷ √ give the float32 rounding of the exact result,
//                                    so the reference is Math.fround of the float64 result)
//   ACCUM  { atol 1e-5, rtol 1e-5 }  sums, dot products and normalisations over up to ~100 terms of O(1)
//                                    values (float32 accumulation error grows with the number of terms)

import { test } from 'node:test';
import {
  backward,
  enableGrad,
  linear,
  linearChunks,
  matmul,
  noGrad,
  type Shape,
  Tensor,
} from '../../../src/tensor/index.js';
import { uniform } from '../../helpers/random.js';
import { at, build, matmulRef } from '../../helpers/reference.js';
import { assertClose } from '../../helpers/tolerance.js';

const EXACT = { atol: 0, rtol: 0 };
const ACCUM = { atol: 1e-5, rtol: 1e-5 };

// matrix products

test('matmul: hand-worked 2×3 · 3×2', () => {
  const a = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = Tensor.from([7, 8, 9, 10, 11, 12], [3, 2]);
  assertClose(a.matmul(b), { shape: [2, 2], data: [58, 64, 139, 154] }, EXACT);
  assertClose(matmul(a, a, { transB: true }), { shape: [2, 2], data: [14, 32, 32, 77] }, EXACT);
  assertClose(
    matmul(a, a, { transA: true, alpha: 0.5 }),
    {
      shape: [3, 3],
      data: [8.5, 11, 13.5, 11, 14.5, 18, 13.5, 18, 22.5],
    },
    EXACT,
  );
});

test('matmul: batched with broadcasting, every transA/transB combination, alpha', () => {
  const cases: [Shape, Shape][] = [
    [
      [5, 7],
      [7, 3],
    ],
    [
      [2, 5, 7],
      [7, 3],
    ],
    [
      [5, 7],
      [4, 7, 3],
    ],
    [
      [2, 1, 5, 7],
      [3, 7, 3],
    ],
    [
      [1, 5, 7],
      [2, 7, 3],
    ],
  ];
  cases.forEach(([sa, sb], k) => {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const swapLast = (s: Shape, t: boolean): Shape =>
          t ? [...s.slice(0, -2), s[s.length - 1] as number, s[s.length - 2] as number] : s;
        const a = uniform(swapLast(sa, transA), 30 + k);
        const b = uniform(swapLast(sb, transB), 40 + k);
        for (const alpha of [1, -0.75]) {
          assertClose(matmul(a, b, { transA, transB, alpha }), matmulRef(a, b, transA, transB, alpha), {
            ...ACCUM,
            label: `matmul ${JSON.stringify(sa)}·${JSON.stringify(sb)} transA ${transA} transB ${transB} α ${alpha}`,
          });
        }
      }
    }
  });
});

test('linear: x·Wᵀ + b with torch weight layout', () => {
  const x = uniform([2, 3, 4], 50);
  const w = uniform([5, 4], 51);
  const b = uniform([5], 52);
  const ref = build([2, 3, 5], ([i, j, o]) => {
    let s = at(b, [o as number]);
    for (let k = 0; k < 4; k++) s += at(x, [i as number, j as number, k]) * at(w, [o as number, k]);
    return s;
  });
  assertClose(linear(x, w, b), ref, ACCUM);
  const noBias = build([2, 3, 5], (idx) => at(ref, idx) - at(b, [idx[2] as number]));
  assertClose(linear(x, w), noBias, ACCUM);
  // hand-worked
  assertClose(
    linear(Tensor.from([1, 2], [1, 2]), Tensor.from([1, 0, 1, 1, 0, -1], [3, 2]), Tensor.from([0, 1, 2])),
    {
      shape: [1, 3],
      data: [1, 4, 0],
    },
    EXACT,
  );
});

test('linearChunks: the chunks of x·Wᵀ + b along the last axis, with and without gradients', () => {
  const x = uniform([2, 3, 4], 53);
  const w = uniform([6, 4], 54);
  const b = uniform([6], 55);
  const whole = linear(x, w, b);
  const want = [0, 1, 2].map((i) => whole.slice(-1, 2 * i, 2 * i + 2));
  // without gradients each chunk is its own Gemm on a view of W's rows
  for (const [i, c] of noGrad(() => linearChunks(x, w, b, 3)).entries()) {
    assertClose(c, want[i] as Tensor, ACCUM);
  }
  for (const [i, c] of noGrad(() => linearChunks(x, w, null, 2)).entries()) {
    assertClose(c, linear(x, w).slice(-1, 3 * i, 3 * i + 3), ACCUM);
  }
  // with gradients the weight's gradient covers every row
  const wg = w.requireGrad();
  const [h, g] = enableGrad(() => linearChunks(x, wg, b, 2)) as [Tensor, Tensor];
  backward(enableGrad(() => h.sum().add(g.sum().mul(2))));
  const colSums = [0, 1, 2, 3].map((k) =>
    x
      .slice(-1, k, k + 1)
      .sum()
      .item(),
  );
  const expected = build([6, 4], ([o, k]) =>
    (o as number) < 3 ? colSums[k as number]! : 2 * colSums[k as number]!,
  );
  assertClose(wg.grad as Tensor, expected, ACCUM);
});
