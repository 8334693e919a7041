// AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay, as torch.optim.AdamW.

import { Tensor } from '../tensor/index.js';
import type { Parameter } from './module.js';

/** Options of AdamW: learning rate, β₁ and β₂, ε, weight decay. */
export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/**
 * AdamW (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization"): Adam with decoupled weight
 * decay, as torch.optim.AdamW.
 */
export class AdamW {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  #step = 0;
  readonly #m = new Map<Parameter, Tensor>();
  readonly #v = new Map<Parameter, Tensor>();

  constructor(
    readonly params: Parameter[],
    opts: AdamWOptions = {},
  ) {
    this.lr = opts.lr ?? 1e-3;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 1e-2;
  }

  get stepCount(): number {
    return this.#step;
  }

  /** One update from each parameter's `.grad`; `lr` may be overridden per step (schedules). */
  step(lr = this.lr): void {
    this.#step++;
    const t = this.#step;
    const bc1 = 1 - this.beta1 ** t;
    const bc2 = 1 - this.beta2 ** t;
    // one fused loop per parameter in plain JS: a few flops per element, no kernel launches
    const decay = 1 - lr * this.weightDecay;
    for (const p of this.params) {
      const g = p.value.grad;
      if (!g) continue;
      const gd = g.data as Float32Array;
      const m = Float32Array.from(
        (this.#m.get(p)?.data as Float32Array | undefined) ?? new Float32Array(gd.length),
      );
      const v = Float32Array.from(
        (this.#v.get(p)?.data as Float32Array | undefined) ?? new Float32Array(gd.length),
      );
      const w = Float32Array.from(p.value.data as Float32Array);
      for (let i = 0; i < w.length; i++) {
        const gi = gd[i] as number;
        // m ← β1 m + (1−β1) g ;  v ← β2 v + (1−β2) g²
        const mi = this.beta1 * (m[i] as number) + (1 - this.beta1) * gi;
        const vi = this.beta2 * (v[i] as number) + (1 - this.beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        // θ ← θ − lr·λ·θ − lr · m̂ / (√v̂ + ε)
        w[i] = (w[i] as number) * decay - (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + this.eps);
      }
      this.#m.set(p, new Tensor(m, g.shape));
      this.#v.set(p, new Tensor(v, g.shape));
      p.value = new Tensor(w, p.shape).requireGrad(p.value.requiresGrad);
    }
  }

  /** Clears the gradients of the optimised parameters. */
  zeroGrad(): void {
    for (const p of this.params) p.value.grad = null;
  }

  /** Optimizer state for checkpoints. */
  state(): { step: number; m: Map<Parameter, Tensor>; v: Map<Parameter, Tensor> } {
    return { step: this.#step, m: this.#m, v: this.#v };
  }

  /** Restores the optimizer state from a checkpoint. */
  loadState(s: { step: number; m: Map<Parameter, Tensor>; v: Map<Parameter, Tensor> }): void {
    this.#step = s.step;
    for (const [k, v] of s.m) this.#m.set(k, v);
    for (const [k, v] of s.v) this.#v.set(k, v);
  }
}
