// Forward values of the neural-network ops (src/tensor/ops/nn.ts: softmax family, convolutions,
// normalisation, resize, cumulative sum) against hand-worked numbers and naive float64 JS references
// (test/helpers/reference.ts).
// Tolerances, float32 throughout:
//   EXACT  { atol 0, rtol 0 }        shape ops, selection, max/min, comparisons, and the IEEE-rounded
//                                    arithmetic (+ − × ÷ √ give the float32 rounding of the exact result,
//                                    so the reference is Math.fround of the float64 result)
//   ULP    { atol 1e-6, rtol 2e-6 }  transcendental functions (onnxruntime's vectorised exp/tanh/erf are
//                                    accurate to a few ulp; float32's ulp is 1.2e-7 relative)
//   ACCUM  { atol 1e-5, rtol 1e-5 }  sums, dot products and normalisations over up to ~100 terms of O(1)
//                                    values (float32 accumulation error grows with the number of terms)

import { test } from 'node:test';
import {
  conv2d,
  convTranspose2d,
  cumsum,
  enableGrad,
  groupNorm,
  interpolate,
  layerNorm,
  logSoftmax,
  logSumExp,
  noGrad,
  type Shape,
  softmax,
  Tensor,
} from '../../../src/tensor/index.js';
import { uniform } from '../../helpers/random.js';
import {
  at,
  bilinearRef,
  build,
  conv2dRef,
  convTranspose2dRef,
  nearestRef,
  numel,
  reduce,
  valuesOf,
} from '../../helpers/reference.js';
import { assertClose, type Reference } from '../../helpers/tolerance.js';

const EXACT = { atol: 0, rtol: 0 };
const ULP = { atol: 1e-6, rtol: 2e-6 };
const ACCUM = { atol: 1e-5, rtol: 1e-5 };

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
