// Matrix products: matmul (batched, broadcasting) and linear (x · Wᵀ + b, PyTorch's weight layout).

import { record, recordsGrad } from '../autograd.js';
import { formatShape, Tensor } from '../tensor.js';
import { sumToShape } from './reduce.js';
import { runOp1 } from './run.js';
import { split } from './shape.js';
import { broadcastShapes, requireFloat } from './shape-utils.js';

/** op(A)·op(B) with optional transposes of the last two dims, on onnxruntime's FusedMatMul. */
function fusedMatMul(a: Tensor, b: Tensor, transA: boolean, transB: boolean, alpha = 1): Tensor {
  const shape = productShape(a, b, transA, transB);
  if (!transA && !transB && alpha === 1) return runOp1('MatMul', [a, b], { shape });
  return runOp1('FusedMatMul', [a, b], {
    domain: 'com.microsoft',
    attrs: { transA: transA ? 1 : 0, transB: transB ? 1 : 0, alpha },
    shape,
  });
}

/** Shape of op(A)·op(B) for ranks ≥ 2 (batch dims broadcast), else undefined (left to onnxruntime). */
function productShape(a: Tensor, b: Tensor, transA: boolean, transB: boolean): number[] | undefined {
  if (a.rank < 2 || b.rank < 2) return undefined;
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const m = a.shape[a.rank - (transA ? 1 : 2)] as number;
  const n = b.shape[b.rank - (transB ? 2 : 1)] as number;
  return [...batch, m, n];
}

function checkMatmul(op: string, a: Tensor, b: Tensor, transA: boolean, transB: boolean): void {
  requireFloat(op, a, b);
  if (a.rank < 2 || b.rank < 2) {
    throw new Error(`${op}: expected rank ≥ 2, got ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  }
  const k1 = a.shape[a.rank - (transA ? 2 : 1)];
  const k2 = b.shape[b.rank - (transB ? 1 : 2)];
  if (k1 !== k2) {
    throw new Error(
      `${op}: inner dimensions differ: ${formatShape(a.shape)}${transA ? 'ᵀ' : ''} · ` +
        `${formatShape(b.shape)}${transB ? 'ᵀ' : ''} (${k1} vs ${k2})`,
    );
  }
  try {
    broadcastShapes(op, a.shape.slice(0, -2), b.shape.slice(0, -2));
  } catch {
    throw new Error(
      `${op}: batch dims of ${formatShape(a.shape)} and ${formatShape(b.shape)} cannot be broadcast together`,
    );
  }
}

/**
 * Batched matrix product with broadcasting over leading dims: (…, n, k) · (…, k, m) → (…, n, m).
 * `transA` / `transB` transpose the last two dims of an operand first; `alpha` scales the result.
 */
export function matmul(
  a: Tensor,
  b: Tensor,
  opts: { transA?: boolean; transB?: boolean; alpha?: number } = {},
): Tensor {
  const tA = opts.transA ?? false;
  const tB = opts.transB ?? false;
  const alpha = opts.alpha ?? 1;
  checkMatmul('matmul', a, b, tA, tB);
  const out = fusedMatMul(a, b, tA, tB, alpha);
  return record(out, 'matmul', [a, b], (g) => {
    // C = α·op(A)·op(B):  dop(A) = α·g·op(B)ᵀ,  dop(B) = α·op(A)ᵀ·g
    const dA = tA ? fusedMatMul(b, g, tB, true, alpha) : fusedMatMul(g, b, false, !tB, alpha);
    const dB = tB ? fusedMatMul(g, a, true, tA, alpha) : fusedMatMul(a, g, !tA, false, alpha);
    return [sumToShape(dA, a.shape), sumToShape(dB, b.shape)];
  });
}

/** x · Wᵀ + b with W of shape (out, in), as torch.nn.Linear stores it. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (weight.rank !== 2 || x.shape[x.rank - 1] !== weight.shape[1]) {
    throw new Error(
      `linear: input ${formatShape(x.shape)} does not fit weight ${formatShape(weight.shape)} ` +
        '(expected the last input dim to equal weight.shape[1])',
    );
  }
  const [n, k] = weight.shape as [number, number];
  if (bias && bias.rank === 1 && bias.shape[0] === n && x.size > 0 && !recordsGrad(x, weight, bias)) {
    // Without gradients, one Gemm on a 2-D view of x (free: tensors are contiguous) adds the bias inside
    // the product instead of a separate Add pass over the output (bench/unet.ts notes).
    const rows = x.size / k;
    const y = runOp1('Gemm', [x.reshape([-1, k]), weight, bias], { attrs: { transB: 1 }, shape: [rows, n] });
    return y.reshape([...x.shape.slice(0, -1), n]);
  }
  const y = matmul(x, weight, { transB: true });
  return bias ? y.add(bias) : y;
}

/**
 * `linear(x, weight, bias)` split into `parts` equal chunks of its last axis (GEGLU's hidden and gate).
 * Without gradients each chunk is its own Gemm on a block of the weight's rows — a view, no copy — which
 * saves Split's pass over the whole product (bench/unet.ts: Split was 3 % of the SD UNet); with
 * gradients, linear then split.
 */
export function linearChunks(x: Tensor, weight: Tensor, bias: Tensor | null, parts: number): Tensor[] {
  const [n, k] = weight.shape as [number, number];
  if (recordsGrad(x, weight, bias) || weight.rank !== 2 || n % parts !== 0 || (bias && bias.rank !== 1)) {
    return split(linear(x, weight, bias), parts, -1);
  }
  const rows = n / parts;
  const out: Tensor[] = [];
  for (let i = 0; i < parts; i++) {
    const w = new Tensor(weight.data.subarray(i * rows * k, (i + 1) * rows * k), [rows, k], weight.dtype);
    const b = bias ? new Tensor(bias.data.subarray(i * rows, (i + 1) * rows), [rows], bias.dtype) : null;
    out.push(linear(x, w, b));
  }
  return out;
}
