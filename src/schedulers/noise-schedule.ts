// The discrete noise schedule every scheduler shares: β_t, ᾱ_t = ∏_{s≤t} (1 − β_s) (Ho et al. 2020,
// eq. 4: q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I)), the inference timestep spacings of Lin et al. 2023
// ("Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2), and the noise levels
// σ_t = √((1 − ᾱ_t) / ᾱ_t) of the variance-exploding view (Karras et al. 2022).
//
// Arithmetic follows diffusers on PyTorch, where these are float32 tensors: β from a float32 linspace,
// 1 − β and every scalar op rounded to float32, ᾱ a cumulative product accumulated in float64 (PyTorch's
// CPU cumprod) and rounded to float32. Scalar coefficients therefore go through `f32` after each
// operation, which is exact float32 arithmetic (a float64 result of +, −, ×, ÷ or √ on float32 inputs
// rounds to the correctly rounded float32 result). With latents of magnitude ~500 (VE samplers, early
// steps) float32 has ~3e-5 of resolution, so matching diffusers within 1e-4 needs the same roundings.

import { CONFIG_LIMITS, overLimit } from '../models/config.js';
import type { Shape, Tensor } from '../tensor/index.js';

/** Rounds to float32: one float32 operation when applied to the float64 result of one operation. */
export const f32 = Math.fround;

/** How the noise levels β_t are spaced (diffusers' `beta_schedule`). */
export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
/**
 * How the sampling timesteps are picked from the training ones (diffusers' `timestep_spacing`; Lin et al.
 * 2024, Table 2).
 */
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';
/** What the model predicts: the noise ε, v = α·ε − σ·x₀ (Salimans & Ho 2022) or the sample x₀. */
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';

/** Anything that draws standard normal noise, e.g. `Generator` from src/tensor/random.ts. */
export interface NoiseGenerator {
  /** Standard normal noise of this shape. */
  randn(shape: Shape): Tensor;
}

/** torch.linspace(start, end, n, dtype=float32) as the CPU kernel computes it (symmetric from both ends). */
export function linspaceF32(start: number, end: number, n: number): number[] {
  const a = f32(start);
  const b = f32(end);
  if (n === 1) return [a];
  const step = f32(f32(b - a) / (n - 1));
  const half = Math.floor(n / 2);
  return Array.from({ length: n }, (_, i) =>
    i < half ? f32(a + f32(step * i)) : f32(b - f32(step * (n - 1 - i))),
  );
}

/** numpy.linspace(start, stop, n) in float64: start + i·step, the last value exactly `stop`. */
export function linspaceF64(start: number, stop: number, n: number): number[] {
  if (n === 1) return [start];
  const step = (stop - start) / (n - 1);
  return Array.from({ length: n }, (_, i) => (i === n - 1 ? stop : i * step + start));
}

/** numpy.arange(start, stop, step) for floats: ⌈(stop − start)/step⌉ values start + i·(second − first). */
export function arangeF64(start: number, stop: number, step: number): number[] {
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const delta = start + step - start;
  return Array.from({ length: n }, (_, i) => start + i * delta);
}

/** numpy.round: to the nearest integer, halves to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** "squaredcos_cap_v2" (Nichol & Dhariwal 2021, eq. 17): ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), β ≤ 0.999. */
function cosineBetas(n: number): number[] {
  const alphaBar = (t: number): number => Math.cos((((t + 0.008) / 1.008) * Math.PI) / 2) ** 2;
  return Array.from({ length: n }, (_, i) =>
    f32(Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), 0.999)),
  );
}

export interface BetaConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: BetaSchedule;
  trained_betas: readonly number[] | null;
  rescale_betas_zero_snr?: boolean;
}

/** β_1..β_T (index 0 is the first training timestep), float32 values. */
export function makeBetas(c: BetaConfig): number[] {
  // a config built in code, not read: its size is bounded here too, before the betas are allocated
  const T = c.num_train_timesteps;
  if (!Number.isInteger(T) || T < 1)
    throw new Error(`makeBetas: num_train_timesteps must be an integer ≥ 1, got ${T}`);
  if (T > CONFIG_LIMITS.trainTimesteps)
    throw new Error(overLimit('makeBetas', 'num_train_timesteps', T, 'trainTimesteps'));
  let betas: number[];
  if (c.trained_betas) betas = c.trained_betas.map(f32);
  else if (c.beta_schedule === 'linear') betas = linspaceF32(c.beta_start, c.beta_end, c.num_train_timesteps);
  else if (c.beta_schedule === 'scaled_linear') {
    // linear in √β, as latent diffusion trains
    betas = linspaceF32(Math.sqrt(c.beta_start), Math.sqrt(c.beta_end), c.num_train_timesteps).map((b) =>
      f32(b * b),
    );
  } else betas = cosineBetas(c.num_train_timesteps);
  return c.rescale_betas_zero_snr ? rescaleZeroTerminalSnr(betas) : betas;
}

