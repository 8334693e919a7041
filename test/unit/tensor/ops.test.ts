// Forward values of the eager ops against hand-worked numbers and naive float64 JS references
// (test/helpers/reference.ts). Tolerances, float32 throughout:
//   EXACT  { atol 0, rtol 0 }        shape ops, selection, max/min, comparisons, and the IEEE-rounded
//                                    arithmetic (+ − × ÷ √ give the float32 rounding of the exact result,
//                                    so the reference is Math.fround of the float64 result)
//   ULP    { atol 1e-6, rtol 2e-6 }  transcendental functions (onnxruntime's vectorised exp/tanh/erf are
//                                    accurate to a few ulp; float32's ulp is 1.2e-7 relative)
//   ACCUM  { atol 1e-5, rtol 1e-5 }  sums, dot products and normalisations over up to ~100 terms of O(1)
//                                    values (float32 accumulation error grows with the number of terms)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  abs,
  argmax,
  backward,
  clamp,
  concat,
  conv2d,
  convTranspose2d,
  cos,
  cumsum,
  enableGrad,
  exp,
  gather,
  gelu,
  groupNorm,
  indexSelect,
  interpolate,
  layerNorm,
  linear,
  linearChunks,
  log,
  logSoftmax,
  logSumExp,
  matmul,
  max,
  maximum,
  mean,
  min,
  minimum,
  noGrad,
  not,
  quickGelu,
  relu,
  runOp1,
  type Shape,
  sigmoid,
  silu,
  sin,
  softmax,
  sqrt,
  sum,
  Tensor,
  tanh,
  variance,
  where,
} from '../../../src/tensor/index.js';
import { uniform } from '../../helpers/random.js';
import {
  at,
  bilinearRef,
  build,
  conv2dRef,
  convTranspose2dRef,
  erf,
  indexOf,
  matmulRef,
  nearestRef,
  numel,
  reduce,
  valuesOf,
  zipWith,
} from '../../helpers/reference.js';
import { assertClose, type Reference } from '../../helpers/tolerance.js';

const EXACT = { atol: 0, rtol: 0 };
const ULP = { atol: 1e-6, rtol: 2e-6 };
const ACCUM = { atol: 1e-5, rtol: 1e-5 };

const f32 = Math.fround;

function map(x: Tensor, fn: (v: number) => number): Reference {
  return { shape: x.shape, data: valuesOf(x).map(fn) };
}

// elementwise arithmetic and broadcasting

test('add/sub/mul/div: hand-worked broadcasting of a column against a row', () => {
  const col = Tensor.from([1, 2], [2, 1]);
  const row = Tensor.from([10, 20, 30], [3]);
  assertClose(col.add(row), { shape: [2, 3], data: [11, 21, 31, 12, 22, 32] }, EXACT);
  assertClose(col.sub(row), { shape: [2, 3], data: [-9, -19, -29, -8, -18, -28] }, EXACT);
  assertClose(col.mul(row), { shape: [2, 3], data: [10, 20, 30, 20, 40, 60] }, EXACT);
  assertClose(row.div(col), { shape: [2, 3], data: [10, 20, 30, 5, 10, 15] }, EXACT);
  assertClose(Tensor.from([1, 2, 3]).add(0.5), [1.5, 2.5, 3.5], EXACT);
  assertClose(Tensor.from([1, 2, 3]).mul(-2), [-2, -4, -6], EXACT);
});

test('add/sub/mul/div/pow/maximum/minimum broadcast like NumPy over random operands', () => {
  const cases: [Shape, Shape][] = [
    [
      [2, 3, 4],
      [2, 3, 4],
    ],
    [
      [2, 3, 4],
      [3, 1],
    ],
    [
      [2, 1, 4],
      [3, 1],
    ],
    [[1], [2, 1, 3]],
    [[4], []],
    [
      [2, 1, 3, 1],
      [1, 5, 1, 2],
    ],
  ];
  cases.forEach(([sa, sb], k) => {
    const a = uniform(sa, 10 + k);
    const b = uniform(sb, 20 + k, 0.5, 2); // nonzero, positive: safe divisor and pow base
    const label = `${JSON.stringify(sa)} ∘ ${JSON.stringify(sb)}`;
    assertClose(
      a.add(b),
      zipWith([a, b], (x, y) => f32(x + y)),
      { ...EXACT, label: `add ${label}` },
    );
    assertClose(
      a.sub(b),
      zipWith([a, b], (x, y) => f32(x - y)),
      { ...EXACT, label: `sub ${label}` },
    );
    assertClose(
      b.sub(a),
      zipWith([b, a], (x, y) => f32(x - y)),
      { ...EXACT, label: `sub ${label}` },
    );
    assertClose(
      a.mul(b),
      zipWith([a, b], (x, y) => f32(x * y)),
      { ...EXACT, label: `mul ${label}` },
    );
    assertClose(
      a.div(b),
      zipWith([a, b], (x, y) => f32(x / y)),
      { ...EXACT, label: `div ${label}` },
    );
    assertClose(
      b.pow(a),
      zipWith([b, a], (x, y) => x ** y),
      { ...ULP, label: `pow ${label}` },
    );
    assertClose(maximum(a, b), zipWith([a, b], Math.max), { ...EXACT, label: `maximum ${label}` });
    assertClose(minimum(a, b), zipWith([a, b], Math.min), { ...EXACT, label: `minimum ${label}` });
  });
});

