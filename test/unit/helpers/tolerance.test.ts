// The tolerance helper must fail when it should: a checker that always passes makes every test meaningless.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Tensor } from '../../../src/tensor/index.js';
import { assertClose, type Tolerance, unravel } from '../../helpers/tolerance.js';

const tight = { atol: 1e-6, rtol: 0 };

function failure(fn: () => void): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof assert.AssertionError, `expected an AssertionError, got ${String(e)}`);
    return e.message;
  }
  assert.fail('expected assertClose to fail, but it passed');
}

test('assertClose passes equal and nearly equal values', () => {
  assertClose([1, 2, 3], [1, 2, 3], { atol: 0, rtol: 0 });
  assertClose(Tensor.from([1, 2, 3], [3]), [1 + 5e-7, 2 - 5e-7, 3], tight);
  assertClose(Tensor.from([1, -2], [1, 2]), Tensor.from([1, -2], [1, 2]), tight);
  assertClose(Tensor.scalar(2.5), 2.5, tight);
  assertClose(Tensor.int64([3, -4]), [3, -4], { atol: 0, rtol: 0 });
  assertClose([], [], tight);
});

test('assertClose fails a difference of 1e-5 at atol 1e-6: it checks as many digits as it claims', () => {
  // transformers.js once passed its precision where it was ignored and checked 2 digits instead of 6
  failure(() => assertClose([1 + 1e-5], [1], tight));
  failure(() => assertClose([0.123457], [0.123456], tight));
  assertClose([0.1234565], [0.123456], tight);
});

test('assertClose compares exactly at atol = rtol = 0: a float32 rounding is caught', () => {
  const f32 = Tensor.from([0.1]); // 0.1 rounded to float32 differs from 0.1 by ≈ 1.5e-9
  failure(() => assertClose(f32, [0.1], { atol: 0, rtol: 0 }));
  assertClose(f32, [0.1], { atol: 0, rtol: 1e-7 });
});

test('assertClose: the boundary atol + rtol·|expected| is inclusive and scaled by the expected value', () => {
  assertClose([1.5], [1], { atol: 0.5, rtol: 0 });
  failure(() => assertClose([1.5000001], [1], { atol: 0.5, rtol: 0 }));
  // rtol scales with |expected| (100), not |actual|: 100 ± 1 passes at rtol 1e-2, 1 vs 2 does not
  assertClose([101], [100], { atol: 0, rtol: 1e-2 });
  assertClose([-99], [-100], { atol: 0, rtol: 1e-2 });
  failure(() => assertClose([102], [100], { atol: 0, rtol: 1e-2 }));
  failure(() => assertClose([2], [1], { atol: 0, rtol: 0.9 })); // would pass if scaled by |actual| = 2
  // atol and rtol add up
  assertClose([1.25], [1], { atol: 0.2, rtol: 0.05 });
  failure(() => assertClose([1.26], [1], { atol: 0.2, rtol: 0.05 }));
});

test('assertClose: NaN matches only NaN, infinities only the same infinity', () => {
  failure(() => assertClose([Number.NaN], [0], { atol: 1e9, rtol: 1e9 }));
  failure(() => assertClose([0], [Number.NaN], { atol: 1e9, rtol: 1e9 }));
  assertClose([Number.NaN, 1], [Number.NaN, 1], tight);
  assertClose([Number.POSITIVE_INFINITY], [Number.POSITIVE_INFINITY], tight);
  failure(() => assertClose([Number.POSITIVE_INFINITY], [Number.NEGATIVE_INFINITY], tight));
  failure(() => assertClose([Number.POSITIVE_INFINITY], [1e30], { atol: 1e9, rtol: 1e9 }));
  failure(() => assertClose([1e30], [Number.POSITIVE_INFINITY], { atol: 1e9, rtol: 1e9 }));
});

