// Resizing of attention maps as PyTorch's F.interpolate does it (align_corners=False), written as two small
// interpolation matrices so that `out = Rh · x · Rwᵀ` (DAAM upsamples with bicubic, prompt-to-prompt with nearest).

import { formatShape, Tensor } from '../../tensor/index.js';

/** How maps are resized: bicubic (PyTorch's A = −0.75), bilinear or nearest. */
export type ResizeMode = 'bicubic' | 'bilinear' | 'nearest';

/** PyTorch's cubic convolution coefficient (A = −0.75, Keys 1981). */
const A = -0.75;

function cubic(x: number): number {
  const t = Math.abs(x);
  if (t <= 1) return (A + 2) * t ** 3 - (A + 3) * t ** 2 + 1;
  if (t < 2) return A * t ** 3 - 5 * A * t ** 2 + 8 * A * t - 4 * A;
  return 0;
}

/**
 * The (outSize, inSize) matrix whose row i holds the weights of the input samples for output sample i, with
 * PyTorch's conventions: source coordinate (i + 0.5)·in/out − 0.5; bilinear clamps it at 0; bicubic reads the
 * four neighbours with indices clamped to the edge; nearest takes floor(i·in/out).
 */
export function resizeMatrix(inSize: number, outSize: number, mode: ResizeMode): Float32Array {
  if (!Number.isInteger(inSize) || !Number.isInteger(outSize) || inSize < 1 || outSize < 1) {
    throw new Error(`resizeMatrix: sizes must be positive integers, got ${inSize} → ${outSize}`);
  }
  const m = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  const clampIndex = (k: number) => Math.min(Math.max(k, 0), inSize - 1);
  for (let i = 0; i < outSize; i++) {
    const row = i * inSize;
    if (mode === 'nearest') {
      m[row + Math.min(Math.floor(i * scale), inSize - 1)] = 1;
      continue;
    }
    let src = (i + 0.5) * scale - 0.5;
    if (mode === 'bilinear') {
      src = Math.max(src, 0);
      const i0 = Math.floor(src);
      const i1 = Math.min(i0 + 1, inSize - 1);
      const l = src - i0;
      m[row + i0]! += 1 - l;
      m[row + i1]! += l;
      continue;
    }
    const f = Math.floor(src);
    const t = src - f;
    for (let k = -1; k <= 2; k++) m[row + clampIndex(f + k)]! += cubic(k - t);
  }
  return m;
}

/** Resizes the last two dims of x (…, h, w) to (…, H, W). */
export function resize2d(x: Tensor, size: readonly [number, number], mode: ResizeMode = 'bicubic'): Tensor {
  if (x.rank < 2) throw new Error(`resize2d: expected (…, h, w), got ${formatShape(x.shape)}`);
  const [h, w] = x.shape.slice(-2) as [number, number];
  const [H, W] = size;
  if (h === H && w === W) return x;
  const lead = x.shape.slice(0, -2);
  const n = lead.reduce((a, b) => a * b, 1);
  const rh = new Tensor(resizeMatrix(h, H, mode), [1, H, h]);
  const rw = new Tensor(resizeMatrix(w, W, mode), [1, W, w]);
  const y = rh.matmul(x.reshape([n, h, w])).matmul(rw, { transB: true }); // (n, H, W)
  return y.reshape([...lead, H, W]);
}
