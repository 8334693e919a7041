// Elementwise ops with NumPy broadcasting: arithmetic, unary math, activations, comparisons, where, cast.

import { record, recordsGrad } from '../autograd.js';
import { type DType, Tensor } from '../tensor.js';
import { sumToShape } from './reduce.js';
import { runOp1 } from './run.js';
import { broadcastShapes } from './shape-utils.js';

/** The second operand of a binary op: a tensor (broadcast) or a number. */
export type Operand = Tensor | number;

/** A number becomes a 0-d tensor of the other operand's dtype. */
export function asTensor(v: Operand, like: Tensor): Tensor {
  if (v instanceof Tensor) return v;
  if (like.dtype === 'int64') return new Tensor(BigInt64Array.of(BigInt(v)), [], 'int64');
  if (like.dtype === 'int32') return new Tensor(Int32Array.of(v), [], 'int32');
  return Tensor.scalar(v);
}

function binary(op: string, name: string, a: Tensor, bv: Operand): [Tensor, Tensor, Tensor] {
  const b = asTensor(bv, a);
  const shape = broadcastShapes(name, a.shape, b.shape);
  if (a.dtype !== b.dtype) throw new Error(`${name}: dtypes differ (${a.dtype} and ${b.dtype}); cast first`);
  return [a, b, runOp1(op, [a, b], { shape })];
}

// arithmetic

/** a + b, elementwise with broadcasting. */
export function add(av: Tensor, bv: Operand): Tensor {
  const [a, b, out] = binary('Add', 'add', av, bv);
  return record(out, 'add', [a, b], (g) => [sumToShape(g, a.shape), sumToShape(g, b.shape)]);
}

/** a − b, elementwise with broadcasting. */
export function sub(av: Tensor, bv: Operand): Tensor {
  const [a, b, out] = binary('Sub', 'sub', av, bv);
  return record(out, 'sub', [a, b], (g) => [sumToShape(g, a.shape), sumToShape(g.neg(), b.shape)]);
}

/** a · b, elementwise with broadcasting. */
export function mul(av: Tensor, bv: Operand): Tensor {
  const [a, b, out] = binary('Mul', 'mul', av, bv);
  return record(out, 'mul', [a, b], (g) => [sumToShape(g.mul(b), a.shape), sumToShape(g.mul(a), b.shape)]);
}

/** a / b, elementwise with broadcasting. */
export function div(av: Tensor, bv: Operand): Tensor {
  const [a, b, out] = binary('Div', 'div', av, bv);
  return record(out, 'div', [a, b], (g) => [
    sumToShape(g.div(b), a.shape),
    sumToShape(g.mul(out).div(b).neg(), b.shape),
  ]);
}

/** a ** b (elementwise); the gradient for b needs a > 0. */
export function pow(av: Tensor, bv: Operand): Tensor {
  const [a, b, out] = binary('Pow', 'pow', av, bv);
  return record(out, 'pow', [a, b], (g) => [
    sumToShape(g.mul(b).mul(pow(a, b.sub(1))), a.shape),
    sumToShape(g.mul(out).mul(a.log()), b.shape),
  ]);
}

/** The larger of a and b, elementwise with broadcasting. */
export function maximum(av: Tensor, bv: Operand): Tensor {
  const [a, b, out] = binary('Max', 'maximum', av, bv);
  return record(out, 'maximum', [a, b], (g) => {
    const takeA = a.ge(b).cast('float32');
    return [sumToShape(g.mul(takeA), a.shape), sumToShape(g.mul(takeA.neg().add(1)), b.shape)];
  });
}

/** The smaller of a and b, elementwise with broadcasting. */
export function minimum(av: Tensor, bv: Operand): Tensor {
  const [a, b, out] = binary('Min', 'minimum', av, bv);
  return record(out, 'minimum', [a, b], (g) => {
    const takeA = a.le(b).cast('float32');
    return [sumToShape(g.mul(takeA), a.shape), sumToShape(g.mul(takeA.neg().add(1)), b.shape)];
  });
}

// unary math

function unary(op: string, x: Tensor, attrs?: Record<string, number | string>): Tensor {
  return runOp1(op, [x], { attrs, shape: x.shape });
}

/** −x, elementwise. */
export function neg(x: Tensor): Tensor {
  return record(unary('Neg', x), 'neg', [x], (g) => [g.neg()]);
}

/** eˣ, elementwise. */
export function exp(x: Tensor): Tensor {
  const out = unary('Exp', x);
  return record(out, 'exp', [x], (g) => [g.mul(out)]);
}

/** The natural logarithm, elementwise. */
export function log(x: Tensor): Tensor {
  return record(unary('Log', x), 'log', [x], (g) => [g.div(x)]);
}

/** √x, elementwise. */
export function sqrt(x: Tensor): Tensor {
  const out = unary('Sqrt', x);
  return record(out, 'sqrt', [x], (g) => [g.div(out.mul(2))]);
}

/** |x|, elementwise. */
export function abs(x: Tensor): Tensor {
  return record(unary('Abs', x), 'abs', [x], (g) => [g.mul(unary('Sign', x))]);
}

/** sin x, elementwise. */
export function sin(x: Tensor): Tensor {
  return record(unary('Sin', x), 'sin', [x], (g) => [g.mul(unary('Cos', x))]);
}

/** cos x, elementwise. */
export function cos(x: Tensor): Tensor {
  return record(unary('Cos', x), 'cos', [x], (g) => [g.mul(unary('Sin', x)).neg()]);
}

/** tanh x, elementwise. */
export function tanh(x: Tensor): Tensor {
  const out = unary('Tanh', x);
  return record(out, 'tanh', [x], (g) => [g.mul(out.mul(out).neg().add(1))]);
}

