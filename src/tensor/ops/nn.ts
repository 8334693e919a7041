// Neural-network ops: softmax, convolutions, normalisations, resize, cumulative sum, embedding lookup.
// Normalisations run as one fused kernel; when gradients are recorded they are built from primitive ops,
// whose backward rules then apply.

import { noGrad, record, recordsGrad } from '../autograd.js';
import { formatShape, Tensor } from '../tensor.js';
import { max, mean, sum, variance } from './reduce.js';
import { runOp1 } from './run.js';
import { concat } from './shape.js';
import { normAxis, requireFloat, requireRank } from './shape-utils.js';

// softmax

/** Softmax along an axis: exp(x) / Σ exp(x). */
export function softmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis('softmax', axis, x.rank);
  const out = runOp1('Softmax', [x], { attrs: { axis: a }, shape: x.shape });
  // dx = y ⊙ (g − Σ g⊙y)
  return record(out, 'softmax', [x], (g) => [out.mul(g.sub(sum(g.mul(out), { axes: a, keepDims: true })))]);
}

/** log softmax along an axis, computed stably. */
export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis('logSoftmax', axis, x.rank);
  const out = runOp1('LogSoftmax', [x], { attrs: { axis: a } });
  // dx = g − softmax(x)·Σ g
  return record(out, 'logSoftmax', [x], (g) => [g.sub(out.exp().mul(sum(g, { axes: a, keepDims: true })))]);
}

// convolution

/** Stride, padding, dilation and groups of a 2-D convolution (torch.nn.functional.conv2d's). */
export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

function pair(v: number | [number, number] | undefined, d: number): [number, number] {
  return v === undefined ? [d, d] : typeof v === 'number' ? [v, v] : v;
}

