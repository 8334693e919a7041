// Attention functions: how softmax(Q·Kᵀ·scale)·V is computed. The registry states each one's constraints.

import { matmul, runOp1, softmax, type Tensor } from '../tensor/index.js';

/**
 * Q, K, V split in heads, the scale and an optional additive bias: what an attention function computes
 * softmax(Q·Kᵀ·scale + bias)·V of.
 */
export interface AttentionInputs {
  /** (batch, heads, Tq, d), (batch, heads, Tk, d), (batch, heads, Tk, dv). */
  q: Tensor;
  k: Tensor;
  v: Tensor;
  scale: number;
  /** Additive bias broadcastable to (batch, heads, Tq, Tk) (e.g. −∞ above the diagonal for causal). */
  bias?: Tensor;
}

/**
 * One way to compute attention (the survey's function level): softmax reference, fused, chunked, sliced,
 * linear, agent, window…
 */
export interface AttentionFunction {
  readonly name: string;
  /** True when the function materialises the probabilities (so `scores` / `map` hooks can run). */
  readonly explicit: boolean;
  /** Returns (batch, heads, Tq, dv). */
  run(a: AttentionInputs): Tensor;
  /**
   * Optional fast entry on packed tensors (batch, T, heads·d), skipping the head split. Used only when
   * no hook needs the split features.
   */
  runPacked?(q: Tensor, k: Tensor, v: Tensor, heads: number, scale: number): Tensor;
}

/** (B, T, H·d) → (B, H, T, d) */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [b, t] = x.shape as [number, number];
  return x.reshape([b, t, heads, -1]).permute([0, 2, 1, 3]);
}

/** (B, H, T, d) → (B, T, H·d) */
export function mergeHeads(x: Tensor): Tensor {
  const [b, h, t, d] = x.shape as [number, number, number, number];
  return x.permute([0, 2, 1, 3]).reshape([b, t, h * d]);
}

/** Q·Kᵀ·scale (+ bias): the logits of the reference path. */
export function attentionScores(a: AttentionInputs): Tensor {
  const s = matmul(a.q, a.k, { transB: true, alpha: a.scale });
  return a.bias ? s.add(a.bias) : s;
}

/** The reference: explicit scores, softmax and probabilities·V (nanoGPT's manual attention). */
export const softmaxAttention: AttentionFunction = {
  name: 'softmax',
  explicit: true,
  run: (a) => softmax(attentionScores(a), -1).matmul(a.v),
};

/**
 * onnxruntime's fused, tiled attention (com.microsoft.MultiHeadAttention): never materialises the
 * (Tq × Tk) map. No gradient: training uses the reference.
 */
export const flashAttention: AttentionFunction = {
  name: 'flash',
  explicit: false,
  run(a) {
    if (a.bias) return softmaxAttention.run(a);
    const [b, h, tq, d] = a.q.shape as [number, number, number, number];
    const pack = (x: Tensor) => x.permute([0, 2, 1, 3]).reshape([b, x.shape[2] as number, -1]);
    const out = this.runPacked?.(pack(a.q), pack(a.k), pack(a.v), h, a.scale) as Tensor;
    return out
      .reshape([b, tq, h, -1])
      .permute([0, 2, 1, 3])
      .reshape([b, h, tq, (a.v.shape[3] as number) ?? d]);
  },
  runPacked(q, k, v, heads, scale) {
    return runOp1('MultiHeadAttention', [q, k, v], {
      domain: 'com.microsoft',
      attrs: { num_heads: heads, scale },
      shape: [q.shape[0] as number, q.shape[1] as number, v.shape[2] as number],
    });
  },
};

/**
 * Attention functions by name, built from a plain list: whoever picks functions by name (the CLI's
 * `--attention`, a benchmark) constructs one with the functions it offers. Nothing registers itself.
 */
export class AttentionFunctions {
  readonly #byName = new Map<string, AttentionFunction>();

  constructor(fns: readonly AttentionFunction[]) {
    for (const fn of fns) {
      if (this.#byName.has(fn.name)) throw new Error(`AttentionFunctions: '${fn.name}' is listed twice`);
      this.#byName.set(fn.name, fn);
    }
  }

  /** The names, in the order of the list. */
  get names(): string[] {
    return [...this.#byName.keys()];
  }

  /** Whether a function of this name is listed. */
  has(name: string): boolean {
    return this.#byName.has(name);
  }

  /** The function of this name; throws naming the known ones when there is none. */
  get(name: string): AttentionFunction {
    const fn = this.#byName.get(name);
    if (!fn) throw new Error(`unknown attention function '${name}'; known: ${this.names.join(', ')}`);
    return fn;
  }
}
