// Euler (Karras et al. 2022): noise levels, init_noise_sigma, scale_model_input, churn, Karras σ, addNoise,
// zero terminal SNR.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EulerDiscreteScheduler, loadScheduler, schedulerFromConfig } from '../../../src/schedulers/index.js';
import { Tensor } from '../../../src/tensor/index.js';
import { Generator } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertMaxAbs, ZERO_SNR_DDIM, zeroSnrAlphaBar } from './helpers.js';

/** σ_max = √((1 − ᾱ_T)/ᾱ_T) of a linear β schedule, in float64 straight from the definition. */
function sigmaMaxLinear(betaStart: number, betaEnd: number, T: number): number {
  let alphaBar = 1;
  for (let i = 0; i < T; i++) alphaBar *= 1 - (betaStart + ((betaEnd - betaStart) * i) / (T - 1));
  return Math.sqrt((1 - alphaBar) / alphaBar);
}

test('Euler: init_noise_sigma is σ_max ("linspace") or √(σ_max² + 1) ("leading")', () => {
  const expected = sigmaMaxLinear(0.0001, 0.02, 1000); // ≈ 157.4
  const s = EulerDiscreteScheduler.fromConfig({});
  s.setTimesteps(8);
  assert.ok(Math.abs(s.initNoiseSigma / expected - 1) < 1e-5, `${s.initNoiseSigma} vs ${expected}`);
  assert.equal(s.sigmas.length, 9);
  assert.equal(s.sigmas[8], 0);
  const leading = EulerDiscreteScheduler.fromConfig({ timestep_spacing: 'leading', steps_offset: 1 });
  leading.setTimesteps(8);
  assert.deepEqual(leading.timesteps, [876, 751, 626, 501, 376, 251, 126, 1]);
  const top = leading.sigmas[0]!;
  assert.ok(Math.abs(leading.initNoiseSigma - Math.sqrt(top * top + 1)) < 1e-4);
});

test('Euler on the SD folder config (a DDIM config, as diffusers from_config does)', () => {
  const s = loadScheduler(goldenDir(), 'euler') as EulerDiscreteScheduler;
  assert.deepEqual([...s.ignoredConfigKeys].sort(), ['clip_sample', 'set_alpha_to_one']);
  s.setTimesteps(10);
  // scaled_linear: σ_max ≈ 14.6 (the familiar SD value)
  assert.ok(Math.abs(s.initNoiseSigma - 14.6146) < 1e-3, `${s.initNoiseSigma}`);
  const x = Tensor.from([2, -4], [1, 2]);
  const sigma = s.sigmas[0]!;
  assertMaxAbs(
    s.scaleModelInput(x, s.timesteps[0]!),
    Tensor.from(
      [2, -4].map((v) => v / Math.sqrt(sigma ** 2 + 1)),
      [1, 2],
    ),
    1e-6,
    'c_in',
  );
  assert.throws(() => s.scaleModelInput(x, 123), /timestep 123 is not one of scheduler.timesteps/);
});

test('Euler step: ε, v_prediction and churn against Algorithm 2 by hand', () => {
  const x = [3, -1];
  const eps = [0.5, -0.25];
  const z = [1, 2];
  const s = EulerDiscreteScheduler.fromConfig({});
  s.setTimesteps(4);
  const [sigma, next] = [s.sigmas[1]!, s.sigmas[2]!];
  const t = s.timesteps[1]!;
  const X = (v: number[]): Tensor => Tensor.from(v, [1, 2]);

  // ε: D = x − σ ε, d = (x − D)/σ = ε, x' = x + (σ_next − σ) ε
  assertMaxAbs(
    s.step(X(eps), t, X(x)).prevSample,
    X(x.map((v, i) => v + (next - sigma) * eps[i]!)),
    1e-5,
    'eps',
  );

  // churn: γ = min(S_churn/N, √2 − 1), σ̂ = σ(1 + γ), x̂ = x + √(σ̂² − σ²) z, x' = x̂ + (σ_next − σ̂) ε
  const gamma = Math.min(0.4 / 4, Math.SQRT2 - 1);
  const sigmaHat = sigma * (1 + gamma);
  const xHat = x.map((v, i) => v + Math.sqrt(sigmaHat ** 2 - sigma ** 2) * z[i]!);
  const churned = s.step(X(eps), t, X(x), { sChurn: 0.4, noise: X(z) }).prevSample;
  assertMaxAbs(churned, X(xHat.map((v, i) => v + (next - sigmaHat) * eps[i]!)), 1e-4, 'churn');
  // outside [S_tmin, S_tmax] no churn
  assertMaxAbs(
    s.step(X(eps), t, X(x), { sChurn: 0.4, sTmax: sigma / 2 }).prevSample,
    s.step(X(eps), t, X(x)).prevSample,
    0,
    'tmax',
  );

  // v: D = x/(σ² + 1) − σ/√(σ² + 1) v (EDM Table 1 with σ_data = 1)
  const vs = EulerDiscreteScheduler.fromConfig({ prediction_type: 'v_prediction' });
  vs.setTimesteps(4);
  const D = x.map((v, i) => v / (sigma ** 2 + 1) - (sigma / Math.sqrt(sigma ** 2 + 1)) * eps[i]!);
  const out = vs.step(X(eps), t, X(x));
  assertMaxAbs(out.predOriginalSample!, X(D), 1e-5, 'v x0');
  assertMaxAbs(
    out.prevSample,
    X(x.map((v, i) => v + ((next - sigma) * (v - D[i]!)) / sigma)),
    1e-4,
    'v prev',
  );
});

