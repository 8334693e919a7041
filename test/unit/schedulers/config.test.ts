// Building schedulers from diffusers configs: by `_class_name` or by name, overrides, ignored keys,
// unsupported values (errors naming the key and value), Python's non-finite JSON numbers.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  DDIMScheduler,
  DDPMScheduler,
  DPMSolverMultistepScheduler,
  EulerDiscreteScheduler,
  loadScheduler,
  PNDMScheduler,
  parseSchedulerConfig,
  SCHEDULER_NAMES,
  schedulerFromConfig,
} from '../../../src/schedulers/index.js';

const SD = {
  _class_name: 'PNDMScheduler',
  _diffusers_version: '0.6.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
  clip_sample: false,
};

test('schedulerFromConfig picks the class by _class_name, or by name on the same config', () => {
  assert.ok(schedulerFromConfig(SD) instanceof PNDMScheduler);
  const classes = {
    ddim: DDIMScheduler,
    ddpm: DDPMScheduler,
    euler: EulerDiscreteScheduler,
    dpmpp2m: DPMSolverMultistepScheduler,
    pndm: PNDMScheduler,
  };
  for (const name of SCHEDULER_NAMES) {
    const s = schedulerFromConfig(SD, name);
    assert.ok(s instanceof classes[name], name);
    assert.equal(s.name, name);
    s.setTimesteps(10);
    assert.ok(s.timesteps.length >= 10);
    // every one reads the same β: ᾱ_999 of the SD schedule ≈ 0.00466
    assert.ok(Math.abs(s.alphasCumprod[999]! - 0.004660095) < 1e-8, name);
  }
  assert.ok(
    schedulerFromConfig({ ...SD, _class_name: 'EulerDiscreteScheduler' }) instanceof EulerDiscreteScheduler,
  );
});

test('keys of other schedulers are ignored and listed; bookkeeping keys are not listed', () => {
  assert.deepEqual(schedulerFromConfig(SD).ignoredConfigKeys, ['clip_sample']);
  assert.deepEqual([...schedulerFromConfig(SD, 'ddim').ignoredConfigKeys], ['skip_prk_steps']);
  assert.deepEqual([...schedulerFromConfig(SD, 'euler').ignoredConfigKeys].sort(), [
    'clip_sample',
    'set_alpha_to_one',
    'skip_prk_steps',
  ]);
});

test('overrides replace config keys (from_config keyword arguments)', () => {
  const s = schedulerFromConfig(SD, 'ddim', { timestep_spacing: 'trailing', steps_offset: 0 });
  s.setTimesteps(4);
  assert.deepEqual(s.timesteps, [999, 749, 499, 249]);
  const p = schedulerFromConfig({}, 'pndm', { skip_prk_steps: true });
  assert.ok(p instanceof PNDMScheduler);
});

