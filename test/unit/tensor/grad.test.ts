// Gradients of every differentiable op against central finite differences (test/helpers/gradcheck.ts;
// default tolerances there), plus the mechanics of autograd: accumulation into .grad, noGrad, grad().
// Inputs of ops with kinks or ties (relu, abs, clamp, maximum, max, where) are kept farther than eps from
// them with the generators in test/helpers/random.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  abs,
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
  grad,
  groupNorm,
  indexSelect,
  interpolate,
  isGradEnabled,
  layerNorm,
  linear,
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
  pad,
  quickGelu,
  relu,
  type Shape,
  sigmoid,
  silu,
  sin,
  slice,
  softmax,
  split,
  sqrt,
  sum,
  Tensor,
  tanh,
  variance,
  where,
} from '../../../src/tensor/index.js';
import { gradcheck } from '../../helpers/gradcheck.js';
import { awayFromZero, distinct, uniform } from '../../helpers/random.js';
import { assertClose } from '../../helpers/tolerance.js';

const EXACT = { atol: 0, rtol: 0 };

// elementwise arithmetic, with broadcasting

const BROADCAST: [Shape, Shape][] = [
  [
    [2, 3],
    [2, 3],
  ],
  [
    [2, 3, 4],
    [3, 1],
  ],
  [[4], [2, 1, 4]],
  [
    [2, 1, 3],
    [1, 4, 1],
  ],
  [[3, 2], []],
];

test('grad: add, sub, mul, div with broadcasting', () => {
  BROADCAST.forEach(([sa, sb], k) => {
    const a = uniform(sa, k);
    const b = uniform(sb, 100 + k, 0.5, 2);
    const label = `${JSON.stringify(sa)} ∘ ${JSON.stringify(sb)}`;
    gradcheck((x, y) => x.add(y), [a, b], { label: `add ${label}` });
    gradcheck((x, y) => x.sub(y), [a, b], { label: `sub ${label}` });
    gradcheck((x, y) => y.sub(x), [a, b], { label: `sub (reversed) ${label}` });
    gradcheck((x, y) => x.mul(y), [a, b], { label: `mul ${label}` });
    gradcheck((x, y) => x.div(y), [a, b], { label: `div ${label}` });
  });
  gradcheck((x) => x.mul(3).add(1).div(2).sub(0.5), [uniform([5], 7)], { label: 'number operands' });
});

test('grad: pow in base and exponent, with broadcasting', () => {
  gradcheck((a, b) => a.pow(b), [uniform([2, 3], 1, 0.5, 2), uniform([3], 2, -1.5, 2)], { label: 'pow' });
  gradcheck((a, b) => a.pow(b), [uniform([3], 3, 0.5, 2), uniform([2, 3], 4, -1, 1)], { label: 'pow' });
  gradcheck((a) => a.pow(3), [uniform([4], 5, -2, 2)], { label: 'pow 3 (negative base)' });
  gradcheck((a) => a.pow(0.5), [uniform([4], 6, 0.5, 3)], { label: 'pow ½' });
});

test('grad: maximum and minimum route to the larger/smaller operand, with broadcasting', () => {
  // distinct values 0.1 apart: no ties within eps
  const a = distinct([2, 3, 4], 1);
  const b = distinct([3, 1], 2).add(0.05);
  gradcheck((x, y) => maximum(x, y), [a, b], { label: 'maximum' });
  gradcheck((x, y) => minimum(x, y), [a, b], { label: 'minimum' });
  gradcheck((x) => maximum(x, 0), [a], { label: 'maximum with a number' }); // a holds ±0.05, ±0.15, …
});

// unary math and activations

