// Tensor: an immutable, contiguous, row-major array with a dtype and a shape, plus the autograd fields.
// Ops never change a tensor's data; they return new tensors. Kernels run in onnxruntime (src/kernels).

import type { DType } from '../kernels/graph.js';
import { OrtTensor } from '../kernels/ort.js';

export type { DType };

/** The typed array behind a tensor, by element type. */
export type TensorData = Float32Array | Int32Array | BigInt64Array | Uint8Array;
/** A tensor's dimensions, outermost first. */
export type Shape = readonly number[];

/** Reverse-mode record of how a tensor was computed (see autograd.ts). */
export interface GradNode {
  op: string;
  inputs: readonly Tensor[];
  /** Given d(loss)/d(output), returns d(loss)/d(input) for each input (null where none flows). */
  backward: (gradOutput: Tensor) => readonly (Tensor | null)[];
}

const ORT_TYPE: Record<DType, 'float32' | 'float16' | 'int32' | 'int64' | 'bool' | 'uint8'> = {
  float32: 'float32',
  float16: 'float16',
  int32: 'int32',
  int64: 'int64',
  bool: 'bool',
  uint8: 'uint8',
};

/** The number of elements of a shape. */
export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A shape as text for messages, e.g. (2, 4, 64, 64). */
export function formatShape(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

function allocate(dtype: DType, n: number): TensorData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'int64':
      return new BigInt64Array(n);
    case 'bool':
    case 'uint8':
      return new Uint8Array(n);
    case 'float16':
      throw new Error('Tensor: float16 tensors are converted to float32 on load; compute in float32');
  }
}

function dtypeOfData(data: TensorData): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  return 'uint8';
}

/**
 * An immutable n-dimensional array (float32, float16, int32, int64, bool or uint8) in row-major order, with
 * eager ops run by onnxruntime and reverse-mode autograd.
 */
export class Tensor {
  readonly dtype: DType;
  readonly shape: Shape;
  readonly data: TensorData;
  /** Set on leaves whose gradient `backward()` should keep in `.grad`. */
  requiresGrad = false;
  grad: Tensor | null = null;
  /** How this tensor was computed, when gradients are being recorded. */
  node: GradNode | null = null;
  #ort: OrtTensor | null = null;

  constructor(data: TensorData, shape: Shape, dtype?: DType) {
    const n = sizeOf(shape);
    if (data.length !== n) {
      throw new Error(`Tensor: data has ${data.length} elements but shape ${formatShape(shape)} needs ${n}`);
    }
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`Tensor: invalid shape ${formatShape(shape)}`);
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype ?? dtypeOfData(data);
  }

  /** A tensor over an onnxruntime tensor's data (no copy). */
  static fromOrt(t: OrtTensor): Tensor {
    const dtype = t.type as DType;
    return new Tensor(
      t.data as TensorData,
      t.dims,
      dtype === 'uint8' || dtype === 'bool' ? dtype : undefined,
    );
  }

  /** A float32 tensor from nested-free numbers. */
  static from(values: ArrayLike<number>, shape?: Shape): Tensor {
    return new Tensor(Float32Array.from(values), shape ?? [values.length]);
  }

  /** An int64 tensor from numbers. */
  static int64(values: ArrayLike<number>, shape?: Shape): Tensor {
    return new Tensor(BigInt64Array.from(Array.from(values, BigInt)), shape ?? [values.length]);
  }

  /** An int32 tensor from numbers. */
  static int32(values: ArrayLike<number>, shape?: Shape): Tensor {
    return new Tensor(Int32Array.from(values), shape ?? [values.length]);
  }

  /** A bool tensor from booleans or 0/1. */
  static bool(values: ArrayLike<boolean | number>, shape?: Shape): Tensor {
    return new Tensor(
      Uint8Array.from(Array.from(values, (v) => (v ? 1 : 0))),
      shape ?? [values.length],
      'bool',
    );
  }

  /** A float32 tensor of shape () holding v. */
  static scalar(v: number): Tensor {
    return new Tensor(Float32Array.of(v), []);
  }

  /** A tensor of this shape filled with one value. */
  static full(shape: Shape, value: number, dtype: DType = 'float32'): Tensor {
    const data = allocate(dtype, sizeOf(shape));
    if (data instanceof BigInt64Array) data.fill(BigInt(value));
    else data.fill(value);
    return new Tensor(data, shape, dtype);
  }

  /** A tensor of zeros. */
  static zeros(shape: Shape, dtype: DType = 'float32'): Tensor {
    return new Tensor(allocate(dtype, sizeOf(shape)), shape, dtype);
  }

  /** A tensor of ones. */
  static ones(shape: Shape, dtype: DType = 'float32'): Tensor {
    return Tensor.full(shape, 1, dtype);
  }

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return this.data.length;
  }

  /** The onnxruntime view of this tensor (shares the data). */
  ort(): OrtTensor {
    if (!this.#ort) this.#ort = new OrtTensor(ORT_TYPE[this.dtype], this.data, this.shape as number[]);
    return this.#ort;
  }

  /** Values as plain numbers (int64 converted). */
  toArray(): number[] {
    return Array.from(this.data as ArrayLike<number | bigint>, Number);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1)
      throw new Error(`item: tensor of shape ${formatShape(this.shape)} has ${this.size} values`);
    return Number(this.data[0]);
  }

  /** Same data, no gradient history. */
  detach(): Tensor {
    return new Tensor(this.data, this.shape, this.dtype);
  }

  /** Marks this tensor as a leaf whose gradient is wanted; returns this. */
  requireGrad(flag = true): this {
    this.requiresGrad = flag;
    return this;
  }

  /** The dtype, shape and first values as text, e.g. Tensor(float32, (2, 3), [0, 1, …]). */
  toString(): string {
    const vals = this.toArray();
    const shown = vals.slice(0, 8).map((v) => (Number.isInteger(v) ? String(v) : v.toFixed(4)));
    return `Tensor(${this.dtype}, ${formatShape(this.shape)}, [${shown.join(', ')}${vals.length > 8 ? ', …' : ''}])`;
  }
}