test('unsupported values are errors naming the scheduler, key and value', () => {
  const cases: [Record<string, unknown>, string | undefined, RegExp][] = [
    [
      { beta_schedule: 'sigmoid' },
      'ddpm',
      /DDPMScheduler config: "beta_schedule" = "sigmoid" is not supported/,
    ],
    [
      { thresholding: true },
      'ddim',
      /"thresholding" = true is not supported by attnkit \(supported: false\)/,
    ],
    [{ variance_type: 'learned_range' }, 'ddpm', /"variance_type" = "learned_range"/],
    [{ algorithm_type: 'sde-dpmsolver++' }, 'dpmpp2m', /"algorithm_type" = "sde-dpmsolver\+\+"/],
    [{ solver_order: 3 }, 'dpmpp2m', /"solver_order" = 3 is not supported by attnkit \(supported: 1, 2\)/],
    [{ final_sigmas_type: 'zero', variance_type: 'learned' }, 'dpmpp2m', /"variance_type" = "learned"/],
    [{ use_exponential_sigmas: true }, 'euler', /"use_exponential_sigmas" = true/],
    [{ interpolation_type: 'log_linear' }, 'euler', /"interpolation_type" = "log_linear"/],
    [{ rescale_betas_zero_snr: true }, 'pndm', /"rescale_betas_zero_snr" = true/],
    [{ timestep_spacing: 'karras' }, 'ddim', /"timestep_spacing" = "karras" is not supported/],
    [{ num_train_timesteps: 'many' }, 'ddim', /"num_train_timesteps" must be an integer ≥ 1, got "many"/],
    [{ trained_betas: [0.1, 0.2] }, 'ddim', /"trained_betas" has 2 values but num_train_timesteps is 1000/],
    [
      { _class_name: 'LMSDiscreteScheduler' },
      undefined,
      /"_class_name" = "LMSDiscreteScheduler" is not supported/,
    ],
  ];
  for (const [config, name, message] of cases) {
    assert.throws(() => schedulerFromConfig(config, name as never), message, JSON.stringify(config));
  }
  assert.throws(() => schedulerFromConfig({}, 'lms' as never), /unknown scheduler 'lms'/);
  assert.throws(
    () => schedulerFromConfig({}, 'ddim').setTimesteps(1001),
    /numInferenceSteps must be an integer in \[1, 1000\]/,
  );
});

test('supported variants build: trained_betas, cosine, zero terminal SNR, Karras, v_prediction', () => {
  const betas = Array.from({ length: 10 }, (_, i) => 0.01 * (i + 1));
  const trained = schedulerFromConfig({ num_train_timesteps: 10, trained_betas: betas }, 'ddim');
  assert.ok(Math.abs(trained.alphasCumprod[1]! - 0.99 * 0.98) < 1e-7);
  const cosine = schedulerFromConfig({ beta_schedule: 'squaredcos_cap_v2' }, 'ddpm');
  // Nichol & Dhariwal: ᾱ_t ≈ cos²((t/T + s)/(1 + s) · π/2) / cos²(s/(1 + s) · π/2) away from the 0.999 cap
  const f = (t: number): number => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  assert.ok(Math.abs(cosine.alphasCumprod[499]! - f(0.5) / f(0)) < 1e-5);
  const zsnr = schedulerFromConfig({ rescale_betas_zero_snr: true, prediction_type: 'v_prediction' }, 'ddim');
  assert.ok(Math.abs(zsnr.alphasCumprod[999]!) < 1e-10, 'zero terminal SNR: ᾱ_T = 0');
  assert.ok(Math.abs(zsnr.alphasCumprod[0]! - (1 - 0.0001)) < 1e-6, 'ᾱ_1 unchanged');
});

test('parseSchedulerConfig reads Python JSON with -Infinity / NaN, leaving strings alone', () => {
  const cfg = parseSchedulerConfig(
    '{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity, "x": [NaN, Infinity],' +
      ' "note": "Infinity, -Infinity"}',
  );
  assert.equal(cfg['lambda_min_clipped'], Number.NEGATIVE_INFINITY);
  assert.deepEqual(cfg['x'], [Number.NaN, Number.POSITIVE_INFINITY]);
  assert.equal(cfg['note'], 'Infinity, -Infinity');
  assert.ok(schedulerFromConfig(cfg) instanceof DPMSolverMultistepScheduler);
  assert.throws(() => parseSchedulerConfig('{"a": }', 'x.json'), /x.json is not valid JSON/);
});

test('loadScheduler reads <dir>/scheduler/scheduler_config.json or <dir>/scheduler_config.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-sched-'));
  writeFileSync(join(dir, 'scheduler_config.json'), JSON.stringify({ ...SD, _class_name: 'DDPMScheduler' }));
  assert.ok(loadScheduler(dir) instanceof DDPMScheduler);
  assert.ok(loadScheduler(dir, 'dpmpp2m') instanceof DPMSolverMultistepScheduler);
  assert.throws(() => loadScheduler(join(dir, 'missing')), /no scheduler config in/);
});