/** The logistic sigmoid 1 / (1 + e⁻ˣ), elementwise. */
export function sigmoid(x: Tensor): Tensor {
  const out = unary('Sigmoid', x);
  return record(out, 'sigmoid', [x], (g) => [g.mul(out).mul(out.neg().add(1))]);
}

/** max(x, 0), elementwise. */
export function relu(x: Tensor): Tensor {
  return record(unary('Relu', x), 'relu', [x], (g) => [g.mul(x.gt(0).cast('float32'))]);
}

/** x · sigmoid(x) (a.k.a. swish). */
export function silu(x: Tensor): Tensor {
  // Without gradients, one kernel: onnxruntime's QuickGelu with alpha 1 is x·sigmoid(x) in one pass,
  // bit-identical to Sigmoid then Mul and half their time (bench/unet.ts notes).
  if (x.dtype === 'float32' && !recordsGrad(x)) {
    return runOp1('QuickGelu', [x], { domain: 'com.microsoft', attrs: { alpha: 1 }, shape: x.shape });
  }
  const s = unary('Sigmoid', x);
  const out = runOp1('Mul', [x, s]);
  // d/dx = s + x·s·(1−s)
  return record(out, 'silu', [x], (g) => [g.mul(s.add(out.mul(s.neg().add(1))))]);
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** GELU: exact erf form by default, or the tanh approximation. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  const out = unary('Gelu', x, { approximate });
  return record(out, 'gelu', [x], (g) => {
    if (approximate === 'none') {
      // d/dx = Φ(x) + x·φ(x)
      const cdf = unary('Erf', x.mul(Math.SQRT1_2)).add(1).mul(0.5);
      const pdf = x
        .mul(x)
        .mul(-0.5)
        .exp()
        .mul(1 / Math.sqrt(2 * Math.PI));
      return [g.mul(cdf.add(x.mul(pdf)))];
    }
    // u = √(2/π)(x + 0.044715x³); y = ½x(1+tanh u)
    const x2 = x.mul(x);
    const t = tanh(x.add(x2.mul(x).mul(0.044715)).mul(SQRT_2_OVER_PI));
    const du = x2
      .mul(3 * 0.044715)
      .add(1)
      .mul(SQRT_2_OVER_PI);
    const d = t
      .add(1)
      .mul(0.5)
      .add(x.mul(0.5).mul(t.mul(t).neg().add(1)).mul(du));
    return [g.mul(d)];
  });
}

/** CLIP's quick_gelu: x · sigmoid(1.702 x). */
export function quickGelu(x: Tensor): Tensor {
  return x.mul(sigmoid(x.mul(1.702)));
}

/** Clamps to [lo, hi]; the gradient flows where the input is inside. */
export function clamp(x: Tensor, lo = -Infinity, hi = Infinity): Tensor {
  const out = runOp1('Clip', [x, asTensor(lo, x), asTensor(hi, x)]);
  return record(out, 'clamp', [x], (g) => [g.mul(x.ge(lo).and(x.le(hi)).cast('float32'))]);
}

// comparisons and selection (no gradient)

function compare(op: string, name: string, a: Tensor, bv: Operand): Tensor {
  const b = asTensor(bv, a);
  broadcastShapes(name, a.shape, b.shape);
  return runOp1(op, [a, b], { outputs: ['bool'] });
}

/** a = b as a bool tensor, elementwise with broadcasting. */
export const eq = (a: Tensor, b: Operand): Tensor => compare('Equal', 'eq', a, b);
/** a < b as a bool tensor, elementwise with broadcasting. */
export const lt = (a: Tensor, b: Operand): Tensor => compare('Less', 'lt', a, b);
/** a ≤ b as a bool tensor, elementwise with broadcasting. */
export const le = (a: Tensor, b: Operand): Tensor => compare('LessOrEqual', 'le', a, b);
/** a > b as a bool tensor, elementwise with broadcasting. */
export const gt = (a: Tensor, b: Operand): Tensor => compare('Greater', 'gt', a, b);
/** a ≥ b as a bool tensor, elementwise with broadcasting. */
export const ge = (a: Tensor, b: Operand): Tensor => compare('GreaterOrEqual', 'ge', a, b);

/** Logical and of two bool tensors, with broadcasting. */
export function and(a: Tensor, b: Tensor): Tensor {
  broadcastShapes('and', a.shape, b.shape);
  return runOp1('And', [a, b], { outputs: ['bool'] });
}

/** Logical not of a bool tensor. */
export function not(a: Tensor): Tensor {
  return runOp1('Not', [a], { outputs: ['bool'] });
}

/** cond ? a : b, broadcasting all three; the gradient is routed by `cond`. */
export function where(cond: Tensor, a: Tensor, bv: Operand): Tensor {
  const b = asTensor(bv, a);
  if (cond.dtype !== 'bool') throw new Error(`where: condition must be bool, got ${cond.dtype}`);
  const shape = broadcastShapes('where', broadcastShapes('where', cond.shape, a.shape), b.shape);
  const out = runOp1('Where', [cond, a, b], { outputs: [a.dtype] });
  return record(out, 'where', [a, b], (g) => {
    const zero = Tensor.zeros([], g.dtype);
    const gFull = g.expand(shape);
    return [sumToShape(where(cond, gFull, zero), a.shape), sumToShape(where(cond, zero, gFull), b.shape)];
  });
}

const CAST_TO: Record<DType, number> = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float16: 10 };

/** The tensor converted to another element type (ONNX Cast). */
export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  return runOp1('Cast', [x], { attrs: { to: CAST_TO[dtype] }, outputs: [dtype] });
}