test('grad: unary math', () => {
  const x = uniform([2, 5], 11, -2, 2);
  const pos = uniform([2, 5], 12, 0.3, 3);
  const awayFrom0 = awayFromZero([2, 5], 13, 0.1, 2);
  gradcheck((t) => t.neg(), [x], { label: 'neg' });
  gradcheck((t) => exp(t), [x], { label: 'exp' });
  gradcheck((t) => log(t), [pos], { label: 'log' });
  gradcheck((t) => sqrt(t), [pos], { label: 'sqrt' });
  gradcheck((t) => abs(t), [awayFrom0], { label: 'abs' });
  gradcheck((t) => sin(t), [x], { label: 'sin' });
  gradcheck((t) => cos(t), [x], { label: 'cos' });
  gradcheck((t) => tanh(t), [x], { label: 'tanh' });
  gradcheck((t) => sigmoid(t), [x], { label: 'sigmoid' });
});

test('grad: activations relu, silu, gelu (both forms), quick_gelu, clamp', () => {
  const x = uniform([3, 6], 21, -4, 4);
  gradcheck((t) => relu(t), [awayFromZero([3, 6], 22, 0.1, 3)], { label: 'relu' });
  gradcheck((t) => silu(t), [x], { label: 'silu' });
  gradcheck((t) => gelu(t), [x], { label: 'gelu (erf)' });
  gradcheck((t) => gelu(t, 'tanh'), [x], { label: 'gelu (tanh)' });
  gradcheck((t) => quickGelu(t), [x], { label: 'quick_gelu' });
  // ±0.05, ±0.15, …, ±1.15: none within eps of the bounds 0 and ±1
  const c = distinct([4, 6], 23);
  gradcheck((t) => clamp(t, -1, 1), [c], { label: 'clamp' });
  gradcheck((t) => clamp(t, 0), [c], { label: 'clamp (lower only)' });
});

test('grad: where routes by the condition, with broadcasting', () => {
  const cond = Tensor.bool([1, 0, 0, 1, 1, 0], [2, 1, 3]);
  gradcheck((a, b) => where(cond, a, b), [uniform([4, 1], 31), uniform([2, 4, 3], 32)], { label: 'where' });
  gradcheck((a, b) => where(cond, a, b), [uniform([2, 4, 3], 33), uniform([3], 34)], { label: 'where' });
  gradcheck((a) => where(cond, a, 0), [uniform([3], 35)], { label: 'where (number)' });
});

// reductions

test('grad: sum, mean, var over axes with keepDims', () => {
  const x = uniform([2, 3, 4], 41);
  for (const axes of [undefined, 0, [1], [-1], [0, 2]]) {
    for (const keepDims of [false, true]) {
      const label = `axes ${JSON.stringify(axes)} keepDims ${keepDims}`;
      gradcheck((t) => sum(t, { axes, keepDims }), [x], { label: `sum ${label}` });
      gradcheck((t) => mean(t, { axes, keepDims }), [x], { label: `mean ${label}` });
      gradcheck((t) => variance(t, { axes, keepDims }), [x], { label: `var ${label}` });
    }
  }
  gradcheck((t) => variance(t, { axes: 1, correction: 1 }), [x], { label: 'var correction 1' });
});

test('grad: max and min over axes (distinct values)', () => {
  const x = distinct([2, 3, 4], 42);
  for (const axes of [undefined, 0, [1], [0, 2]]) {
    for (const keepDims of [false, true]) {
      gradcheck((t) => max(t, { axes, keepDims }), [x], { label: `max axes ${JSON.stringify(axes)}` });
      gradcheck((t) => min(t, { axes, keepDims }), [x], { label: `min axes ${JSON.stringify(axes)}` });
    }
  }
});

test('grad: max splits the gradient evenly between tied maxima (subgradient)', () => {
  const x = Tensor.from([1, 3, 3, 0]).requireGrad();
  enableGrad(() => backward(max(x)));
  assertClose(x.grad as Tensor, [0, 0.5, 0.5, 0], EXACT);
});