test('assertClose fails on shape or size mismatches even when the values agree', () => {
  const t = Tensor.from([1, 2, 3, 4, 5, 6], [2, 3]);
  const msg = failure(() => assertClose(t, Tensor.from([1, 2, 3, 4, 5, 6], [3, 2]), tight));
  assert.match(msg, /shapes differ/);
  assert.match(msg, /\[2, 3\]/);
  assert.match(msg, /\[3, 2\]/);
  failure(() => assertClose(t, { shape: [6], data: [1, 2, 3, 4, 5, 6] }, tight));
  failure(() => assertClose(Tensor.from([1], [1, 1]), Tensor.from([1], [1]), tight));
  assert.match(
    failure(() => assertClose([1, 2, 3], [1, 2], tight)),
    /sizes differ/,
  );
  failure(() => assertClose([1, 2], [1, 2, 3], tight));
  failure(() => assertClose(t, [1, 2, 3, 4, 5], tight));
  // a flat array only needs the same length
  assertClose(t, [1, 2, 3, 4, 5, 6], tight);
});

test('assertClose reports the worst element by multi-dimensional index, with both values', () => {
  const actual = Tensor.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [2, 2, 3]);
  const expected = { shape: [2, 2, 3], data: [0, 0.5, 0, 0, 0, 0, 0, 0, 0, 0, -3, 0] };
  const msg = failure(() => assertClose(actual, expected, { ...tight, label: 'my op' }));
  assert.match(msg, /^my op: /);
  assert.match(msg, /2 of 12 values out of tolerance/);
  assert.match(msg, /worst at index \[1, 1, 1\]/); // flat 10
  assert.match(msg, /actual 0, expected -3/);
  assert.match(msg, /actual \[2, 2, 3\], expected \[2, 2, 3\]/);
  assert.match(msg, /atol 0\.000001, rtol 0/);
  // "worst" is measured against the allowed error, not the raw difference: at rtol 0.1, |0 − 0.5| = 0.5
  // exceeds its allowance 0.05 by more than |−2.4 − (−3)| = 0.6 exceeds its allowance 0.3
  const actual2 = { shape: [2, 2, 3], data: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -2.4, 0] };
  const msg2 = failure(() => assertClose(actual2, expected, { atol: 0, rtol: 0.1 }));
  assert.match(msg2, /2 of 12/);
  assert.match(msg2, /worst at index \[0, 0, 1\]: actual 0, expected 0\.5/);
});

test('assertClose rejects a missing or malformed tolerance instead of silently loosening it', () => {
  const bad: unknown[] = [
    undefined,
    6, // the transformers.js mistake: a bare precision where an options object belongs
    1e-6,
    'atol',
    [1e-6, 0],
    {},
    { atol: 1e-6 }, // rtol omitted
    { rtol: 1e-6 },
    { atol: 1e-6, rtol: 0, tol: 1e-9 }, // unknown key
    { atol: 1e-6, rtl: 0 },
    { atol: -1, rtol: 0 },
    { atol: Number.NaN, rtol: 0 },
    { atol: Number.POSITIVE_INFINITY, rtol: 0 },
    { atol: '1e-6', rtol: 0 },
  ];
  for (const tol of bad) {
    assert.throws(
      () => assertClose([1], [1], tol as Tolerance),
      TypeError,
      `tolerance ${JSON.stringify(tol)} should be rejected`,
    );
  }
});

test('assertClose rejects a reference whose data does not fill its shape', () => {
  assert.throws(() => assertClose([1, 2], { shape: [3], data: [1, 2] }, tight), TypeError);
});

test('unravel maps flat positions to row-major indices', () => {
  assert.deepEqual(unravel(0, [2, 3]), [0, 0]);
  assert.deepEqual(unravel(5, [2, 3]), [1, 2]);
  assert.deepEqual(unravel(7, [2, 2, 2]), [1, 1, 1]);
  assert.deepEqual(unravel(4, null), [4]);
  assert.deepEqual(unravel(0, []), []);
});
