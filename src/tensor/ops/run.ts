// Bridge from tensors to kernels: every eager op ends in `runOp`.

import { type KernelInput, runKernel } from '../../kernels/dispatch.js';
import type { AttrValue } from '../../kernels/graph.js';
import { OrtTensor } from '../../kernels/ort.js';
import { type DType, Tensor } from '../tensor.js';
import { activeTrace } from '../trace.js';

export interface OpOptions {
  attrs?: Record<string, AttrValue | undefined>;
  domain?: string;
  /** Output dtypes; default: one output with the first input's dtype. */
  outputs?: readonly DType[];
  /**
   * The shape of the single float32 output when the caller knows it: onnxruntime then writes into a buffer
   * allocated here instead of allocating its own and having it copied out (≈ 20 % of a large elementwise op).
   * A wrong shape is an onnxruntime error, never a silent one.
   */
  shape?: readonly number[];
}

/** Outputs smaller than this are not preallocated (the copy is cheaper than the bookkeeping). */
const PREALLOCATE_MIN = 1 << 14;

/** A tensor as a kernel input. A class, so the hot path allocates one small object and no closures per input. */
class TensorInput implements KernelInput {
  readonly dtype: DType;
  readonly rank: number;
  readonly dims: readonly number[] | undefined;
  readonly #t: Tensor;
  constructor(t: Tensor) {
    this.#t = t;
    this.dtype = t.dtype;
    this.rank = t.rank;
    this.dims = fixedDims(t);
  }
  ort(): OrtTensor {
    return this.#t.ort();
  }
}

/** Runs one ONNX op on tensors (null = omitted optional input) and returns its outputs. */
export function runOp(op: string, inputs: readonly (Tensor | null)[], opts: OpOptions = {}): Tensor[] {
  // plain loops: this runs once per op, and closures here cost more than the rest of the TypeScript side
  let first: Tensor | null = null;
  const kin = new Array<KernelInput | null>(inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    const x = inputs[i] ?? null;
    if (x && !first) first = x;
    kin[i] = x ? new TensorInput(x) : null;
  }
  const outputs = opts.outputs ?? [first?.dtype ?? 'float32'];
  const pre = preallocate(opts.shape, outputs);
  const res = runKernel({ op, domain: opts.domain, attrs: opts.attrs, outputs }, kin, pre);
  const out = new Array<Tensor>(res.length);
  for (let i = 0; i < res.length; i++) out[i] = Tensor.fromOrt(res[i] as OrtTensor);
  activeTrace()?.node(op, inputs, out, opts.attrs, opts.domain);
  return out;
}

function preallocate(
  shape: readonly number[] | undefined,
  outputs: readonly DType[],
): OrtTensor[] | undefined {
  if (!shape || outputs.length !== 1 || outputs[0] !== 'float32') return undefined;
  let size = 1;
  for (let i = 0; i < shape.length; i++) size *= shape[i] as number;
  if (size < PREALLOCATE_MIN) return undefined;
  return [new OrtTensor('float32', new Float32Array(size), [...shape])];
}

/** `runOp` for single-output ops. */
export function runOp1(op: string, inputs: readonly (Tensor | null)[], opts: OpOptions = {}): Tensor {
  return runOp(op, inputs, opts)[0] as Tensor;
}

/** Short int64 vectors (shapes, axes, pads) get fixed dims: some ops' shape inference needs their length. */
function fixedDims(x: Tensor): readonly number[] | undefined {
  return x.dtype === 'int64' && x.rank === 1 && x.size <= 16 ? x.shape : undefined;
}