test('grad: softmax, logSoftmax, logSumExp', () => {
  const x = uniform([2, 3, 4], 51, -2, 2);
  for (const axis of [0, 1, -1]) {
    gradcheck((t) => softmax(t, axis), [x], { label: `softmax axis ${axis}` });
    gradcheck((t) => logSoftmax(t, axis), [x], { label: `logSoftmax axis ${axis}` });
    gradcheck((t) => logSumExp(t, axis), [x], { label: `logSumExp axis ${axis}` });
    gradcheck((t) => logSumExp(t, axis, true), [x], { label: `logSumExp keepDims axis ${axis}` });
  }
});

test('grad: cumsum, inclusive/exclusive, forward/reverse', () => {
  const x = uniform([3, 4], 55);
  for (const exclusive of [false, true]) {
    for (const reverse of [false, true]) {
      for (const axis of [0, 1]) {
        gradcheck((t) => cumsum(t, axis, { exclusive, reverse }), [x], {
          label: `cumsum axis ${axis} exclusive ${exclusive} reverse ${reverse}`,
        });
      }
    }
  }
});

// matrix products

test('grad: matmul with every transA/transB combination, alpha and batch broadcasting', () => {
  const cases: [Shape, Shape][] = [
    [
      [3, 4],
      [4, 2],
    ],
    [
      [2, 3, 4],
      [4, 2],
    ],
    [
      [3, 4],
      [2, 4, 2],
    ],
    [
      [2, 1, 3, 4],
      [3, 4, 2],
    ],
  ];
  const swap = (s: Shape, t: boolean): Shape =>
    t ? [...s.slice(0, -2), s[s.length - 1] as number, s[s.length - 2] as number] : s;
  cases.forEach(([sa, sb], k) => {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const alpha = transA === transB ? 1 : 0.7;
        gradcheck(
          (a, b) => matmul(a, b, { transA, transB, alpha }),
          [uniform(swap(sa, transA), 60 + k), uniform(swap(sb, transB), 70 + k)],
          {
            label: `matmul ${JSON.stringify(sa)}·${JSON.stringify(sb)} tA ${transA} tB ${transB} α ${alpha}`,
          },
        );
      }
    }
  });
});

test('grad: linear with and without bias', () => {
  const x = uniform([2, 3, 4], 81);
  const w = uniform([5, 4], 82);
  gradcheck((a, b, c) => linear(a, b, c), [x, w, uniform([5], 83)], { label: 'linear' });
  gradcheck((a, b) => linear(a, b), [x, w], { label: 'linear (no bias)' });
});

// convolutions

test('grad: conv2d with stride 2, groups, dilation, padding and bias', () => {
  const cases = [
    { x: [2, 3, 5, 5], w: [2, 3, 3, 3], opts: { padding: 1 } },
    { x: [1, 4, 7, 6], w: [6, 2, 3, 3], opts: { stride: 2, padding: 1, groups: 2 } },
    { x: [1, 2, 7, 7], w: [4, 1, 3, 2], opts: { stride: 2, padding: [2, 1], dilation: 2, groups: 2 } },
    { x: [2, 2, 6, 5], w: [2, 2, 2, 2], opts: { stride: [2, 3], dilation: [1, 2] } },
  ] as const;
  cases.forEach((c, k) => {
    const opts = c.opts as Parameters<typeof conv2d>[3];
    gradcheck(
      (x, w, b) => conv2d(x, w, b, opts),
      [uniform(c.x, 90 + k), uniform(c.w, 95 + k), uniform([c.w[0]], 99 + k)],
      { label: `conv2d case ${k}` },
    );
  });
  gradcheck((x, w) => conv2d(x, w), [uniform([1, 2, 4, 4], 89), uniform([3, 2, 2, 2], 88)], {
    label: 'conv2d (no bias)',
  });
});