test('pow with integer and fractional exponents', () => {
  assertClose(Tensor.from([-2, 0, 3]).pow(2), [4, 0, 9], EXACT);
  assertClose(Tensor.from([-2, 1, 3]).pow(3), [-8, 1, 27], EXACT);
  assertClose(Tensor.from([4, 9, 2]).pow(0.5), [2, 3, Math.SQRT2], ULP);
  assertClose(Tensor.from([2, 4]).pow(-1), [0.5, 0.25], EXACT);
});

test('int64 arithmetic stays integral', () => {
  const a = Tensor.int64([1, -2, 3]);
  const y = a.add(Tensor.int64([10, 20, 30])).mul(2);
  assert.equal(y.dtype, 'int64');
  assert.deepEqual(y.toArray(), [22, 36, 66]);
});

// unary math and activations

test('unary math matches Math.* in float64', () => {
  const x = uniform([3, 7], 1, -3, 3);
  const pos = uniform([3, 7], 2, 0.05, 5);
  assertClose(
    x.neg(),
    map(x, (v) => -v),
    EXACT,
  );
  assertClose(abs(x), map(x, Math.abs), EXACT);
  assertClose(exp(x), map(x, Math.exp), ULP);
  assertClose(log(pos), map(pos, Math.log), ULP);
  assertClose(
    sqrt(pos),
    map(pos, (v) => f32(Math.sqrt(v))),
    EXACT,
  );
  assertClose(sin(x), map(x, Math.sin), ULP);
  assertClose(cos(x), map(x, Math.cos), ULP);
  assertClose(tanh(x), map(x, Math.tanh), ULP);
  assertClose(
    sigmoid(x),
    map(x, (v) => 1 / (1 + Math.exp(-v))),
    ULP,
  );
  assertClose(
    relu(x),
    map(x, (v) => Math.max(v, 0)),
    EXACT,
  );
});

test('exp/log/sqrt/tanh/sigmoid: hand-worked values and extremes', () => {
  assertClose(exp(Tensor.from([0, 1, -1])), [1, Math.E, 1 / Math.E], ULP);
  assertClose(log(Tensor.from([1, Math.E, 0.5])), [0, 1, -Math.LN2], ULP);
  assertClose(sqrt(Tensor.from([0, 1, 4, 2])), [0, 1, 2, Math.SQRT2], ULP);
  assertClose(tanh(Tensor.from([0, 20, -20])), [0, 1, -1], ULP);
  assertClose(sigmoid(Tensor.from([0, 40, -40])), [0.5, 1, 0], ULP);
  assert.deepEqual(log(Tensor.from([0])).toArray(), [Number.NEGATIVE_INFINITY]);
});

test('silu and quick_gelu: x·σ(x) and x·σ(1.702x)', () => {
  const x = uniform([4, 5], 3, -6, 6);
  const sig = (v: number): number => 1 / (1 + Math.exp(-v));
  assertClose(
    silu(x),
    map(x, (v) => v * sig(v)),
    ULP,
  );
  assertClose(
    quickGelu(x),
    map(x, (v) => v * sig(1.702 * v)),
    ULP,
  );
  // hand-worked: silu(1) = 1/(1+e⁻¹)
  assertClose(silu(Tensor.from([0, 1, -1])), [0, 0.7310585786300049, -0.2689414213699951], ULP);
});

test('gelu, exact erf form and tanh approximation, vs a JS erf/tanh reference', () => {
  const x = uniform([5, 8], 4, -5, 5);
  const exact = (v: number): number => 0.5 * v * (1 + erf(v / Math.SQRT2));
  const approx = (v: number): number =>
    0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
  assertClose(gelu(x), map(x, exact), ULP);
  assertClose(x.gelu('none'), map(x, exact), ULP);
  assertClose(gelu(x, 'tanh'), map(x, approx), ULP);
  // the two forms differ by up to ≈ 5e-4: a test that mixed them up would see it
  const gap = Math.max(...valuesOf(x).map((v) => Math.abs(exact(v) - approx(v))));
  assert.ok(gap > 1e-4, `gelu forms differ by ${gap} only`);
  // hand-worked: gelu(1) = Φ(1) = 0.841344746…, gelu(−1) = −(1 − Φ(1))
  assertClose(
    gelu(Tensor.from([0, 1, -1, 3])),
    [0, 0.8413447460685429, -0.15865525393145707, 2.99595002],
    ULP,
  );
  assertClose(erf(1), 0.8427007929497149, { atol: 1e-14, rtol: 0 }); // the reference itself
  assertClose(erf(3.5), 0.9999992569016276, { atol: 1e-11, rtol: 0 });
  assertClose(erf(-5), -0.9999999999984626, { atol: 1e-13, rtol: 0 });
});

