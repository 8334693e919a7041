// Shape ops: reshape (metadata only), permute/transpose, expand, slice, concat, split, gather, pad.

import { record } from '../autograd.js';
import { formatShape, type Shape, sizeOf, Tensor } from '../tensor.js';
import { activeTrace } from '../trace.js';
import { sumToShape } from './reduce.js';
import { runOp, runOp1 } from './run.js';
import { normAxis } from './shape-utils.js';

/** Same data, new shape; one dim may be -1 (inferred). No kernel runs. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const target = [...shape];
  const free = target.indexOf(-1);
  if (free !== target.lastIndexOf(-1)) throw new Error(`reshape: more than one -1 in ${formatShape(shape)}`);
  if (free >= 0) {
    const known = sizeOf(target.filter((_, i) => i !== free));
    if (known === 0 || x.size % known !== 0) {
      throw new Error(`reshape: cannot reshape ${formatShape(x.shape)} into ${formatShape(shape)}`);
    }
    target[free] = x.size / known;
  }
  if (sizeOf(target) !== x.size) {
    throw new Error(
      `reshape: cannot reshape ${formatShape(x.shape)} (${x.size} values) into ${formatShape(shape)}`,
    );
  }
  const out = new Tensor(x.data, target, x.dtype);
  // recorded as asked, −1 included, so that a traced graph infers that dim at any size
  activeTrace()?.node('Reshape', [x, Tensor.int64(shape)], [out]);
  return record(out, 'reshape', [x], (g) => [g.reshape(x.shape)]);
}

/** A new axis of size 1 at `axis`. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis('unsqueeze', axis, x.rank + 1);
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

/** Axes of size 1 removed: the given one, or all. */
export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined)
    return reshape(
      x,
      x.shape.filter((d) => d !== 1),
    );
  const a = normAxis('squeeze', axis, x.rank);
  if (x.shape[a] !== 1) throw new Error(`squeeze: axis ${axis} of ${formatShape(x.shape)} is not 1`);
  return reshape(
    x,
    x.shape.filter((_, i) => i !== a),
  );
}

