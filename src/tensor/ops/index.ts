// All eager ops, as functions and as chained methods on Tensor (`x.matmul(w).add(b)`), the way
// tfjs-core exposes its chained ops.

import { type DType, type Shape, Tensor } from '../tensor.js';
import * as E from './elementwise.js';
import * as L from './linalg.js';
import * as N from './nn.js';
import * as R from './reduce.js';
import * as S from './shape.js';

export * from './elementwise.js';
export * from './linalg.js';
export * from './nn.js';
export * from './reduce.js';
export { runOp, runOp1 } from './run.js';
export * from './shape.js';

type Operand = E.Operand;

declare module '../tensor.js' {
  interface Tensor {
    /** this + b (see `add`). */
    add(b: Operand): Tensor;
    /** this − b (see `sub`). */
    sub(b: Operand): Tensor;
    /** this · b (see `mul`). */
    mul(b: Operand): Tensor;
    /** this / b (see `div`). */
    div(b: Operand): Tensor;
    /** this to the power b, elementwise. */
    pow(b: Operand): Tensor;
    /** The larger of this and b, elementwise. */
    maximum(b: Operand): Tensor;
    /** The smaller of this and b, elementwise. */
    minimum(b: Operand): Tensor;
    /** −this. */
    neg(): Tensor;
    /** e to the power of each element. */
    exp(): Tensor;
    /** The natural logarithm of each element. */
    log(): Tensor;
    /** The square root of each element. */
    sqrt(): Tensor;
    /** The absolute value of each element. */
    abs(): Tensor;
    /** The sine of each element. */
    sin(): Tensor;
    /** The cosine of each element. */
    cos(): Tensor;
    /** The hyperbolic tangent of each element. */
    tanh(): Tensor;
    /** The logistic sigmoid of each element. */
    sigmoid(): Tensor;
    /** max(x, 0) of each element. */
    relu(): Tensor;
    /** x · sigmoid(x) of each element (SiLU, Elfwing et al. 2018). */
    silu(): Tensor;
    /** GELU (Hendrycks & Gimpel 2016) of each element, exact or with the tanh approximation. */
    gelu(approximate?: 'none' | 'tanh'): Tensor;
    /** Each element limited to [lo, hi]. */
    clamp(lo?: number, hi?: number): Tensor;
    /** this = b as a bool tensor. */
    eq(b: Operand): Tensor;
    /** this < b as a bool tensor. */
    lt(b: Operand): Tensor;
    /** this ≤ b as a bool tensor. */
    le(b: Operand): Tensor;
    /** this > b as a bool tensor. */
    gt(b: Operand): Tensor;
    /** this ≥ b as a bool tensor. */
    ge(b: Operand): Tensor;
    /** Logical and with another bool tensor. */
    and(b: Tensor): Tensor;
    /** This tensor converted to another element type. */
    cast(dtype: DType): Tensor;
    /** The sum over the given axes (default all). */
    sum(opts?: R.ReduceOptions): Tensor;
    /** The mean over the given axes (default all). */
    mean(opts?: R.ReduceOptions): Tensor;
    /** The maximum over the given axes (default all). */
    max(opts?: R.ReduceOptions): Tensor;
    /** The minimum over the given axes (default all). */
    min(opts?: R.ReduceOptions): Tensor;
    /** The index of the largest element along an axis. */
    argmax(axis?: number, keepDims?: boolean): Tensor;
    /**
     * The matrix product with b (batched over leading axes), optionally transposing either, scaled by alpha.
     */
    matmul(b: Tensor, opts?: { transA?: boolean; transB?: boolean; alpha?: number }): Tensor;
    /** The same elements in another shape (one dim may be −1). */
    reshape(shape: Shape): Tensor;
    /** A new axis of size 1 at `axis`. */
    unsqueeze(axis: number): Tensor;
    /** Axes of size 1 removed (one, or all). */
    squeeze(axis?: number): Tensor;
    /** Axes start..end merged into one. */
    flatten(start?: number, end?: number): Tensor;
    /** The axes reordered. */
    permute(perm: readonly number[]): Tensor;
    /** Two axes swapped (default the last two). */
    transpose(dim0?: number, dim1?: number): Tensor;
    /** Broadcast to a larger shape. */
    expand(shape: Shape): Tensor;
    /** Elements start..end (by step) along one axis. */
    slice(axis: number, start: number, end?: number, step?: number): Tensor;
    /** Pieces along an axis: of equal size, or of the given sizes. */
    split(sizes: number | readonly number[], axis?: number): Tensor[];
    /** Padded with a constant, reflected or edge values (ONNX Pad's `pads` order). */
    pad(pads: readonly number[], mode?: 'constant' | 'reflect' | 'edge', value?: number): Tensor;
    /** Softmax along an axis (default the last). */
    softmax(axis?: number): Tensor;
  }
}

type Method = keyof Tensor;
type Args<K extends Method> = Tensor[K] extends (...args: infer A) => unknown ? A : never;

/** Makes the op `fn(x, ...args)` callable as `x.name(...args)`. */
function chain<K extends Method>(
  name: K,
  fn: (x: Tensor, ...args: Args<K>) => ReturnType<Extract<Tensor[K], (...a: never[]) => unknown>>,
): void {
  Object.defineProperty(Tensor.prototype, name, {
    value(this: Tensor, ...args: Args<K>) {
      return fn(this, ...args);
    },
    writable: true,
    configurable: true,
  });
}

chain('add', E.add);
chain('sub', E.sub);
chain('mul', E.mul);
chain('div', E.div);
chain('pow', E.pow);
chain('maximum', E.maximum);
chain('minimum', E.minimum);
chain('neg', E.neg);
chain('exp', E.exp);
chain('log', E.log);
chain('sqrt', E.sqrt);
chain('abs', E.abs);
chain('sin', E.sin);
chain('cos', E.cos);
chain('tanh', E.tanh);
chain('sigmoid', E.sigmoid);
chain('relu', E.relu);
chain('silu', E.silu);
chain('gelu', E.gelu);
chain('clamp', E.clamp);
chain('eq', E.eq);
chain('lt', E.lt);
chain('le', E.le);
chain('gt', E.gt);
chain('ge', E.ge);
chain('and', E.and);
chain('cast', E.cast);
chain('sum', R.sum);
chain('mean', R.mean);
chain('max', R.max);
chain('min', R.min);
chain('argmax', R.argmax);
chain('matmul', L.matmul);
chain('reshape', S.reshape);
chain('unsqueeze', S.unsqueeze);
chain('squeeze', S.squeeze);
chain('flatten', S.flatten);
chain('permute', S.permute);
chain('transpose', S.transpose);
chain('expand', S.expand);
chain('slice', S.slice);
chain('split', S.split);
chain('pad', S.pad);
chain('softmax', N.softmax);