test('clamp to [lo, hi], either side open', () => {
  const x = Tensor.from([-3, -1, 0, 0.5, 2, 7]);
  assertClose(clamp(x, -1, 1), [-1, -1, 0, 0.5, 1, 1], EXACT);
  assertClose(clamp(x, 0), [0, 0, 0, 0.5, 2, 7], EXACT);
  assertClose(clamp(x, undefined, 0.5), [-3, -1, 0, 0.5, 0.5, 0.5], EXACT);
});

// comparisons, where, cast

test('comparisons broadcast and return bool', () => {
  const a = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]);
  const b = Tensor.from([2, 5, 3], [3]);
  const cases: [Tensor, number[]][] = [
    [a.eq(b), [0, 0, 1, 0, 1, 0]],
    [a.lt(b), [1, 1, 0, 0, 0, 0]],
    [a.le(b), [1, 1, 1, 0, 1, 0]],
    [a.gt(b), [0, 0, 0, 1, 0, 1]],
    [a.ge(b), [0, 0, 1, 1, 1, 1]],
    [a.gt(3.5), [0, 0, 0, 1, 1, 1]],
  ];
  for (const [t, expected] of cases) {
    assert.equal(t.dtype, 'bool');
    assert.deepEqual(t.shape, [2, 3]);
    assert.deepEqual(t.toArray(), expected);
  }
  assert.deepEqual(a.gt(1).and(a.lt(5)).toArray(), [0, 1, 1, 1, 0, 0]);
  assert.deepEqual(not(a.gt(3)).toArray(), [1, 1, 1, 0, 0, 0]);
});

test('where broadcasts condition, x and y', () => {
  const cond = Tensor.bool([true, false], [2, 1]);
  const a = Tensor.from([1, 2, 3], [1, 3]);
  assertClose(where(cond, a, -1), { shape: [2, 3], data: [1, 2, 3, -1, -1, -1] }, EXACT);
  const c2 = Tensor.bool([1, 0, 1]);
  const b = Tensor.from([10, 20, 30, 40, 50, 60], [2, 3]);
  assertClose(where(c2, a, b), { shape: [2, 3], data: [1, 20, 3, 1, 50, 3] }, EXACT);
});

test('cast between float32, int32, int64 and bool', () => {
  const x = Tensor.from([-1.7, -0.2, 0, 0.9, 2.5]);
  const i32 = x.cast('int32');
  assert.equal(i32.dtype, 'int32');
  assert.deepEqual(i32.toArray(), [-1, 0, 0, 0, 2]); // truncation toward zero, as C casts
  const i64 = x.cast('int64');
  assert.equal(i64.dtype, 'int64');
  assert.deepEqual(i64.toArray(), [-1, 0, 0, 0, 2]);
  const b = x.cast('bool');
  assert.equal(b.dtype, 'bool');
  assert.deepEqual(b.toArray(), [1, 1, 0, 1, 1]);
  const back = Tensor.bool([1, 0, 1]).cast('float32');
  assert.equal(back.dtype, 'float32');
  assert.deepEqual(back.toArray(), [1, 0, 1]);
  assert.deepEqual(Tensor.int64([3, -4]).cast('float32').toArray(), [3, -4]);
  assert.equal(x.cast('float32'), x);
});

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

// softmax family

test('softmax/logSoftmax/logSumExp over an axis vs float64 references', () => {
  const x = uniform([2, 3, 4], 7, -4, 4);
  const lse = (v: number[]): number => {
    const m = Math.max(...v);
    return m + Math.log(v.reduce((a, b) => a + Math.exp(b - m), 0));
  };
  for (const axis of [0, 1, 2, -1]) {
    const a = axis < 0 ? axis + 3 : axis;
    const l = reduce(x, [a], true, lse);
    const lAt = (idx: number[]): number =>
      at(
        l,
        idx.map((v, d) => (d === a ? 0 : v)),
      );
    const sm = build(x.shape, (idx) => Math.exp(at(x, idx) - lAt(idx)));
    const lsm = build(x.shape, (idx) => at(x, idx) - lAt(idx));
    assertClose(softmax(x, axis), sm, { ...ULP, label: `softmax axis ${axis}` });
    assertClose(logSoftmax(x, axis), lsm, { ...ULP, label: `logSoftmax axis ${axis}` });
    assertClose(logSumExp(x, axis, true), l, { ...ULP, label: `logSumExp axis ${axis}` });
    assertClose(logSumExp(x, axis), reduce(x, [a], false, lse), { ...ULP, label: `logSumExp axis ${axis}` });
  }
  assertClose(x.softmax(), softmax(x, -1), EXACT);
});