/** Flattens dims [start, end] into one. */
export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  const s = normAxis('flatten', start, x.rank);
  const e = normAxis('flatten', end, x.rank);
  return reshape(x, [...x.shape.slice(0, s), sizeOf(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

/** Reorders dims: out.shape[i] = x.shape[perm[i]]. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || new Set(perm.map((p) => normAxis('permute', p, x.rank))).size !== x.rank) {
    throw new Error(
      `permute: ${JSON.stringify(perm)} is not a permutation of the dims of ${formatShape(x.shape)}`,
    );
  }
  const p = perm.map((a) => normAxis('permute', a, x.rank));
  if (p.every((a, i) => a === i)) return x;
  const out = runOp1('Transpose', [x], { attrs: { perm: p } });
  const inverse = new Array<number>(p.length);
  p.forEach((a, i) => {
    inverse[a] = i;
  });
  return record(out, 'permute', [x], (g) => [permute(g, inverse)]);
}

/** Swaps two dims (default: the last two). */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  const a = normAxis('transpose', dim0, x.rank);
  const b = normAxis('transpose', dim1, x.rank);
  const perm = x.shape.map((_, i) => i);
  perm[a] = b;
  perm[b] = a;
  return permute(x, perm);
}

/** Broadcasts to `shape` (NumPy rules; the result is materialised). */
export function expand(x: Tensor, shape: Shape): Tensor {
  if (shape.length < x.rank) {
    throw new Error(`expand: cannot expand ${formatShape(x.shape)} to fewer dims ${formatShape(shape)}`);
  }
  const lead = shape.length - x.rank;
  x.shape.forEach((d, i) => {
    if (d !== 1 && d !== shape[lead + i]) {
      throw new Error(`expand: cannot expand ${formatShape(x.shape)} to ${formatShape(shape)}`);
    }
  });
  if (shape.length === x.rank && shape.every((d, i) => d === x.shape[i])) return x;
  const out = runOp1('Expand', [x, Tensor.int64(shape)]);
  return record(out, 'expand', [x], (g) => [sumToShape(g, x.shape)]);
}

/** x[start:end:step] along `axis` (Python slice semantics, negative indices count from the end). */
export function slice(x: Tensor, axis: number, start: number, end?: number, step = 1): Tensor {
  const a = normAxis('slice', axis, x.rank);
  const n = x.shape[a] as number;
  if (step === 0) throw new Error('slice: step cannot be 0');
  let s: number;
  let e: number;
  if (step > 0) {
    s = start < 0 ? Math.max(start + n, 0) : Math.min(start, n);
    e = end === undefined ? n : end < 0 ? Math.max(end + n, 0) : Math.min(end, n);
  } else {
    // Python clamps to [−1, n−1] for negative steps, −1 meaning "before index 0"
    s = start < 0 ? Math.max(start + n, -1) : Math.min(start, n - 1);
    e = end === undefined ? -1 : end < 0 ? Math.max(end + n, -1) : Math.min(end, n - 1);
    if (s <= e)
      [s, e] = [0, 0]; // empty
    else if (e === -1) e = -n - 1; // ONNX reads −1 as the last index; −n−1 clamps to "before 0"
  }
  if (step === 1 && s === 0 && e === n) return x;
  const out = runOp1('Slice', [
    x,
    Tensor.int64([s]),
    Tensor.int64([e]),
    Tensor.int64([a]),
    Tensor.int64([step]),
  ]);
  return record(out, 'slice', [x], (g) => {
    if (step < 0) throw new Error('slice: gradient of a negative-step slice is not supported');
    let spread = g;
    const m = g.shape[a] as number;
    if (step > 1) {
      // interleave step − 1 zeros after every picked element: (…, m, …) → (…, m, step, …) → (…, m·step, …)
      const gp = new Array<number>(2 * (g.rank + 1)).fill(0);
      gp[g.rank + 1 + a + 1] = step - 1;
      spread = pad(unsqueeze(g, a + 1), gp).reshape(g.shape.map((d, i) => (i === a ? d * step : d)));
    }
    const pads = new Array<number>(2 * x.rank).fill(0);
    pads[a] = s;
    pads[x.rank + a] = n - s - (spread.shape[a] as number); // negative: crops the trailing zeros
    return [m === 0 ? Tensor.zeros(x.shape) : pad(spread, pads)];
  });
}

/** Joins tensors along `axis`. */
export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  const first = xs[0];
  if (!first) throw new Error('concat: no tensors given');
  const a = normAxis('concat', axis, first.rank);
  for (const x of xs) {
    if (x.rank !== first.rank || x.shape.some((d, i) => i !== a && d !== first.shape[i])) {
      throw new Error(
        `concat: shapes ${xs.map((t) => formatShape(t.shape)).join(', ')} differ outside axis ${axis}`,
      );
    }
    if (x.dtype !== first.dtype) {
      throw new Error(`concat: dtypes differ (${xs.map((t) => t.dtype).join(', ')}); cast first`);
    }
  }
  if (xs.length === 1) return first;
  const out = runOp1('Concat', xs, { attrs: { axis: a } });
  return record(out, 'concat', xs, (g) =>
    split(
      g,
      xs.map((x) => x.shape[a] as number),
      a,
    ),
  );
}

/** Splits along `axis` into pieces of the given sizes (or `n` equal pieces). */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const a = normAxis('split', axis, x.rank);
  const n = x.shape[a] as number;
  const parts = typeof sizes === 'number' ? new Array<number>(sizes).fill(n / sizes) : [...sizes];
  if (parts.some((p) => !Number.isInteger(p) || p < 0) || parts.reduce((s, p) => s + p, 0) !== n) {
    throw new Error(
      `split: sizes ${JSON.stringify(sizes)} do not split axis ${axis} of ${formatShape(x.shape)}`,
    );
  }
  const outs = runOp('Split', [x, Tensor.int64(parts)], {
    attrs: { axis: a },
    outputs: parts.map(() => x.dtype),
  });
  outs.forEach((o, i) => {
    record(o, 'split', [x], (g) => {
      const pieces = parts.map((p, j) =>
        j === i ? g : Tensor.zeros(x.shape.map((d, k) => (k === a ? p : d))),
      );
      return [concat(pieces, a)];
    });
  });
  return outs;
}