test('grad: convTranspose2d with stride, padding, output padding, groups, dilation and bias', () => {
  const cases = [
    { x: [1, 2, 3, 3], w: [2, 3, 3, 3], opts: { stride: 2, padding: 1, outputPadding: 1 } },
    { x: [2, 4, 3, 2], w: [4, 2, 3, 2], opts: { stride: 2, dilation: 2, groups: 2, outputPadding: 1 } },
    { x: [1, 2, 3, 3], w: [2, 1, 2, 2], opts: { stride: [3, 2], padding: [1, 0], outputPadding: [2, 1] } },
  ] as const;
  cases.forEach((c, k) => {
    const opts = c.opts as Parameters<typeof convTranspose2d>[3];
    const groups = (opts?.groups ?? 1) as number;
    gradcheck(
      (x, w, b) => convTranspose2d(x, w, b, opts),
      [uniform(c.x, 110 + k), uniform(c.w, 115 + k), uniform([c.w[1] * groups], 119 + k)],
      { label: `convTranspose2d case ${k}` },
    );
  });
});

// normalisation (recorded as primitive ops; the numeric side runs the fused kernel)

test('grad: groupNorm under recording, for input, weight and bias', () => {
  gradcheck(
    (x, w, b) => groupNorm(x, 2, w, b),
    [uniform([2, 4, 3, 3], 121, -1, 2), uniform([4], 122, 0.5, 1.5), uniform([4], 123)],
    { label: 'groupNorm 4D' },
  );
  gradcheck(
    (x, w, b) => groupNorm(x, 3, w, b, 1e-3),
    [uniform([1, 6, 5], 124, -1, 2), uniform([6], 125, 0.5, 1.5), uniform([6], 126)],
    { label: 'groupNorm 3D' },
  );
});

test('grad: layerNorm under recording, with and without affine', () => {
  const x = uniform([2, 3, 6], 131, -1, 2);
  gradcheck((t, w, b) => layerNorm(t, w, b), [x, uniform([6], 132, 0.5, 1.5), uniform([6], 133)], {
    label: 'layerNorm',
  });
  gradcheck((t) => layerNorm(t, null, null), [x], { label: 'layerNorm (no affine)' });
  gradcheck((t, w, b) => layerNorm(t, w, b, 1e-5, 2), [x, uniform([3, 6], 134), uniform([3, 6], 135)], {
    label: 'layerNorm over 2 dims',
  });
});

// resize

test('grad: interpolate nearest ×2 and to an integer multiple size', () => {
  gradcheck((t) => interpolate(t, { scale: 2 }), [uniform([2, 2, 3, 3], 141)], { label: 'nearest ×2' });
  gradcheck((t) => interpolate(t, { size: [6, 4] }), [uniform([1, 2, 2, 2], 142)], {
    label: 'nearest 3×, 2×',
  });
});

// shape ops

test('grad: reshape, unsqueeze, squeeze, flatten, permute, transpose, expand', () => {
  const x = uniform([2, 3, 4], 151);
  gradcheck((t) => t.reshape([4, -1]).mul(t.reshape([4, 6])), [x], { label: 'reshape' });
  gradcheck((t) => t.unsqueeze(1).squeeze(1).flatten(1), [x], { label: 'unsqueeze/squeeze/flatten' });
  gradcheck((t) => t.permute([2, 0, 1]), [x], { label: 'permute' });
  gradcheck((t) => t.transpose(0, 2), [x], { label: 'transpose' });
  gradcheck((t) => t.expand([2, 2, 3, 4]), [x], { label: 'expand (new leading dim)' });
  gradcheck((t) => t.expand([3, 4, 5]), [uniform([3, 1, 5], 152)], { label: 'expand (size-1 dim)' });
});