/** ᾱ_t = ∏_{s≤t} (1 − β_s): float64 accumulation, float32 values (PyTorch's CPU cumprod). */
export function cumprodAlphas(betas: readonly number[]): number[] {
  let acc = 1;
  return betas.map((b) => {
    acc *= f32(1 - b);
    return f32(acc);
  });
}

/**
 * ᾱ_t for the σ-parameterised samplers (Euler, DPM-Solver). A zero terminal SNR makes ᾱ_T = 0, so σ_T = ∞
 * and λ_T = −∞; as diffusers does, ᾱ_T becomes 2⁻²⁴ (float16's smallest subnormal): σ_T = √(2²⁴ − 1) ≈ 4096,
 * λ_T ≈ −8.3, and the first step of "trailing" spacing is finite.
 */
export function finiteAlphasCumprod(config: BetaConfig): number[] {
  const alphasCumprod = cumprodAlphas(makeBetas(config));
  if (config.rescale_betas_zero_snr) alphasCumprod[alphasCumprod.length - 1] = 2 ** -24;
  return alphasCumprod;
}

/**
 * Lin et al. 2023, Algorithm 1: shift and scale √ᾱ so that √ᾱ_T = 0 (zero terminal SNR) while √ᾱ_1 is
 * unchanged, then recover β from the ratios ᾱ_t / ᾱ_{t−1}.
 */
export function rescaleZeroTerminalSnr(betas: readonly number[]): number[] {
  const sqrtAlphaBar = cumprodAlphas(betas).map((a) => f32(Math.sqrt(a)));
  const first = sqrtAlphaBar[0]!;
  const last = sqrtAlphaBar[sqrtAlphaBar.length - 1]!;
  const scale = f32(first / f32(first - last));
  const alphaBar = sqrtAlphaBar.map((s) => {
    const shifted = f32(f32(s - last) * scale);
    return f32(shifted * shifted);
  });
  return alphaBar.map((a, i) => f32(1 - (i === 0 ? a : f32(a / alphaBar[i - 1]!))));
}

/**
 * Inference timesteps in sampling order (descending) for DDPM / DDIM / PNDM, as integers:
 *   linspace  round(linspace(0, T − 1, n))
 *   leading   i · ⌊T/n⌋ + steps_offset
 *   trailing  round(T − i · T/n) − 1
 */
export function spacedTimesteps(
  spacing: TimestepSpacing,
  T: number,
  n: number,
  stepsOffset: number,
): number[] {
  if (spacing === 'linspace')
    return linspaceF64(0, T - 1, n)
      .map(roundHalfEven)
      .reverse();
  if (spacing === 'leading') {
    const ratio = Math.floor(T / n);
    return Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + stepsOffset);
  }
  return arangeF64(T, 0, -T / n).map((t) => roundHalfEven(t) - 1);
}

/** σ_t = √((1 − ᾱ_t)/ᾱ_t) for every training timestep, float32 as diffusers computes it. */
export function trainingSigmas(alphasCumprod: readonly number[]): number[] {
  return alphasCumprod.map((a) => f32(Math.sqrt(f32(f32(1 - a) / a))));
}

/** numpy.interp(x, [0, 1, …, n−1], values) in float64. */
export function interpIndex(x: number, values: readonly number[]): number {
  if (x <= 0) return values[0]!;
  if (x >= values.length - 1) return values[values.length - 1]!;
  const j = Math.floor(x);
  if (x === j) return values[j]!;
  const slope = values[j + 1]! - values[j]!;
  return slope * (x - j) + values[j]!;
}

/** Karras et al. 2022, eq. (5): σ_i = (σ_max^{1/ρ} + i/(n−1) · (σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, ρ = 7. */
export function karrasSigmas(sigmaMin: number, sigmaMax: number, n: number): number[] {
  const rho = 7;
  const minInvRho = sigmaMin ** (1 / rho);
  const maxInvRho = sigmaMax ** (1 / rho);
  return linspaceF64(0, 1, n).map((ramp) => (maxInvRho + ramp * (minInvRho - maxInvRho)) ** rho);
}

/**
 * The fractional training timestep whose noise level is σ: linear interpolation of log σ between the two
 * neighbouring training timesteps (k-diffusion's `sigma_to_t`). `logSigmas` ascend with t.
 */
export function sigmaToT(sigma: number, logSigmas: readonly number[]): number {
  const logSigma = Math.log(sigma);
  // low = the last index with logSigmas[i] ≤ log σ (numpy: argmax of the cumulative count), at most T − 2
  let count = 0;
  let best = -1;
  let low = 0;
  for (let i = 0; i < logSigmas.length; i++) {
    if (logSigma - logSigmas[i]! >= 0) count++;
    if (count > best) {
      best = count;
      low = i;
    }
  }
  low = Math.min(low, logSigmas.length - 2);
  const lo = logSigmas[low]!;
  const hi = logSigmas[low + 1]!;
  const w = Math.min(1, Math.max(0, (lo - logSigma) / (lo - hi)));
  return (1 - w) * low + w * (low + 1);
}
