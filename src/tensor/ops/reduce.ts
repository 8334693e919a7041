// Reductions over axes: sum, mean, max, min, argmax, var; and sumToShape, the adjoint of broadcasting.

import { record } from '../autograd.js';
import { formatShape, type Shape, Tensor } from '../tensor.js';
import { runOp1 } from './run.js';
import { normAxis, sameShape } from './shape-utils.js';

/** Which axes a reduction runs over and whether it keeps them as size 1. */
export interface ReduceOptions {
  /** Axes to reduce (negative counts from the end); default: all. */
  axes?: number | readonly number[];
  keepDims?: boolean;
}

function axesOf(op: string, x: Tensor, axes: ReduceOptions['axes']): number[] {
  if (axes === undefined) return x.shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  return [...new Set(list.map((a) => normAxis(op, a, x.rank)))].sort((a, b) => a - b);
}

function keptShape(x: Tensor, axes: number[]): number[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function reduceKernel(op: string, x: Tensor, axes: number[], keepDims: boolean): Tensor {
  if (axes.length === 0) return x;
  return runOp1(op, [x, Tensor.int64(axes)], { attrs: { keepdims: keepDims ? 1 : 0 } });
}

/** Sum over axes. */
export function sum(x: Tensor, opts: ReduceOptions = {}): Tensor {
  const axes = axesOf('sum', x, opts.axes);
  const keep = opts.keepDims ?? false;
  const out = reduceKernel('ReduceSum', x, axes, keep);
  if (axes.length === 0) return out;
  return record(out, 'sum', [x], (g) => [g.reshape(keptShape(x, axes)).expand(x.shape)]);
}

/** Mean over axes. */
export function mean(x: Tensor, opts: ReduceOptions = {}): Tensor {
  const axes = axesOf('mean', x, opts.axes);
  const count = axes.reduce((n, a) => n * (x.shape[a] as number), 1);
  return sum(x, opts).mul(1 / count);
}

function extremum(op: 'ReduceMax' | 'ReduceMin', name: string, x: Tensor, opts: ReduceOptions): Tensor {
  const axes = axesOf(name, x, opts.axes);
  const keep = opts.keepDims ?? false;
  const out = reduceKernel(op, x, axes, keep);
  if (axes.length === 0) return out;
  return record(out, name, [x], (g) => {
    // the gradient goes to the elements equal to the extremum, split evenly between ties
    const shape = keptShape(x, axes);
    const hit = x.eq(out.reshape(shape)).cast('float32');
    const count = sum(hit, { axes, keepDims: true });
    return [hit.div(count).mul(g.reshape(shape))];
  });
}

/** The maximum over the given axes (default all). */
export function max(x: Tensor, opts: ReduceOptions = {}): Tensor {
  return extremum('ReduceMax', 'max', x, opts);
}

/** The minimum over the given axes (default all). */
export function min(x: Tensor, opts: ReduceOptions = {}): Tensor {
  return extremum('ReduceMin', 'min', x, opts);
}

/** Index of the largest value along `axis` (int64); first index on ties. */
export function argmax(x: Tensor, axis = -1, keepDims = false): Tensor {
  const a = normAxis('argmax', axis, x.rank);
  return runOp1('ArgMax', [x], { attrs: { axis: a, keepdims: keepDims ? 1 : 0 }, outputs: ['int64'] });
}

/** Variance over axes (population variance unless `correction` = 1). */
export function variance(x: Tensor, opts: ReduceOptions & { correction?: number } = {}): Tensor {
  const axes = axesOf('var', x, opts.axes);
  const count = axes.reduce((n, a) => n * (x.shape[a] as number), 1);
  const centered = x.sub(mean(x, { axes, keepDims: true }));
  return sum(centered.mul(centered), { axes, keepDims: opts.keepDims }).mul(
    1 / Math.max(count - (opts.correction ?? 0), 1),
  );
}

/** Sums `g` down to `shape`: the adjoint of broadcasting `shape` up to `g.shape`. */
export function sumToShape(g: Tensor, shape: Shape): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  if (lead < 0)
    throw new Error(`sumToShape: ${formatShape(g.shape)} has fewer dims than ${formatShape(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return sum(g, { axes, keepDims: true }).reshape(shape);
}