test('softmax family is stable for large logits (hand-worked)', () => {
  const x = Tensor.from([1000, 1001, 1002, -1000, -1000, -1000], [2, 3]);
  const e = [Math.exp(-2), Math.exp(-1), 1];
  const s = e[0]! + e[1]! + e[2]!;
  assertClose(softmax(x), [e[0]! / s, e[1]! / s, 1 / s, 1 / 3, 1 / 3, 1 / 3], ULP);
  assertClose(
    logSoftmax(x),
    [-2 - Math.log(s), -1 - Math.log(s), -Math.log(s), ...Array(3).fill(-Math.log(3))],
    {
      atol: 1e-6,
      rtol: 1e-6,
    },
  );
  assertClose(logSumExp(x), [1002 + Math.log(s), -1000 + Math.log(3)], { atol: 0, rtol: 1e-7 });
});

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

// convolutions

test('conv2d: hand-worked 3×3 input, 2×2 ones kernel', () => {
  const x = Tensor.from([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
  const w = Tensor.ones([1, 1, 2, 2]);
  assertClose(conv2d(x, w), { shape: [1, 1, 2, 2], data: [12, 16, 24, 28] }, EXACT);
  assertClose(conv2d(x, w, Tensor.from([1])), { shape: [1, 1, 2, 2], data: [13, 17, 25, 29] }, EXACT);
  // padding 1, stride 2: windows at (−1,−1), (−1,1), (1,−1), (1,1)
  assertClose(
    conv2d(x, w, null, { padding: 1, stride: 2 }),
    { shape: [1, 1, 2, 2], data: [1, 5, 11, 28] },
    EXACT,
  );
});

test('conv2d with stride, padding, dilation and groups vs a naive JS convolution', () => {
  const cases = [
    { x: [2, 3, 6, 6], w: [4, 3, 3, 3], stride: 1, padding: 1, dilation: 1, groups: 1 },
    { x: [1, 4, 7, 7], w: [6, 2, 3, 3], stride: 2, padding: 1, dilation: 1, groups: 2 },
    { x: [1, 2, 8, 7], w: [3, 2, 3, 2], stride: 1, padding: 2, dilation: 2, groups: 1 },
    { x: [2, 4, 9, 8], w: [4, 1, 3, 3], stride: [2, 3], padding: [1, 0], dilation: [1, 2], groups: 4 },
    { x: [1, 6, 5, 5], w: [6, 2, 1, 1], stride: 1, padding: 0, dilation: 1, groups: 3 },
    { x: [1, 2, 5, 6], w: [4, 2, 4, 4], stride: 3, padding: 2, dilation: 1, groups: 1 },
  ] as const;
  cases.forEach((c, k) => {
    const x = uniform(c.x, 60 + k);
    const w = uniform(c.w, 70 + k);
    const bias = uniform([c.w[0]], 80 + k);
    const pair = (v: number | readonly [number, number]): [number, number] =>
      typeof v === 'number' ? [v, v] : [v[0], v[1]];
    const p = {
      stride: pair(c.stride),
      padding: pair(c.padding),
      dilation: pair(c.dilation),
      groups: c.groups,
    };
    const opts = { stride: p.stride, padding: p.padding, dilation: p.dilation, groups: c.groups };
    assertClose(conv2d(x, w, bias, opts), conv2dRef(x, w, bias, p), { ...ACCUM, label: `conv2d case ${k}` });
    assertClose(conv2d(x, w, null, opts), conv2dRef(x, w, null, p), { ...ACCUM, label: `conv2d case ${k}` });
  });
});

test('convTranspose2d: hand-worked stride-2 upsampling with a 2×2 kernel', () => {
  const x = Tensor.from([1, 2, 3, 4], [1, 1, 2, 2]);
  const w = Tensor.from([1, 10, 100, 1000], [1, 1, 2, 2]);
  const y = convTranspose2d(x, w, null, { stride: 2 });
  // each input pixel v writes v·w into its own 2×2 block
  assertClose(
    y,
    {
      shape: [1, 1, 4, 4],
      data: [1, 10, 2, 20, 100, 1000, 200, 2000, 3, 30, 4, 40, 300, 3000, 400, 4000],
    },
    EXACT,
  );
  // stride 1: overlapping blocks add up
  assertClose(
    convTranspose2d(x, Tensor.ones([1, 1, 2, 2])),
    { shape: [1, 1, 3, 3], data: [1, 3, 2, 4, 10, 6, 3, 7, 4] },
    EXACT,
  );
});

test('convTranspose2d with stride, padding, output padding, dilation and groups vs a naive JS reference', () => {
  const cases = [
    { x: [2, 3, 4, 4], w: [3, 2, 3, 3], stride: 1, padding: 1, dilation: 1, groups: 1, outputPadding: 0 },
    { x: [1, 4, 3, 5], w: [4, 3, 3, 3], stride: 2, padding: 1, dilation: 1, groups: 1, outputPadding: 1 },
    { x: [1, 4, 4, 3], w: [4, 2, 3, 2], stride: 2, padding: 0, dilation: 2, groups: 2, outputPadding: 1 },
    {
      x: [2, 2, 3, 3],
      w: [2, 3, 4, 4],
      stride: [3, 2],
      padding: [1, 2],
      dilation: 1,
      groups: 1,
      outputPadding: [2, 0],
    },
  ] as const;
  cases.forEach((c, k) => {
    const x = uniform(c.x, 90 + k);
    const w = uniform(c.w, 100 + k);
    const bias = uniform([c.w[1] * c.groups], 110 + k);
    const pair = (v: number | readonly [number, number]): [number, number] =>
      typeof v === 'number' ? [v, v] : [v[0], v[1]];
    const p = {
      stride: pair(c.stride),
      padding: pair(c.padding),
      dilation: pair(c.dilation),
      groups: c.groups,
      outputPadding: pair(c.outputPadding),
    };
    assertClose(convTranspose2d(x, w, bias, p), convTranspose2dRef(x, w, bias, p), {
      ...ACCUM,
      label: `convTranspose2d case ${k}`,
    });
    assertClose(convTranspose2d(x, w, null, p), convTranspose2dRef(x, w, null, p), {
      ...ACCUM,
      label: `convTranspose2d case ${k}`,
    });
  });
});

// normalisation

function groupNormRef(x: Tensor, groups: number, w: Tensor, b: Tensor, eps: number): Reference {
  const [n, c] = x.shape as [number, number];
  const spatial = numel(x.shape.slice(2));
  const cg = c / groups;
  const stats = new Map<string, [number, number]>();
  for (let i = 0; i < n; i++) {
    for (let g = 0; g < groups; g++) {
      const v: number[] = [];
      for (let ch = g * cg; ch < (g + 1) * cg; ch++) {
        for (let s = 0; s < spatial; s++) v.push(Number(x.data[(i * c + ch) * spatial + s]));
      }
      const m = v.reduce((a, q) => a + q, 0) / v.length;
      const vr = v.reduce((a, q) => a + (q - m) ** 2, 0) / v.length;
      stats.set(`${i},${g}`, [m, vr]);
    }
  }
  return build(x.shape, (idx) => {
    const [i, ch] = idx as [number, number];
    const [m, vr] = stats.get(`${i},${Math.floor(ch / cg)}`) as [number, number];
    return ((at(x, idx) - m) / Math.sqrt(vr + eps)) * at(w, [ch]) + at(b, [ch]);
  });
}

function layerNormRef(x: Tensor, w: Tensor | null, b: Tensor | null, eps: number, dims: number): Reference {
  const inner = numel(x.shape.slice(x.rank - dims));
  const vals = valuesOf(x);
  const data = vals.map((v, i) => {
    const start = Math.floor(i / inner) * inner;
    const row = vals.slice(start, start + inner);
    const m = row.reduce((a, q) => a + q, 0) / inner;
    const vr = row.reduce((a, q) => a + (q - m) ** 2, 0) / inner;
    const k = i % inner;
    return ((v - m) / Math.sqrt(vr + eps)) * (w ? Number(w.data[k]) : 1) + (b ? Number(b.data[k]) : 0);
  });
  return { shape: x.shape, data };
}

test('groupNorm vs a naive reference, fused kernel and the recorded decomposition', () => {
  const cases: [Shape, number, number][] = [
    [[2, 6, 3, 4], 3, 1e-5],
    [[1, 8, 5], 2, 1e-6],
    [[2, 4, 2, 2], 4, 1e-2],
    [[1, 6, 3, 3], 1, 1e-5],
  ];
  cases.forEach(([shape, groups, eps], k) => {
    const x = uniform(shape, 120 + k, -2, 3);
    const w = uniform([shape[1] as number], 130 + k, 0.5, 1.5);
    const b = uniform([shape[1] as number], 140 + k);
    const ref = groupNormRef(x, groups, w, b, eps);
    const label = `groupNorm ${JSON.stringify(shape)} / ${groups}`;
    assertClose(
      noGrad(() => groupNorm(x, groups, w, b, eps)),
      ref,
      { ...ACCUM, label: `${label} (fused)` },
    );
    const xr = x.detach().requireGrad();
    assertClose(
      enableGrad(() => groupNorm(xr, groups, w, b, eps)),
      ref,
      { ...ACCUM, label: `${label} (recorded)` },
    );
  });
});

test('layerNorm vs a naive reference, with and without affine, over 1 or 2 dims', () => {
  const x = uniform([2, 3, 8], 150, -2, 3);
  const w8 = uniform([8], 151, 0.5, 1.5);
  const b8 = uniform([8], 152);
  const w24 = uniform([3, 8], 153, 0.5, 1.5);
  const b24 = uniform([3, 8], 154);
  const cases: [Tensor | null, Tensor | null, number, number][] = [
    [w8, b8, 1e-5, 1],
    [null, null, 1e-5, 1],
    [w8, null, 1e-3, 1],
    [w24, b24, 1e-5, 2],
    [null, null, 1e-6, 2],
  ];
  cases.forEach(([w, b, eps, dims], k) => {
    const ref = layerNormRef(x, w, b, eps, dims);
    const label = `layerNorm case ${k}`;
    assertClose(
      noGrad(() => layerNorm(x, w, b, eps, dims)),
      ref,
      { ...ACCUM, label: `${label} (fused)` },
    );
    const xr = x.detach().requireGrad();
    assertClose(
      enableGrad(() => layerNorm(xr, w, b, eps, dims)),
      ref,
      { ...ACCUM, label: `${label} (recorded)` },
    );
  });
});

// resize

test('interpolate nearest: hand-worked ×2', () => {
  const x = Tensor.from([1, 2, 3, 4], [1, 1, 2, 2]);
  assertClose(
    interpolate(x, { scale: 2 }),
    { shape: [1, 1, 4, 4], data: [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4] },
    EXACT,
  );
});

test('interpolate nearest follows PyTorch: src = floor(dst·in/out)', () => {
  const sizes: [Shape, [number, number]][] = [
    [
      [2, 3, 4, 5],
      [8, 10],
    ],
    [
      [1, 2, 3, 5],
      [7, 4],
    ],
    [
      [1, 1, 5, 6],
      [3, 4],
    ],
    [
      [1, 1, 3, 3],
      [9, 6],
    ],
    [
      [1, 2, 7, 6],
      [3, 5],
    ],
    [
      [1, 1, 4, 4],
      [4, 4],
    ],
  ];
  sizes.forEach(([shape, size], k) => {
    const x = uniform(shape, 160 + k);
    assertClose(interpolate(x, { size }), nearestRef(x, size), {
      ...EXACT,
      label: `nearest ${shape} → ${size}`,
    });
  });
  const x = uniform([1, 2, 3, 4], 170);
  assertClose(interpolate(x, { scale: 3, mode: 'nearest' }), nearestRef(x, [9, 12]), EXACT);
});

test('interpolate bilinear follows PyTorch: half_pixel, and align_corners', () => {
  const sizes: [Shape, [number, number]][] = [
    [
      [2, 3, 4, 5],
      [8, 10],
    ],
    [
      [1, 2, 3, 5],
      [7, 4],
    ],
    [
      [1, 1, 6, 6],
      [4, 3],
    ],
    [
      [1, 1, 4, 4],
      [4, 4],
    ],
    [
      [1, 1, 2, 3],
      [5, 1],
    ],
  ];
  sizes.forEach(([shape, size], k) => {
    const x = uniform(shape, 180 + k);
    assertClose(interpolate(x, { size, mode: 'bilinear' }), bilinearRef(x, size), {
      ...ULP,
      label: `bilinear ${shape} → ${size}`,
    });
    assertClose(interpolate(x, { size, mode: 'bilinear', alignCorners: true }), bilinearRef(x, size, true), {
      ...ULP,
      label: `bilinear align_corners ${shape} → ${size}`,
    });
  });
  // hand-worked ×2 of [0, 1]: half-pixel centres at −¼, ¼, ¾, 1¼ clamp to [0, 1]
  const row = Tensor.from([0, 1], [1, 1, 1, 2]);
  assertClose(interpolate(row, { size: [1, 4], mode: 'bilinear' }), [0, 0.25, 0.75, 1], ULP);
  assertClose(
    interpolate(row, { size: [1, 4], mode: 'bilinear', alignCorners: true }),
    [0, 1 / 3, 2 / 3, 1],
    ULP,
  );
});

// cumulative sum

test('cumsum along an axis: inclusive, exclusive, reversed', () => {
  const x = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]);
  assertClose(cumsum(x, 1), { shape: [2, 3], data: [1, 3, 6, 4, 9, 15] }, EXACT);
  assertClose(cumsum(x, 0), { shape: [2, 3], data: [1, 2, 3, 5, 7, 9] }, EXACT);
  assertClose(cumsum(x, -1, { exclusive: true }), { shape: [2, 3], data: [0, 1, 3, 0, 4, 9] }, EXACT);
  assertClose(cumsum(x, 1, { reverse: true }), { shape: [2, 3], data: [6, 5, 3, 15, 11, 6] }, EXACT);
  assertClose(
    cumsum(x, 1, { reverse: true, exclusive: true }),
    { shape: [2, 3], data: [5, 3, 0, 11, 6, 0] },
    EXACT,
  );
  const r = uniform([3, 5, 2], 190);
  const ref = build(r.shape, ([i, j, k]) => {
    let s = 0;
    for (let q = 0; q <= (j as number); q++) s += at(r, [i as number, q, k as number]);
    return s;
  });
  assertClose(cumsum(r, 1), ref, ACCUM);
});

