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

const P = Tensor.prototype;
P.add = function (b) {
  return E.add(this, b);
};
P.sub = function (b) {
  return E.sub(this, b);
};
P.mul = function (b) {
  return E.mul(this, b);
};
P.div = function (b) {
  return E.div(this, b);
};
P.pow = function (b) {
  return E.pow(this, b);
};
P.maximum = function (b) {
  return E.maximum(this, b);
};
P.minimum = function (b) {
  return E.minimum(this, b);
};
P.neg = function () {
  return E.neg(this);
};
P.exp = function () {
  return E.exp(this);
};
P.log = function () {
  return E.log(this);
};
P.sqrt = function () {
  return E.sqrt(this);
};
P.abs = function () {
  return E.abs(this);
};
P.sin = function () {
  return E.sin(this);
};
P.cos = function () {
  return E.cos(this);
};
P.tanh = function () {
  return E.tanh(this);
};
P.sigmoid = function () {
  return E.sigmoid(this);
};
P.relu = function () {
  return E.relu(this);
};
P.silu = function () {
  return E.silu(this);
};
P.gelu = function (approximate) {
  return E.gelu(this, approximate);
};
P.clamp = function (lo, hi) {
  return E.clamp(this, lo, hi);
};
P.eq = function (b) {
  return E.eq(this, b);
};
P.lt = function (b) {
  return E.lt(this, b);
};
P.le = function (b) {
  return E.le(this, b);
};
P.gt = function (b) {
  return E.gt(this, b);
};
P.ge = function (b) {
  return E.ge(this, b);
};
P.and = function (b) {
  return E.and(this, b);
};
P.cast = function (dtype) {
  return E.cast(this, dtype);
};
P.sum = function (opts) {
  return R.sum(this, opts);
};
P.mean = function (opts) {
  return R.mean(this, opts);
};
P.max = function (opts) {
  return R.max(this, opts);
};
P.min = function (opts) {
  return R.min(this, opts);
};
P.argmax = function (axis, keepDims) {
  return R.argmax(this, axis, keepDims);
};
P.matmul = function (b, opts) {
  return L.matmul(this, b, opts);
};
P.reshape = function (shape) {
  return S.reshape(this, shape);
};
P.unsqueeze = function (axis) {
  return S.unsqueeze(this, axis);
};
P.squeeze = function (axis) {
  return S.squeeze(this, axis);
};
P.flatten = function (start, end) {
  return S.flatten(this, start, end);
};
P.permute = function (perm) {
  return S.permute(this, perm);
};
P.transpose = function (dim0, dim1) {
  return S.transpose(this, dim0, dim1);
};
P.expand = function (shape) {
  return S.expand(this, shape);
};
P.slice = function (axis, start, end, step) {
  return S.slice(this, axis, start, end, step);
};
P.split = function (sizes, axis) {
  return S.split(this, sizes, axis);
};
P.pad = function (pads, mode, value) {
  return S.pad(this, pads, mode, value);
};
P.softmax = function (axis) {
  return N.softmax(this, axis);
};
