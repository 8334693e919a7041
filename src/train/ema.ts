// Exponential moving average of the trained parameters (Polyak averaging), kept beside the optimizer and
// exported instead of the raw weights: diffusion models sample better from the averaged weights, which is
// why DDPM, LDM and diffusers' training scripts (`--use_ema`) keep one.
//
//   shadow ← d·shadow + (1 − d)·θ   after every optimizer step, d = min(decay, (1 + n) / (10 + n))
//
// n counts the updates done, so a freshly started average follows the weights closely at first (diffusers'
// EMAModel warm-up) instead of remembering its starting point for ~1/(1 − decay) steps.

import type { Parameter } from '../index.js';

/**
 * An exponential moving average of the trained parameters (Polyak averaging), with diffusers' warm-up of the
 * decay.
 */
export class EMA {
  readonly decay: number;
  /** Updates done so far (saved in checkpoints; drives the warm-up). */
  updates: number;
  readonly shadow = new Map<Parameter, Float32Array>();

  constructor(params: readonly Parameter[], decay: number) {
    if (!(decay > 0 && decay < 1)) throw new Error(`EMA: decay must lie in (0, 1), got ${decay}`);
    this.decay = decay;
    this.updates = 0;
    for (const p of params) this.reset(p);
  }

  /** Restarts one parameter's average at its current value (or at `value`, e.g. from a checkpoint). */
  reset(p: Parameter, value?: Float32Array): void {
    const src = value ?? (p.value.data as Float32Array);
    if (src.length !== p.value.size) {
      throw new Error(`EMA: ${src.length} values for a parameter of ${p.value.size}`);
    }
    this.shadow.set(p, Float32Array.from(src));
  }

  /** The decay the next `update` uses. */
  currentDecay(): number {
    return Math.min(this.decay, (1 + this.updates) / (10 + this.updates));
  }

  /** shadow ← d·shadow + (1 − d)·θ, after an optimizer step. */
  update(): void {
    const d = this.currentDecay();
    for (const [p, s] of this.shadow) {
      const x = p.value.data as Float32Array;
      for (let i = 0; i < s.length; i++) s[i] = d * (s[i] as number) + (1 - d) * (x[i] as number);
    }
    this.updates++;
  }
}