// shape ops

test('reshape/unsqueeze/squeeze/flatten keep the data in row-major order', () => {
  const x = Tensor.from([0, 1, 2, 3, 4, 5], [2, 3]);
  const r = x.reshape([3, -1]);
  assert.deepEqual(r.shape, [3, 2]);
  assert.deepEqual(r.toArray(), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(x.reshape([-1]).shape, [6]);
  assert.deepEqual(x.unsqueeze(0).shape, [1, 2, 3]);
  assert.deepEqual(x.unsqueeze(-1).shape, [2, 3, 1]);
  assert.deepEqual(x.unsqueeze(1).shape, [2, 1, 3]);
  assert.deepEqual(x.reshape([1, 2, 1, 3]).squeeze().shape, [2, 3]);
  assert.deepEqual(x.reshape([1, 2, 1, 3]).squeeze(2).shape, [1, 2, 3]);
  const y = uniform([2, 3, 4, 5], 200);
  assert.deepEqual(y.flatten().shape, [120]);
  assert.deepEqual(y.flatten(1).shape, [2, 60]);
  assert.deepEqual(y.flatten(1, 2).shape, [2, 12, 5]);
  assert.deepEqual(y.flatten(2).toArray(), y.toArray());
});

test('permute and transpose vs index arithmetic', () => {
  const x = uniform([2, 3, 4], 210);
  for (const perm of [
    [2, 0, 1],
    [1, 0, 2],
    [0, 2, 1],
    [2, 1, 0],
    [-1, 0, 1],
  ]) {
    const p = perm.map((a) => (a < 0 ? a + 3 : a));
    const ref = build(
      p.map((a) => x.shape[a] as number),
      (idx) => {
        const src = new Array<number>(3);
        p.forEach((a, i) => {
          src[a] = idx[i] as number;
        });
        return at(x, src);
      },
    );
    assertClose(x.permute(perm), ref, { ...EXACT, label: `permute ${perm}` });
  }
  assertClose(
    Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]).transpose(),
    { shape: [3, 2], data: [1, 4, 2, 5, 3, 6] },
    EXACT,
  );
  const t = x.transpose(0, 2);
  assertClose(
    t,
    build([4, 3, 2], ([a, b, c]) => at(x, [c as number, b as number, a as number])),
    EXACT,
  );
});