test('grad: slice with negative and clamped bounds', () => {
  const x = uniform([3, 5, 2], 161);
  gradcheck((t) => slice(t, 1, 1, 4), [x], { label: 'slice 1:4' });
  gradcheck((t) => slice(t, 1, -2), [x], { label: 'slice -2:' });
  gradcheck((t) => slice(t, 0, -100, 2), [x], { label: 'slice :2 clamped' });
  gradcheck((t) => slice(t, 1, 0, undefined, 2), [x], { label: 'slice ::2' });
  gradcheck((t) => slice(t, 1, 1, 100, 3), [x], { label: 'slice 1::3' });
  gradcheck((t) => slice(t, 1, 2, 3, 4), [x], { label: 'slice 2:3:4' });
  gradcheck((t) => slice(t, 1, 3, 3), [x], { label: 'empty slice' });
  gradcheck((t) => slice(t, -1, 1).mul(slice(t, -1, 0, 1)), [x], { label: 'two slices of one tensor' });
});

test('grad: concat and split (some pieces unused)', () => {
  const a = uniform([2, 1, 3], 171);
  const b = uniform([2, 3, 3], 172);
  gradcheck((x, y) => concat([x, y, x], 1), [a, b], { label: 'concat (one input twice)' });
  gradcheck((x, y) => concat([x.transpose(0, 1), y.transpose(0, 1)], 0), [a, b], { label: 'concat axis 0' });
  gradcheck((x) => split(x, [1, 2, 2], 1), [uniform([2, 5, 2], 173)], { label: 'split, all pieces' });
  gradcheck((x) => split(x, [1, 2, 2], 1)[1] as Tensor, [uniform([2, 5, 2], 174)], {
    label: 'split, one piece',
  });
  gradcheck(
    (x) => {
      const [p, , r] = split(x, 3, -1) as [Tensor, Tensor, Tensor];
      return p.mul(r);
    },
    [uniform([2, 6], 175)],
    { label: 'split, equal pieces, two used' },
  );
});

test('grad: pad (constant, negative pads crop)', () => {
  const x = uniform([2, 3, 4], 181);
  gradcheck((t) => pad(t, [0, 1, 2, 1, 0, 1], 'constant', 0.5), [x], { label: 'pad' });
  gradcheck((t) => pad(t, [0, -1, 1, 0, 1, -2]), [x], { label: 'pad with crops' });
});

test('grad: gather and indexSelect with duplicate and negative indices', () => {
  const x = uniform([4, 3], 191);
  gradcheck((t) => gather(t, Tensor.int64([1, 3, 1, -3, 0], [5]), 0), [x], {
    label: 'gather rows, duplicates',
  });
  gradcheck((t) => gather(t, Tensor.int64([2, 2, 0, 2], [2, 2]), 1), [x], {
    label: 'gather 2-D indices axis 1',
  });
  gradcheck((t) => gather(t, Tensor.int32([3, 3, 3]), 0), [x], { label: 'gather int32, all the same' });
  gradcheck((t) => indexSelect(t, 1, [0, 0, 2]), [uniform([2, 3, 2], 192)], {
    label: 'indexSelect middle axis',
  });
  // duplicate indices add up: hand-worked
  const y = Tensor.from([1, 2, 3]).requireGrad();
  enableGrad(() => backward(gather(y, Tensor.int64([2, 0, 2, 2])).sum()));
  assertClose(y.grad as Tensor, [1, 0, 3], EXACT);
});

test('grad: a composite (attention-like) graph reusing tensors', () => {
  const q = uniform([2, 3, 4], 201);
  const k = uniform([2, 5, 4], 202);
  const v = uniform([2, 5, 4], 203);
  gradcheck(
    (a, b, c) =>
      softmax(matmul(a, b, { transB: true, alpha: 0.5 }))
        .matmul(c)
        .add(a),
    [q, k, v],
    {
      label: 'softmax(q·kᵀ/2)·v + q',
    },
  );
});

// autograd mechanics

