// AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay, as torch.optim.AdamW.

import { noGrad, Tensor } from '../tensor/index.js';
import type { Parameter } from './module.js';

export interface AdamWOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

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
    noGrad(() => {
      for (const p of this.params) {
        const g = p.value.grad;
        if (!g) continue;
        // m ← β1 m + (1−β1) g ;  v ← β2 v + (1−β2) g²
        const m = (this.#m.get(p) ?? Tensor.zeros(g.shape)).mul(this.beta1).add(g.mul(1 - this.beta1));
        const v = (this.#v.get(p) ?? Tensor.zeros(g.shape)).mul(this.beta2).add(g.mul(g).mul(1 - this.beta2));
        this.#m.set(p, m);
        this.#v.set(p, v);
        // θ ← θ − lr·λ·θ − lr · m̂ / (√v̂ + ε)
        const update = m.div(bc1).div(v.div(bc2).sqrt().add(this.eps));
        const decayed = p.value.mul(1 - lr * this.weightDecay);
        p.value = decayed.sub(update.mul(lr)).detach().requireGrad(p.value.requiresGrad);
      }
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.value.grad = null;
  }

  /** Optimizer state for checkpoints. */
  state(): { step: number; m: Map<Parameter, Tensor>; v: Map<Parameter, Tensor> } {
    return { step: this.#step, m: this.#m, v: this.#v };
  }

  loadState(s: { step: number; m: Map<Parameter, Tensor>; v: Map<Parameter, Tensor> }): void {
    this.#step = s.step;
    for (const [k, v] of s.m) this.#m.set(k, v);
    for (const [k, v] of s.v) this.#v.set(k, v);
  }
}