test('expand broadcasts to a larger shape', () => {
  const x = Tensor.from([1, 2, 3], [3, 1]);
  assertClose(
    x.expand([2, 3, 4]),
    build([2, 3, 4], ([, j]) => (j as number) + 1),
    EXACT,
  );
  assertClose(Tensor.from([5]).expand([2, 2]), { shape: [2, 2], data: [5, 5, 5, 5] }, EXACT);
});

test('slice follows Python slicing: negative indices, clamped ends, steps', () => {
  const x = Tensor.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const cases: [number, number | undefined, number, number[]][] = [
    [2, 5, 1, [2, 3, 4]],
    [-3, undefined, 1, [7, 8, 9]],
    [1, -1, 1, [1, 2, 3, 4, 5, 6, 7, 8]],
    [0, 100, 3, [0, 3, 6, 9]],
    [-100, 2, 1, [0, 1]],
    [1, 8, 2, [1, 3, 5, 7]],
    [5, 5, 1, []],
    [-1, undefined, -1, [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]],
    [8, 2, -2, [8, 6, 4]],
    [100, -100, -3, [9, 6, 3, 0]],
    [-100, undefined, -1, []],
    [2, 5, -1, []],
  ];
  for (const [s, e, st, expected] of cases) {
    const y = x.slice(0, s, e, st);
    assert.deepEqual(y.toArray(), expected, `slice(${s}, ${e}, ${st})`);
  }
  const m = uniform([3, 4, 5], 220);
  assertClose(
    m.slice(1, 1, 3).slice(2, 0, 5, 2),
    build([3, 2, 3], ([i, j, k]) => at(m, [i as number, (j as number) + 1, 2 * (k as number)])),
    EXACT,
  );
  assertClose(
    m.slice(-1, -2),
    build([3, 4, 2], ([i, j, k]) => at(m, [i as number, j as number, 3 + (k as number)])),
    EXACT,
  );
});