test('backward accumulates into .grad across calls and across uses of one leaf', () => {
  const x = Tensor.from([1, 2, 3]).requireGrad();
  const w = Tensor.from([4, 5, 6]);
  enableGrad(() => backward(x.mul(x).sum())); // d/dx Σx² = 2x
  assertClose(x.grad as Tensor, [2, 4, 6], EXACT);
  enableGrad(() => backward(x.mul(w).sum())); // + w
  assertClose(x.grad as Tensor, [6, 9, 12], EXACT);
  assert.equal(w.grad, null); // w did not ask for a gradient
  // diamond: y = x·2, z = y + y·y → dz/dx = 2 + 8x
  const x2 = Tensor.from([0.5, -1]).requireGrad();
  enableGrad(() => {
    const y = x2.mul(2);
    backward(y.add(y.mul(y)).sum());
  });
  assertClose(x2.grad as Tensor, [6, -6], EXACT);
});

test('backward with an explicit output gradient, and errors for a non-scalar root', () => {
  const x = Tensor.from([1, 2, 3, 4], [2, 2]).requireGrad();
  const y = enableGrad(() => x.mul(3));
  backward(y, Tensor.from([1, 0, 0, 2], [2, 2]));
  assertClose(x.grad as Tensor, { shape: [2, 2], data: [3, 0, 0, 6] }, EXACT);
  assert.throws(() => backward(y), /backward: expected a scalar loss, got shape \[2, 2\]/);
});

test('an intermediate with requiresGrad keeps its own .grad', () => {
  const x = Tensor.from([1, 2]).requireGrad();
  enableGrad(() => {
    const h = x.mul(3).requireGrad();
    backward(h.mul(h).sum()); // dh = 2h = 6x, dx = 18x
    assertClose(h.grad as Tensor, [6, 12], EXACT);
  });
  assertClose(x.grad as Tensor, [18, 36], EXACT);
});

test('noGrad records nothing; detach cuts the graph', () => {
  const x = Tensor.from([1, 2]).requireGrad();
  const y = noGrad(() => {
    assert.equal(isGradEnabled(), false);
    return x.mul(2).exp().sum();
  });
  assert.equal(isGradEnabled(), true);
  assert.equal(y.node, null);
  assert.throws(() => backward(y), /does not depend on any tensor with requiresGrad/);
  // nested: enableGrad inside noGrad records, and noGrad restores on throw
  const z = noGrad(() => enableGrad(() => x.mul(2)));
  assert.notEqual(z.node, null);
  assert.throws(() =>
    noGrad(() => {
      throw new Error('boom');
    }),
  );
  assert.equal(isGradEnabled(), true);
  const d = x.mul(2).detach();
  assert.equal(d.node, null);
  assert.equal(d.requiresGrad, false);
  // inputs that track no gradient record no node
  assert.equal(Tensor.from([1]).mul(2).node, null);
  assert.equal(x.grad, null);
});

test('grad() functional form returns gradients for every argument without touching them', () => {
  const f = (a: Tensor, b: Tensor, _unused: Tensor): Tensor => a.mul(b).sum().add(a.sum().mul(0.5));
  const a = Tensor.from([1, 2, 3]);
  const b = Tensor.from([4, 5, 6]).requireGrad();
  const u = Tensor.from([7, 8]);
  const [ga, gb, gu] = noGrad(() => grad(f)(a, b, u)) as [Tensor, Tensor, Tensor];
  assertClose(ga, [4.5, 5.5, 6.5], EXACT);
  assertClose(gb, [1, 2, 3], EXACT);
  assertClose(gu, { shape: [2], data: [0, 0] }, EXACT);
  assert.equal(a.grad, null);
  assert.equal(b.grad, null);
  assert.equal(a.requiresGrad, false);
  // works on ops with fused inference kernels too
  const x = uniform([1, 4, 2, 2], 211);
  const [gx] = grad((t: Tensor) =>
    groupNorm(t, 2, Tensor.ones([4]), Tensor.zeros([4]))
      .mul(t)
      .sum(),
  )(x) as [Tensor];
  assert.deepEqual(gx.shape, [1, 4, 2, 2]);
});