test('Euler with Karras σ (eq. 5): end points, σ^{1/7} linear in i, timesteps follow σ', () => {
  const plain = EulerDiscreteScheduler.fromConfig({});
  plain.setTimesteps(6);
  const s = EulerDiscreteScheduler.fromConfig({ use_karras_sigmas: true });
  s.setTimesteps(6);
  const sig = s.sigmas.slice(0, 6);
  assert.ok(
    Math.abs(sig[0]! / plain.sigmas[0]! - 1) < 1e-6 && Math.abs(sig[5]! / plain.sigmas[5]! - 1) < 1e-6,
  );
  const roots = sig.map((v) => v ** (1 / 7));
  for (let i = 1; i < 5; i++)
    assert.ok(Math.abs(roots[i + 1]! - 2 * roots[i]! + roots[i - 1]!) < 1e-5, 'σ^(1/7) linear');
  assert.equal(s.sigmas[6], 0);
  assert.ok(Math.abs(s.timesteps[0]! - 999) < 1e-3 && Math.abs(s.timesteps[5]!) < 1e-3);
  for (let i = 1; i < 6; i++) assert.ok(s.timesteps[i]! < s.timesteps[i - 1]!, 'timesteps descend');
  assert.ok(
    s.timesteps.some((t) => !Number.isInteger(t)),
    'fractional timesteps',
  );
});

test('Euler addNoise: x = x_0 + σ_t ε', () => {
  const s = EulerDiscreteScheduler.fromConfig({});
  s.setTimesteps(4);
  const x0 = Tensor.from([1, 2, 3, 4], [2, 2]);
  const n = Tensor.from([1, -1, 0.5, 2], [2, 2]);
  const [t0, t2] = [s.timesteps[0]!, s.timesteps[2]!];
  const [s0, s2] = [s.sigmas[0]!, s.sigmas[2]!];
  assertMaxAbs(
    s.addNoise(x0, n, [t0, t2]),
    Tensor.from([1 + s0, 2 - s0, 3 + 0.5 * s2, 4 + 2 * s2], [2, 2]),
    1e-4,
    'rows',
  );
});

test('Euler with zero terminal SNR: σ_0 = √((1 − 2⁻²⁴)/2⁻²⁴), the rest √((1 − ᾱ)/ᾱ) of Lin et al.', () => {
  const s = schedulerFromConfig(ZERO_SNR_DDIM, 'euler') as EulerDiscreteScheduler;
  assert.deepEqual([...s.ignoredConfigKeys].sort(), ['clip_sample', 'set_alpha_to_one']);
  s.setTimesteps(10);
  assert.deepEqual(s.timesteps, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
  assert.equal(s.alphasCumprod[999], 2 ** -24);
  // float32 σ against float64 here: relative 1e-6 at σ_0 (one rounding); 1e-5 elsewhere (measured 1.4e-6),
  // where the rescaled ᾱ carries float32's cancellation in √ᾱ_t − √ᾱ_T
  const sigma0 = Math.sqrt((1 - 2 ** -24) / 2 ** -24); // ≈ 4096
  assert.ok(Math.abs(s.sigmas[0]! / sigma0 - 1) < 1e-6, `σ_0 = ${s.sigmas[0]} vs ${sigma0}`);
  const alphaBar = zeroSnrAlphaBar();
  s.timesteps.forEach((t, i) => {
    const expected = Math.sqrt((1 - alphaBar[t]!) / alphaBar[t]!);
    assert.ok(Math.abs(s.sigmas[i]! / expected - 1) < 1e-5, `σ at t = ${t}: ${s.sigmas[i]} vs ${expected}`);
  });
  assert.equal(s.sigmas[10], 0, 'final_sigmas_type "zero"');
  // "trailing": x_T = σ_max · N(0, I), not √(σ_max² + 1) (diffusers' init_noise_sigma)
  assert.equal(s.initNoiseSigma, s.sigmas[0]);
});

test('Euler with zero terminal SNR and v_prediction: an exact-v model is sampled to its x_0 from σ ≈ 4096', () => {
  // The data is one point x0; a model that knows it predicts v = √ᾱ ε − √(1 − ᾱ) x0 with
  // ε = (x_t − √ᾱ x0)/√(1 − ᾱ) from its input x_t. Then D_θ = x0 at every step, so each Euler step is exact
  // (x' − x0 = (σ'/σ)(x − x0)) and the last step, to σ = 0, lands on x0.
  const s = schedulerFromConfig(ZERO_SNR_DDIM, 'euler');
  s.setTimesteps(10);
  const alphaBar = zeroSnrAlphaBar();
  const x0 = Tensor.from([0.5, -1, 2, -0.25, 1.5, 0, -2, 1], [1, 2, 2, 2]);
  let x = new Generator(3).randn(x0.shape).mul(s.initNoiseSigma);
  for (const t of s.timesteps) {
    const xt = s.scaleModelInput(x, t);
    const [a, b] = [Math.sqrt(alphaBar[t]!), Math.sqrt(1 - alphaBar[t]!)];
    const eps = xt.sub(x0.mul(a)).div(b);
    x = s.step(eps.mul(a).sub(x0.mul(b)), t, x).prevSample;
    assert.ok(x.toArray().every(Number.isFinite), `finite after t = ${t}`);
  }
  // float32 steps (measured 7e-7; the last step returns D_θ, so the ~4096 start's resolution does not remain)
  assertMaxAbs(x, x0, 1e-5, 'x_0');
});
