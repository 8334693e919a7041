// Bridge from tensors to kernels: every eager op ends in `runOp`.

import { runKernel } from '../../kernels/dispatch.js';
import type { AttrValue } from '../../kernels/graph.js';
import { type DType, Tensor } from '../tensor.js';

export interface OpOptions {
  attrs?: Record<string, AttrValue | undefined>;
  domain?: string;
  /** Output dtypes; default: one output with the first input's dtype. */
  outputs?: readonly DType[];
}

/** Runs one ONNX op on tensors (null = omitted optional input) and returns its outputs. */
export function runOp(op: string, inputs: readonly (Tensor | null)[], opts: OpOptions = {}): Tensor[] {
  const first = inputs.find((x): x is Tensor => x !== null);
  const outputs = opts.outputs ?? [first?.dtype ?? 'float32'];
  const kin = inputs.map((x) =>
    x ? { dtype: x.dtype, rank: x.rank, dims: fixedDims(x), ort: () => x.ort() } : null,
  );
  return runKernel({ op, domain: opts.domain, attrs: opts.attrs, outputs }, kin).map(Tensor.fromOrt);
}

/** `runOp` for single-output ops. */
export function runOp1(op: string, inputs: readonly (Tensor | null)[], opts: OpOptions = {}): Tensor {
  return runOp(op, inputs, opts)[0] as Tensor;
}

/** Short int64 vectors (shapes, axes, pads) get fixed dims: some ops' shape inference needs their length. */
function fixedDims(x: Tensor): readonly number[] | undefined {
  return x.dtype === 'int64' && x.rank === 1 && x.size <= 16 ? x.shape : undefined;
}