/** Pads with `pads` = [begin_0, …, begin_{r−1}, end_0, …, end_{r−1}] (ONNX order); negative crops. */
export function pad(
  x: Tensor,
  pads: readonly number[],
  mode: 'constant' | 'reflect' | 'edge' = 'constant',
  value = 0,
): Tensor {
  if (pads.length !== 2 * x.rank) {
    throw new Error(`pad: expected ${2 * x.rank} pads for shape ${formatShape(x.shape)}, got ${pads.length}`);
  }
  if (pads.every((p) => p === 0)) return x;
  const out = runOp1('Pad', [x, Tensor.int64(pads), mode === 'constant' ? Tensor.scalar(value) : null], {
    attrs: { mode },
  });
  return record(out, 'pad', [x], (g) => {
    if (mode !== 'constant') throw new Error(`pad: gradient of mode '${mode}' is not supported`);
    return [
      pad(
        g,
        pads.map((p) => -p),
      ),
    ];
  });
}

/** Picks entries of `x` along `axis` at integer `indices` (any shape): out.shape = x[:axis] + idx + x[axis+1:]. */
export function gather(x: Tensor, indices: Tensor, axis = 0): Tensor {
  const a = normAxis('gather', axis, x.rank);
  if (indices.dtype !== 'int64' && indices.dtype !== 'int32') {
    throw new Error(`gather: indices must be int32 or int64, got ${indices.dtype}`);
  }
  const n = x.shape[a] as number;
  for (const v of indices.toArray()) {
    if (v < -n || v >= n) throw new Error(`gather: index ${v} out of range for axis ${axis} of size ${n}`);
  }
  const out = runOp1('Gather', [x, indices], { attrs: { axis: a }, outputs: [x.dtype] });
  return record(out, 'gather', [x], (g) => [scatterAdd(x.shape, indices, g, a)]);
}

/** Selects along `axis` by a list of indices (a 1-D gather). */
export function indexSelect(x: Tensor, axis: number, indices: readonly number[]): Tensor {
  return gather(x, Tensor.int64(indices), axis);
}

/** Zeros of `shape` plus `src` added at `indices` along `axis` (adjoint of gather; duplicates add up). */
export function scatterAdd(shape: Shape, indices: Tensor, src: Tensor, axis: number): Tensor {
  // Expressed as a one-hot matmul so that duplicates accumulate: (n, k) · (k, rest).
  const n = shape[axis] as number;
  const idx = indices.toArray().map((v) => (v < 0 ? v + n : v));
  const k = idx.length;
  const oneHot = new Float32Array(n * k);
  idx.forEach((v, j) => {
    oneHot[v * k + j] = 1;
  });
  const before = shape.slice(0, axis);
  const after = shape.slice(axis + 1);
  // src: before + idxShape + after → (before, k, after) → move k to front
  const s = reshape(src, [sizeOf(before), k, sizeOf(after)]);
  const moved = permute(s, [1, 0, 2]).reshape([k, sizeOf(before) * sizeOf(after)]);
  const summed = new Tensor(oneHot, [n, k]).matmul(moved); // (n, before·after)
  return permute(summed.reshape([n, sizeOf(before), sizeOf(after)]), [1, 0, 2]).reshape(shape);
}
