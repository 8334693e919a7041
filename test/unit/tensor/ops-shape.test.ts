// Forward values of the shape ops (src/tensor/ops/shape.ts) against hand-worked numbers and naive JS
// references (test/helpers/reference.ts), and a check of those references' row-major indexing.
// Tolerances, float32 throughout:
//   EXACT  { atol 0, rtol 0 }        shape ops, selection, max/min, comparisons, and the IEEE-rounded
//                                    arithmetic (+ − × ÷ √ give the float32 rounding of the exact result,
//                                    so the reference is Math.fround of the float64 result)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { concat, gather, indexSelect, Tensor } from '../../../src/tensor/index.js';
import { uniform } from '../../helpers/random.js';
import { at, build, indexOf } from '../../helpers/reference.js';
import { assertClose } from '../../helpers/tolerance.js';

const EXACT = { atol: 0, rtol: 0 };

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
