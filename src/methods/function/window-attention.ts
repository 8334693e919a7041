// Window attention (Liu et al. 2021, "Swin Transformer"): each query attends only to the keys of its own
// non-overlapping window on the h×w token grid — the local attention DiTFastAttn falls back to.

import type { AttentionCall } from '../../attention/call.js';
import type { AttentionFunction } from '../../attention/functions.js';
import { Tensor } from '../../tensor/index.js';
import { queryGrid } from './use-attention.js';

/** Options of window attention (Liu et al. 2021, "Swin Transformer"): the window size in tokens. */
export interface WindowAttentionOptions {
  /** Window height and width in tokens (a number for square windows; default 8). */
  windowSize?: number | readonly [number, number];
}

/** Additive mask (nWin, 1, L): −∞ on the keys that padding added to the grid. */
function paddingMask(h: number, w: number, wh: number, ww: number): Tensor | undefined {
  const [nh, nw] = [Math.ceil(h / wh), Math.ceil(w / ww)];
  if (nh * wh === h && nw * ww === w) return undefined;
  const m = new Float32Array(nh * nw * wh * ww);
  for (let i = 0; i < nh; i++)
    for (let j = 0; j < nw; j++)
      for (let y = 0; y < wh; y++)
        for (let x = 0; x < ww; x++) {
          if (i * wh + y >= h || j * ww + x >= w)
            m[((i * nw + j) * wh + y) * ww + x] = Number.NEGATIVE_INFINITY;
        }
  return new Tensor(m, [nh * nw, 1, wh * ww]);
}

/**
 * (B, H, h·w, d) → (B, H, nWin, wh·ww, d), the grid padded with zeros to whole windows, windows in raster
 * order and tokens in raster order inside each.
 */
function toWindows(x: Tensor, h: number, w: number, wh: number, ww: number): Tensor {
  const [b, heads, , d] = x.shape as [number, number, number, number];
  const [nh, nw] = [Math.ceil(h / wh), Math.ceil(w / ww)];
  const grid = x.reshape([b, heads, h, w, d]).pad([0, 0, 0, 0, 0, 0, 0, nh * wh - h, nw * ww - w, 0]);
  return grid
    .reshape([b, heads, nh, wh, nw, ww, d])
    .permute([0, 1, 2, 4, 3, 5, 6])
    .reshape([b, heads, nh * nw, wh * ww, d]);
}

function fromWindows(x: Tensor, h: number, w: number, wh: number, ww: number): Tensor {
  const [b, heads, , , d] = x.shape as [number, number, number, number, number];
  const [nh, nw] = [Math.ceil(h / wh), Math.ceil(w / ww)];
  const grid = x
    .reshape([b, heads, nh, nw, wh, ww, d])
    .permute([0, 1, 2, 4, 3, 5, 6])
    .reshape([b, heads, nh * wh, nw * ww, d]);
  return grid
    .slice(2, 0, h)
    .slice(3, 0, w)
    .reshape([b, heads, h * w, d]);
}

/** Window attention on self-attention layers whose queries lie on a grid; undefined elsewhere. */
export function windowAttention(
  opts: WindowAttentionOptions = {},
): (call: AttentionCall) => AttentionFunction | undefined {
  const size = opts.windowSize ?? 8;
  const [wh0, ww0] = typeof size === 'number' ? [size, size] : size;
  if (!Number.isInteger(wh0) || !Number.isInteger(ww0) || wh0 < 1 || ww0 < 1) {
    throw new Error(`windowAttention: windowSize must be positive integers, got ${JSON.stringify(size)}`);
  }
  return function window(call) {
    const grid = queryGrid(call);
    if (!grid || call.kind !== 'self' || call.keyTokens !== call.queryTokens) return undefined;
    const [h, w] = grid;
    const [wh, ww] = [Math.min(wh0, h), Math.min(ww0, w)];
    const mask = paddingMask(h, w, wh, ww);
    return {
      name: 'window',
      explicit: false,
      run({ q, k, v, scale, bias }) {
        if (bias)
          throw new Error(`windowAttention at ${call.path}: an additive bias (mask) is not supported`);
        const [qw, kw, vw] = [q, k, v].map((x) => toWindows(x, h, w, wh, ww)) as [Tensor, Tensor, Tensor];
        let s = qw.matmul(kw, { transB: true, alpha: scale }); // (B, H, nWin, L, L)
        if (mask) s = s.add(mask);
        return fromWindows(s.softmax(-1).matmul(vw), h, w, wh, ww);
      },
    };
  };
}