/** 2-D convolution, NCHW input and (out, in/groups, kh, kw) weight, as torch.nn.functional.conv2d. */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  opts: Conv2dOptions = {},
): Tensor {
  requireRank('conv2d', x, 4);
  requireRank('conv2d', weight, 4, 'weight');
  requireFloat('conv2d', x, weight);
  const [sh, sw] = pair(opts.stride, 1);
  const [ph, pw] = pair(opts.padding, 0);
  const [dh, dw] = pair(opts.dilation, 1);
  const groups = opts.groups ?? 1;
  const [, c, h, w] = x.shape as [number, number, number, number];
  const [o, cg, kh, kw] = weight.shape as [number, number, number, number];
  if (c !== cg * groups || o % groups !== 0) {
    throw new Error(
      `conv2d: input ${formatShape(x.shape)} and weight ${formatShape(weight.shape)} do not fit ` +
        `(input channels ${c} must equal weight.shape[1] × groups = ${cg} × ${groups})`,
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== o)) {
    throw new Error(`conv2d: bias ${formatShape(bias.shape)} does not match ${o} output channels`);
  }
  const ho = Math.floor((h + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const wo = Math.floor((w + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  if (ho < 1 || wo < 1) {
    throw new Error(
      `conv2d: kernel ${kh}×${kw} does not fit input ${formatShape(x.shape)} with padding ${ph},${pw}`,
    );
  }
  const attrs = { strides: [sh, sw], pads: [ph, pw, ph, pw], dilations: [dh, dw], group: groups };
  const out = runOp1('Conv', bias ? [x, weight, bias] : [x, weight], {
    attrs,
    shape: [x.shape[0] as number, o, ho, wo],
  });
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(out, 'conv2d', inputs, (g) => {
    // dx: the transposed convolution of g with the same weight, padded back to the input size
    const dx = runOp1('ConvTranspose', [g, weight], {
      attrs: {
        ...attrs,
        output_padding: [
          h + 2 * ph - ((ho - 1) * sh + dh * (kh - 1) + 1),
          w + 2 * pw - ((wo - 1) * sw + dw * (kw - 1) + 1),
        ],
      },
    });
    const dW = conv2dWeightGrad(x, g, [kh, kw], [sh, sw], [ph, pw], [dh, dw], groups);
    return bias ? [dx, dW, sum(g, { axes: [0, 2, 3] })] : [dx, dW];
  });
}

/**
 * dL/dW of conv2d: for each kernel tap (i, j), the strided window of the padded input at that tap,
 * contracted with g over batch and output positions: dW[o, c, i, j] = Σ g[n, o, y, x] · xp[n, c, y·s + i·d, x·s + j·d].
 */
function conv2dWeightGrad(
  x: Tensor,
  g: Tensor,
  [kh, kw]: [number, number],
  [sh, sw]: [number, number],
  [ph, pw]: [number, number],
  [dh, dw]: [number, number],
  groups: number,
): Tensor {
  if (groups === 1) {
    // One convolution with batch and channels exchanged: the input is x as (c, n, h, w), the kernel is g as
    // (o, n, ho, wo) dilated by the stride, stepped by the dilation → (c, o, ≥kh, ≥kw).
    const dW = runOp1('Conv', [x.permute([1, 0, 2, 3]), g.permute([1, 0, 2, 3])], {
      attrs: { strides: [dh, dw], pads: [ph, pw, ph, pw], dilations: [sh, sw], group: 1 },
    });
    return dW.slice(2, 0, kh).slice(3, 0, kw).permute([1, 0, 2, 3]);
  }
  const [n, c] = x.shape as [number, number];
  const [, o, ho, wo] = g.shape as [number, number, number, number];
  const xp = x.pad([0, 0, ph, pw, 0, 0, ph, pw]);
  const cg = c / groups;
  const og = o / groups;
  // g as (groups, og, n·ho·wo)
  const gm = g
    .reshape([n, groups, og, ho * wo])
    .permute([1, 2, 0, 3])
    .reshape([groups, og, n * ho * wo]);
  const taps: Tensor[] = [];
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      const win = xp
        .slice(2, i * dh, i * dh + (ho - 1) * sh + 1, sh)
        .slice(3, j * dw, j * dw + (wo - 1) * sw + 1, sw); // (n, c, ho, wo)
      const wm = win
        .reshape([n, groups, cg, ho * wo])
        .permute([1, 2, 0, 3])
        .reshape([groups, cg, n * ho * wo]);
      taps.push(gm.matmul(wm, { transB: true }).reshape([o, cg, 1])); // (groups, og, cg) → (o, cg, 1)
    }
  }
  return concat(taps, 2).reshape([o, cg, kh, kw]);
}

/** Transposed 2-D convolution with (in, out/groups, kh, kw) weight, as torch's conv_transpose2d. */
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  opts: Conv2dOptions & { outputPadding?: number | [number, number] } = {},
): Tensor {
  requireRank('convTranspose2d', x, 4);
  requireRank('convTranspose2d', weight, 4, 'weight');
  const groups = opts.groups ?? 1;
  if (x.shape[1] !== weight.shape[0]) {
    throw new Error(
      `convTranspose2d: input ${formatShape(x.shape)} has ${x.shape[1]} channels, weight ${formatShape(weight.shape)} expects ${weight.shape[0]}`,
    );
  }
  const [sh, sw] = pair(opts.stride, 1);
  const [ph, pw] = pair(opts.padding, 0);
  const [dh, dw] = pair(opts.dilation, 1);
  const [oph, opw] = pair(opts.outputPadding, 0);
  const attrs = {
    strides: [sh, sw],
    pads: [ph, pw, ph, pw],
    dilations: [dh, dw],
    group: groups,
    output_padding: [oph, opw],
  };
  const inputs = bias ? [x, weight, bias] : [x, weight];
  const out = runOp1('ConvTranspose', inputs, { attrs });
  return record(out, 'convTranspose2d', inputs, (g) => {
    // the adjoint of a transposed convolution is the convolution with the same weight and attributes
    const { output_padding: _, ...convAttrs } = attrs;
    const dx = runOp1('Conv', [g, weight], { attrs: convAttrs });
    // dW[c, o, i, j] = Σ x[n, c, y, x] · gp[n, o, y·s + i·d, x·s + j·d]: conv2d's weight gradient with the
    // roles of input (here g) and output gradient (here x) exchanged
    const [kh, kw] = weight.shape.slice(2) as [number, number];
    const dW = conv2dWeightGrad(g, x, [kh, kw], [sh, sw], [ph, pw], [dh, dw], groups);
    return bias ? [dx, dW, sum(g, { axes: [0, 2, 3] })] : [dx, dW];
  });
}

// normalisation

/** GroupNorm over (N, C, …): groups of C/numGroups channels, per-channel affine weight and bias. */
export function groupNorm(x: Tensor, numGroups: number, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  const c = x.shape[1] as number;
  if (x.rank < 2 || c % numGroups !== 0) {
    throw new Error(
      `groupNorm: ${c} channels of ${formatShape(x.shape)} do not split into ${numGroups} groups`,
    );
  }
  if (weight.size !== c || bias.size !== c) {
    throw new Error(`groupNorm: weight/bias sizes ${weight.size}/${bias.size} do not match ${c} channels`);
  }
  if (!recordsGrad(x, weight, bias)) {
    return runOp1('GroupNormalization', [x, weight, bias], {
      attrs: { num_groups: numGroups, epsilon: eps },
      shape: x.shape,
    });
  }
  // Under recording: x̂ = (x − μ)·rstd per (sample, group), y = γ·x̂ + β, with the analytic backward
  //   dβ = Σ g,  dγ = Σ g·x̂,  dx = rstd·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)),  dx̂ = γ·g  (means over the group)
  const n = x.shape[0] as number;
  const affineShape = [c, ...x.shape.slice(2).map(() => 1)];
  const out = noGrad(() => {
    const xg = x.reshape([n, numGroups, -1]);
    const mu = mean(xg, { axes: 2, keepDims: true });
    const centered = xg.sub(mu);
    const rstd = mean(centered.mul(centered), { axes: 2, keepDims: true }).add(eps).sqrt().pow(-1);
    const xhat = centered.mul(rstd);
    const y = xhat.reshape(x.shape).mul(weight.reshape(affineShape)).add(bias.reshape(affineShape));
    return { y, xhat, rstd };
  });
  const reduceAxes = [0, ...x.shape.slice(2).map((_, i) => i + 2)];
  return record(out.y, 'groupNorm', [x, weight, bias], (g) => {
    const xhat = out.xhat.reshape(x.shape);
    const dxhat = g.mul(weight.reshape(affineShape)).reshape([n, numGroups, -1]);
    const m1 = mean(dxhat, { axes: 2, keepDims: true });
    const m2 = mean(dxhat.mul(out.xhat), { axes: 2, keepDims: true });
    const dx = dxhat.sub(m1).sub(out.xhat.mul(m2)).mul(out.rstd).reshape(x.shape);
    return [dx, sum(g.mul(xhat), { axes: reduceAxes }), sum(g, { axes: reduceAxes })];
  });
}

/** LayerNorm over the last `normalizedDims` dims (default 1), with optional affine weight and bias. */
export function layerNorm(
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps = 1e-5,
  normalizedDims = 1,
): Tensor {
  if (!Number.isInteger(normalizedDims) || normalizedDims < 1 || normalizedDims > x.rank) {
    throw new Error(`layerNorm: cannot normalise the last ${normalizedDims} dims of ${formatShape(x.shape)}`);
  }
  const featureShape = x.shape.slice(x.rank - normalizedDims);
  for (const [name, t] of [
    ['weight', weight],
    ['bias', bias],
  ] as const) {
    if (t && (t.rank !== normalizedDims || t.shape.some((d, i) => d !== featureShape[i]))) {
      throw new Error(
        `layerNorm: ${name} ${formatShape(t.shape)} does not match the normalised dims ` +
          `${formatShape(featureShape)} of input ${formatShape(x.shape)}`,
      );
    }
  }
  const axes = Array.from({ length: normalizedDims }, (_, i) => x.rank - normalizedDims + i);
  if (recordsGrad(x, weight, bias)) {
    const mu = mean(x, { axes, keepDims: true });
    const v = variance(x, { axes, keepDims: true });
    let y = x.sub(mu).div(v.add(eps).sqrt());
    if (weight) y = y.mul(weight);
    if (bias) y = y.add(bias);
    return y;
  }
  const w = weight ?? Tensor.ones(featureShape);
  return runOp1('LayerNormalization', bias ? [x, w, bias] : [x, w], {
    attrs: { axis: x.rank - normalizedDims, epsilon: eps },
    shape: x.shape,
  });
}

// resize

/** Resizes the last two dims of NCHW by integer scale or to a size; nearest (PyTorch 'nearest') or bilinear. */
export function interpolate(
  x: Tensor,
  opts: { size?: [number, number]; scale?: number; mode?: 'nearest' | 'bilinear'; alignCorners?: boolean },
): Tensor {
  requireRank('interpolate', x, 4);
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const mode = opts.mode ?? 'nearest';
  const size = opts.size ?? [Math.floor(h * (opts.scale ?? 1)), Math.floor(w * (opts.scale ?? 1))];
  const attrs =
    mode === 'nearest'
      ? { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }
      : {
          mode: 'linear',
          coordinate_transformation_mode: opts.alignCorners ? 'align_corners' : 'half_pixel',
        };
  const out = runOp1('Resize', [x, null, null, Tensor.int64([n, c, size[0], size[1]])], { attrs });
  return record(out, 'interpolate', [x], (g) => {
    const fh = size[0] / h;
    const fw = size[1] / w;
    if (mode !== 'nearest' || !Number.isInteger(fh) || !Number.isInteger(fw)) {
      throw new Error('interpolate: gradient is implemented for nearest mode with integer factors only');
    }
    return [sum(g.reshape([n, c, h, fh, w, fw]), { axes: [3, 5] })];
  });
}

/** Cumulative sum along `axis` (optionally exclusive or reversed). */
export function cumsum(
  x: Tensor,
  axis: number,
  opts: { exclusive?: boolean; reverse?: boolean } = {},
): Tensor {
  const a = normAxis('cumsum', axis, x.rank);
  const attrs = { exclusive: opts.exclusive ? 1 : 0, reverse: opts.reverse ? 1 : 0 };
  const out = runOp1('CumSum', [x, Tensor.int64([a])], { attrs });
  return record(out, 'cumsum', [x], (g) => [
    cumsum(g, a, { exclusive: opts.exclusive, reverse: !opts.reverse }),
  ]);
}

/** log Σ exp(x) along `axis`, computed stably (the max is subtracted first). */
export function logSumExp(x: Tensor, axis = -1, keepDims = false): Tensor {
  const a = normAxis('logSumExp', axis, x.rank);
  const m = max(x, { axes: a, keepDims: true }).detach();
  const out = sum(x.sub(m).exp(), { axes: a, keepDims: true }).log().add(m);
  return keepDims ? out : out.squeeze(a);
}
