// gradcheck: compares reverse-mode gradients against central finite differences.
//
// For a function f of tensors and a fixed random projection r (one per output, seeded), the scalar
// L(x) = Σ f(x)·r is differentiated two ways for every element of every float32 input:
//   analytic:  backward(f(x), r)  (= d L / d x by the chain rule; several outputs are summed into one L)
//   numeric:   (L(x + h·eᵢ) − L(x − h·eᵢ)) / (x⁺ᵢ − x⁻ᵢ)
// f runs in float32; L and the difference quotient are formed in float64 from f's float32 outputs, and the
// denominator is the perturbation actually representable in float32 (x⁺ᵢ − x⁻ᵢ), not 2h. The numeric side
// evaluates f with recording off, so ops with a fused inference kernel (groupNorm, layerNorm) are checked
// against the decomposition that autograd differentiates.
//
// Error budget (defaults eps = 1e-2, atol = 1e-4, rtol = 1e-3): float32 rounding of an O(1) output is
// ≈ 6e-8, which the quotient amplifies by 1/(2h) to ≈ 3e-6 per affected output; the O(h²) truncation
// error is ≈ h²/6·|L'''| ≈ 2e-5·|L'''|. Measured on test/tensor/grad.test.ts the worst check (log near
// 0.3, where L''' is large) uses 28% of this tolerance; at eps = 1e-3 rounding takes over and layerNorm,
// logSoftmax and convTranspose2d use 70–85%, so 1e-2 is the stable choice. A wrong rule (a missing term,
// a transpose, a factor of 2) is off by O(|grad|), ≥ 100× rtol. Inputs of functions with kinks or ties
// (relu, abs, clamp, max, maximum) must stay farther than eps from them; test/helpers/random.ts has
// generators for that.

import { backward, enableGrad, noGrad, type Shape, sum, Tensor } from '../../src/tensor/index.js';
import { rng } from './random.js';
import { assertClose } from './tolerance.js';

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-2). */
  eps?: number;
  /** Absolute tolerance on each gradient element (default 1e-3). */
  atol?: number;
  /** Relative tolerance on each gradient element, scaled by |numeric| (default 1e-2). */
  rtol?: number;
  /** Which inputs to check (default: every float32 input). */
  wrt?: readonly number[];
  /** Seed of the projection r. */
  seed?: number;
  /** Names the check in failure messages. */
  label?: string;
}

export interface GradcheckResult {
  analytic: Tensor[];
  numeric: { shape: Shape; data: Float64Array }[];
  /** Largest |analytic − numeric| / (atol + rtol·|numeric|) over all checked elements (≤ 1 passes). */
  toleranceUsed: number;
}

type Fn = (...xs: Tensor[]) => Tensor | readonly Tensor[];

function outputsOf(y: Tensor | readonly Tensor[]): readonly Tensor[] {
  return y instanceof Tensor ? [y] : y;
}

function project(ys: readonly Tensor[], rs: readonly Float64Array[]): number {
  let l = 0;
  ys.forEach((y, k) => {
    const r = rs[k] as Float64Array;
    const d = y.data as Float32Array;
    for (let i = 0; i < d.length; i++) l += (d[i] as number) * (r[i] as number);
  });
  return l;
}

/** Checks autograd against central finite differences for every checked input; throws on a mismatch. */
export function gradcheck(f: Fn, inputs: readonly Tensor[], opts: GradcheckOptions = {}): GradcheckResult {
  const eps = opts.eps ?? 1e-2;
  const tol = { atol: opts.atol ?? 1e-4, rtol: opts.rtol ?? 1e-3 };
  const label = opts.label ?? 'gradcheck';
  const wrt = opts.wrt ?? inputs.flatMap((x, i) => (x.dtype === 'float32' ? [i] : []));
  for (const i of wrt) {
    const x = inputs[i];
    if (x?.dtype !== 'float32') throw new Error(`${label}: input ${i} is not a float32 tensor`);
  }

  // analytic: leaves with requiresGrad, backward of Σ f(x)·r
  const leaves = inputs.map((x, i) => (wrt.includes(i) ? x.detach().requireGrad() : x.detach()));
  const ys = outputsOf(enableGrad(() => f(...leaves)));
  const next = rng(opts.seed ?? 1234);
  const rs = ys.map((y) => {
    if (y.dtype !== 'float32') throw new Error(`${label}: output of dtype ${y.dtype} is not differentiable`);
    return Float64Array.from({ length: y.size }, () => 2 * next() - 1);
  });
  const rTensors = ys.map((y, k) => new Tensor(Float32Array.from(rs[k] as Float64Array), y.shape));
  // r is rounded to float32 for the analytic side; use those exact values on the numeric side too
  rs.forEach((r, k) => {
    r.set((rTensors[k] as Tensor).data as Float32Array);
  });
  const only = ys[0] as Tensor;
  if (ys.length === 1) backward(only, rTensors[0]);
  else {
    const loss = enableGrad(() =>
      ys.map((y, k) => sum(y.mul(rTensors[k] as Tensor))).reduce((a, b) => a.add(b)),
    );
    backward(loss);
  }

  const result: GradcheckResult = { analytic: [], numeric: [], toleranceUsed: 0 };
  for (const i of wrt) {
    const x = inputs[i] as Tensor;
    const leaf = leaves[i] as Tensor;
    const analytic = leaf.grad ?? Tensor.zeros(x.shape);
    const numeric = new Float64Array(x.size);
    const base = x.data as Float32Array;
    noGrad(() => {
      for (let j = 0; j < x.size; j++) {
        const evalAt = (v: number): [number, number] => {
          const data = Float32Array.from(base);
          data[j] = v;
          const args = inputs.map((t, k) => (k === i ? new Tensor(data, x.shape) : t.detach()));
          return [data[j] as number, project(outputsOf(f(...args)), rs)];
        };
        const [xp, lp] = evalAt((base[j] as number) + eps);
        const [xm, lm] = evalAt((base[j] as number) - eps);
        numeric[j] = (lp - lm) / (xp - xm);
      }
    });
    const a = analytic.data as Float32Array;
    for (let j = 0; j < x.size; j++) {
      const n = numeric[j] as number;
      const used = Math.abs((a[j] as number) - n) / (tol.atol + tol.rtol * Math.abs(n));
      result.toleranceUsed = Math.max(result.toleranceUsed, Number.isNaN(used) ? Infinity : used);
    }
    assertClose(analytic, { shape: x.shape, data: numeric }, { ...tol, label: `${label}, d/d input ${i}` });
    result.analytic.push(analytic);
    result.numeric.push({ shape: x.shape, data: numeric });
  }
  // GRADCHECK_REPORT=1 prints how much of the tolerance each check used (for calibrating tolerances)
  if (process.env.GRADCHECK_REPORT) console.log(`${label}: ${result.toleranceUsed.toFixed(4)} of tolerance`);
  return result;
}
