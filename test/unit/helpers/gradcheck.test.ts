// gradcheck must fail on wrong gradients: ops with deliberately broken backward rules are caught, correct
// ones pass.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { record, Tensor } from '../../../src/tensor/index.js';
import { gradcheck } from '../../helpers/gradcheck.js';
import { uniform } from '../../helpers/random.js';

/** x² computed by the kernels, with a backward rule of our choosing. */
function square(x: Tensor, rule: (x: Tensor, g: Tensor) => Tensor): Tensor {
  const out = x.detach().mul(x.detach());
  return record(out, 'square', [x], (g) => [rule(x, g)]);
}

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof assert.AssertionError && pattern.test(e.message));
}

test('gradcheck passes a correct rule and reports how much tolerance it used', () => {
  const r = gradcheck((x) => square(x, (t, g) => g.mul(t).mul(2)), [uniform([3, 4], 1)]);
  assert.ok(r.toleranceUsed < 1, `used ${r.toleranceUsed}`);
  assert.equal(r.analytic.length, 1);
  assert.deepEqual(r.numeric[0]?.shape, [3, 4]);
});

test('gradcheck catches a missing factor, a 1% error, a wrong sign and a missing gradient', () => {
  const x = uniform([3, 4], 2, 0.5, 1.5);
  rejects(
    () => gradcheck((t) => square(t, (u, g) => g.mul(u)), [x], { label: 'half' }),
    /^half, d\/d input 0/,
  );
  rejects(() => gradcheck((t) => square(t, (u, g) => g.mul(u).mul(2.02)), [x]), /out of tolerance/);
  rejects(() => gradcheck((t) => square(t, (u, g) => g.mul(u).mul(-2)), [x]), /out of tolerance/);
  // no node recorded at all: the analytic gradient is zero
  rejects(() => gradcheck((t) => t.detach().mul(t.detach()).add(t.mul(0)), [x]), /out of tolerance/);
});

test('gradcheck catches a rule that is wrong for one input only, and one that ignores the projection', () => {
  const a = uniform([2, 3], 3);
  const b = uniform([3, 2], 4);
  // d(a·b)/db = aᵀ·g; returning aᵀ·1 ignores g (i.e. the projection r)
  const badMatmul = (x: Tensor, y: Tensor): Tensor =>
    record(x.detach().matmul(y.detach()), 'matmul', [x, y], (g) => [
      g.matmul(y, { transB: true }),
      x.matmul(Tensor.ones(g.shape), { transA: true }),
    ]);
  rejects(() => gradcheck(badMatmul, [a, b]), /d\/d input 1/);
  // with only the first input checked it passes
  gradcheck(badMatmul, [a, b], { wrt: [0] });
});

test('gradcheck rejects inputs that cannot be differentiated', () => {
  assert.throws(() => gradcheck((t) => t, [Tensor.int64([1, 2])], { wrt: [0] }), /not a float32 tensor/);
});
