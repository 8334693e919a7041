// Shared pieces of the scheduler tests: the goldens' stand-in model and a max-abs-error check.

import assert from 'node:assert/strict';
import type { Tensor } from '../../../src/tensor/index.js';

/** The goldens' stand-in model output at step i: ε = 0.5 · sin(3x + i), elementwise on the current sample. */
export function standInModel(x: Tensor, i: number): Tensor {
  return x.mul(3).add(i).sin().mul(0.5);
}

/** max |a − b| over all elements; shapes must match. */
export function maxAbsError(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape, `shapes differ: [${a.shape}] vs [${b.shape}]`);
  let worst = 0;
  for (let i = 0; i < a.size; i++) {
    const d = Math.abs((a.data[i] as number) - (b.data[i] as number));
    if (!(d <= worst)) worst = d; // NaN propagates as the worst error
  }
  return worst;
}

export function assertMaxAbs(a: Tensor, b: Tensor, atol: number, label: string): number {
  const err = maxAbsError(a, b);
  assert.ok(err <= atol, `${label}: max abs error ${err} > ${atol}`);
  return err;
}

/**
 * ᾱ_t of a scaled_linear schedule (β linear in √β) rescaled to zero terminal SNR, in float64 straight from
 * Lin et al. 2024, Algorithm 1: √ᾱ shifted so that its last value is 0, then scaled so that its first value
 * is unchanged. The last entry is exactly 0.
 */
export function zeroSnrAlphaBarByHand(betaStart: number, betaEnd: number, T: number): number[] {
  const [a, b] = [Math.sqrt(betaStart), Math.sqrt(betaEnd)];
  let alphaBar = 1;
  const root = Array.from({ length: T }, (_, i) => {
    alphaBar *= 1 - (a + ((b - a) * i) / (T - 1)) ** 2;
    return Math.sqrt(alphaBar);
  });
  const [first, last] = [root[0]!, root[T - 1]!];
  return root.map((r) => ((r - last) * (first / (first - last))) ** 2);
}

/** A zero-terminal-SNR v-prediction DDIM config on SD's schedule, as a trained zero-SNR run exports it. */
export const ZERO_SNR_DDIM = {
  _class_name: 'DDIMScheduler',
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  beta_end: 0.012,
  clip_sample: false,
  set_alpha_to_one: false,
  prediction_type: 'v_prediction',
  rescale_betas_zero_snr: true,
  timestep_spacing: 'trailing',
  steps_offset: 0,
};

/**
 * ZERO_SNR_DDIM's ᾱ by hand (Lin et al.'s rescaling), with ᾱ_T = 0 replaced by 2⁻²⁴ as diffusers' Euler and
 * DPM-Solver do (σ_T and λ_T finite).
 */
export function zeroSnrAlphaBar(): number[] {
  const alphaBar = zeroSnrAlphaBarByHand(0.00085, 0.012, 1000);
  alphaBar[999] = 2 ** -24;
  return alphaBar;
}