test('concat and split are inverse along any axis', () => {
  const a = uniform([2, 1, 3], 230);
  const b = uniform([2, 2, 3], 231);
  const c = uniform([2, 3, 3], 232);
  const cat = concat([a, b, c], 1);
  const ref = build([2, 6, 3], ([i, j, k]) => {
    const jj = j as number;
    if (jj < 1) return at(a, [i as number, jj, k as number]);
    if (jj < 3) return at(b, [i as number, jj - 1, k as number]);
    return at(c, [i as number, jj - 3, k as number]);
  });
  assertClose(cat, ref, EXACT);
  assertClose(concat([a, b, c], -2), ref, EXACT);
  const [a2, b2, c2] = cat.split([1, 2, 3], 1) as [Tensor, Tensor, Tensor];
  assertClose(a2, a, EXACT);
  assertClose(b2, b, EXACT);
  assertClose(c2, c, EXACT);
  const halves = cat.split(2, 1);
  assert.equal(halves.length, 2);
  assertClose(
    halves[0] as Tensor,
    build([2, 3, 3], (idx) => at(ref, idx)),
    EXACT,
  );
  assertClose(
    halves[1] as Tensor,
    build([2, 3, 3], ([i, j, k]) => at(ref, [i as number, (j as number) + 3, k as number])),
    EXACT,
  );
  // hand-worked
  assertClose(
    concat([Tensor.from([1, 2], [1, 2]), Tensor.from([3, 4], [1, 2])], 0),
    { shape: [2, 2], data: [1, 2, 3, 4] },
    EXACT,
  );
  assertClose(
    concat([Tensor.from([1, 2], [1, 2]), Tensor.from([3, 4], [1, 2])], 1),
    { shape: [1, 4], data: [1, 2, 3, 4] },
    EXACT,
  );
});

