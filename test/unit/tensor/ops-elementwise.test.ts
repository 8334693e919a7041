// Forward values of the elementwise ops (src/tensor/ops/elementwise.ts: arithmetic and broadcasting,
// unary math and activations, comparisons, where, cast) against hand-worked numbers and naive float64 JS
// references (test/helpers/reference.ts).
// Tolerances, float32 throughout:
//   EXACT  { atol 0, rtol 0 }        shape ops, selection, max/min, comparisons, and the IEEE-rounded
//                                    arithmetic (+ − × ÷ √ give the float32 rounding of the exact result,
//                                    so the reference is Math.fround of the float64 result)
//   ULP    { atol 1e-6, rtol 2e-6 }  transcendental functions (onnxruntime's vectorised exp/tanh/erf are
//                                    accurate to a few ulp; float32's ulp is 1.2e-7 relative)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  abs,
  clamp,
  cos,
  exp,
  gelu,
  log,
  maximum,
  minimum,
  not,
  quickGelu,
  relu,
  type Shape,
  sigmoid,
  silu,
  sin,
  sqrt,
  Tensor,
  tanh,
  where,
} from '../../../src/tensor/index.js';
import { uniform } from '../../helpers/random.js';
import { erf, valuesOf, zipWith } from '../../helpers/reference.js';
import { assertClose, type Reference } from '../../helpers/tolerance.js';

const EXACT = { atol: 0, rtol: 0 };
const ULP = { atol: 1e-6, rtol: 2e-6 };

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
