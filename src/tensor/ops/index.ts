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
    add(b: Operand): Tensor;
    sub(b: Operand): Tensor;
    mul(b: Operand): Tensor;
    div(b: Operand): Tensor;
    pow(b: Operand): Tensor;
    maximum(b: Operand): Tensor;
    minimum(b: Operand): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    abs(): Tensor;
    sin(): Tensor;
    cos(): Tensor;
    tanh(): Tensor;
    sigmoid(): Tensor;
    relu(): Tensor;
    silu(): Tensor;
    gelu(approximate?: 'none' | 'tanh'): Tensor;
    clamp(lo?: number, hi?: number): Tensor;
    eq(b: Operand): Tensor;
    lt(b: Operand): Tensor;
    le(b: Operand): Tensor;
    gt(b: Operand): Tensor;
    ge(b: Operand): Tensor;
    and(b: Tensor): Tensor;
    cast(dtype: DType): Tensor;
    sum(opts?: R.ReduceOptions): Tensor;
    mean(opts?: R.ReduceOptions): Tensor;
    max(opts?: R.ReduceOptions): Tensor;
    min(opts?: R.ReduceOptions): Tensor;
    argmax(axis?: number, keepDims?: boolean): Tensor;
    matmul(b: Tensor, opts?: { transA?: boolean; transB?: boolean; alpha?: number }): Tensor;
    reshape(shape: Shape): Tensor;
    unsqueeze(axis: number): Tensor;
    squeeze(axis?: number): Tensor;
    flatten(start?: number, end?: number): Tensor;
    permute(perm: readonly number[]): Tensor;
    transpose(dim0?: number, dim1?: number): Tensor;
    expand(shape: Shape): Tensor;
    slice(axis: number, start: number, end?: number, step?: number): Tensor;
    split(sizes: number | readonly number[], axis?: number): Tensor[];
    pad(pads: readonly number[], mode?: 'constant' | 'reflect' | 'edge', value?: number): Tensor;
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