test('pad: constant, reflect and edge modes (NumPy semantics), negative pads crop', () => {
  const x = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]);
  // pads = [begin_0, begin_1, end_0, end_1]
  assertClose(
    x.pad([0, 1, 1, 2], 'constant', 9),
    {
      shape: [3, 6],
      data: [9, 1, 2, 3, 9, 9, 9, 4, 5, 6, 9, 9, 9, 9, 9, 9, 9, 9],
    },
    EXACT,
  );
  assertClose(
    x.pad([0, 2, 0, 1], 'reflect'),
    { shape: [2, 6], data: [3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5] },
    EXACT,
  );
  assertClose(
    x.pad([1, 1, 0, 1], 'edge'),
    {
      shape: [3, 5],
      data: [1, 1, 2, 3, 3, 1, 1, 2, 3, 3, 4, 4, 5, 6, 6],
    },
    EXACT,
  );
  assertClose(x.pad([0, -1, 0, 0]), { shape: [2, 2], data: [2, 3, 5, 6] }, EXACT);
  assertClose(x.pad([0, 0, 0, 0]), x, EXACT);
});

test('gather and indexSelect pick along an axis, with multi-dim and negative indices', () => {
  const x = uniform([3, 4, 2], 240);
  const idx = Tensor.int64([3, 0, -1, 1, 1, 0], [2, 3]);
  const y = gather(x, idx, 1);
  const iv = [3, 0, 3, 1, 1, 0];
  assertClose(
    y,
    build([3, 2, 3, 2], ([i, p, q, k]) =>
      at(x, [i as number, iv[(p as number) * 3 + (q as number)] as number, k as number]),
    ),
    EXACT,
  );
  const rows = indexSelect(x, 0, [2, 2, 0]);
  assertClose(
    rows,
    build([3, 4, 2], ([i, j, k]) => at(x, [[2, 2, 0][i as number] as number, j as number, k as number])),
    EXACT,
  );
  const emb = Tensor.from([0, 0, 1, 1, 2, 2], [3, 2]);
  assertClose(gather(emb, Tensor.int32([2, 0])), { shape: [2, 2], data: [2, 2, 0, 0] }, EXACT);
  const ids = gather(Tensor.int64([7, 8, 9]), Tensor.int64([2, 2]));
  assert.equal(ids.dtype, 'int64');
  assert.deepEqual(ids.toArray(), [9, 9]);
});

test('reference helpers index row-major', () => {
  // the naive references index with these; a mistake here would make every reference wrong the same way
  assert.deepEqual(indexOf(5, [2, 3]), [1, 2]);
  assert.equal(at(Tensor.from([0, 1, 2, 3, 4, 5], [2, 3]), [1, 0]), 3);
});

test('preallocated outputs: large ops write into attnkit-allocated buffers, with exact values; a wrong shape fails', () => {
  // 2·64·256 = 32768 elements, above the preallocation threshold
  const n = 2 * 64 * 256;
  const a = new Tensor(
    Float32Array.from({ length: n }, (_, i) => (i % 97) * 0.25),
    [2, 64, 256],
  );
  const b = new Tensor(
    Float32Array.from({ length: 256 }, (_, i) => i - 100),
    [256],
  );
  const sum = a.add(b);
  assert.deepEqual(sum.shape, [2, 64, 256]);
  for (let i = 0; i < n; i++) {
    const expected = Math.fround(((i % 97) * 0.25 + ((i % 256) - 100)) as number);
    if (sum.data[i] !== expected) assert.fail(`add at ${i}: ${sum.data[i]} ≠ ${expected}`);
  }
  // matmul (2, 64, 256)·(256, 8): checked against the float64 loop
  const w = new Tensor(
    Float32Array.from({ length: 256 * 8 }, (_, i) => ((i * 7) % 13) / 13 - 0.5),
    [256, 8],
  );
  const y = a.matmul(w);
  assert.deepEqual(y.shape, [2, 64, 8]);
  for (const [r, c] of [
    [0, 0],
    [77, 5],
    [127, 7],
  ] as const) {
    let s = 0;
    for (let k = 0; k < 256; k++) s += (a.data[r * 256 + k] as number) * (w.data[k * 8 + c] as number);
    assert.ok(Math.abs((y.data[r * 8 + c] as number) - s) <= 1e-5 * Math.max(1, Math.abs(s)));
  }
  assert.throws(() => runOp1('Add', [a, a], { shape: [2, 64, 255] }), /Add/);
});
