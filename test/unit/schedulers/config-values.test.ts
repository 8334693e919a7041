// Scheduler config values checked when the scheduler is built (issue 25 items 5 and 7): sizes against a stated
// limit before the betas are allocated, ranges with their meaning, messages naming the key (and the file when
// one was read) with values quoted in a bounded form.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CONFIG_LIMITS } from '../../../src/models/config.js';
import { componentConfig } from '../../../src/pipelines/load.js';
import {
  loadScheduler,
  parseSchedulerConfig,
  SCHEDULER_NAMES,
  schedulerFromConfig,
} from '../../../src/schedulers/index.js';
import { makeBetas } from '../../../src/schedulers/noise-schedule.js';

function refused(config: Record<string, unknown>, re: RegExp, names = SCHEDULER_NAMES): void {
  for (const name of names) {
    const t0 = performance.now();
    assert.throws(
      () => schedulerFromConfig({ skip_prk_steps: true, ...config }, name),
      (e: Error) => {
        assert.equal(e.constructor, Error, e.message);
        assert.match(e.message, re, `${name}: ${e.message}`);
        assert.ok(e.message.length < 400, e.message);
        return true;
      },
      `${name} ${Object.keys(config).join(', ')}`,
    );
    assert.ok(performance.now() - t0 < 200, `${name}: ${performance.now() - t0} ms`);
  }
}

test('num_train_timesteps over the limit is refused before the betas are allocated (issue 25 item 5)', () => {
  assert.equal(CONFIG_LIMITS.trainTimesteps, 100_000);
  refused(
    { num_train_timesteps: 1e8 },
    /"num_train_timesteps" = 100000000 is over attnkit's limit of 100000/,
  );
  refused({ num_train_timesteps: 1e300 }, /"num_train_timesteps" = 1e\+300 is over attnkit's limit/);
  refused({ num_train_timesteps: 0 }, /"num_train_timesteps"/);
  assert.throws(
    () =>
      makeBetas({
        num_train_timesteps: 1e300,
        beta_start: 0.0001,
        beta_end: 0.02,
        beta_schedule: 'linear',
        trained_betas: null,
      }),
    /num_train_timesteps = 1e\+300 is over attnkit's limit of 100000/,
  );
  // the largest allowed builds quickly
  const t0 = performance.now();
  schedulerFromConfig({ num_train_timesteps: 100_000 }, 'ddim');
  assert.ok(performance.now() - t0 < 2000);
});

test('beta ranges, offsets and clip ranges are checked with their meaning (issue 25 item 7)', () => {
  refused({ beta_end: 2 }, /"beta_end" = 2 must be a number in \(0, 1\)/);
  refused({ beta_end: 1 }, /"beta_end"/);
  refused({ beta_start: 0 }, /"beta_start" = 0 must be a number in \(0, 1\)/);
  refused({ beta_start: -0.001 }, /"beta_start"/);
  refused({ beta_start: 0.03, beta_end: 0.02 }, /"beta_start" = 0.03 must not exceed "beta_end" = 0.02/);
  refused({ beta_start: 0.03, beta_end: 0.02, beta_schedule: 'scaled_linear' }, /"beta_start"/);
  refused({ beta_end: Number.POSITIVE_INFINITY }, /"beta_end"/);
  refused({ steps_offset: 1000 }, /"steps_offset" = 1000 must be less than num_train_timesteps \(1000\)/);
  refused({ steps_offset: -1 }, /"steps_offset"/);
  refused({ num_train_timesteps: 3, trained_betas: [0.1, 1.5, 0.2] }, /"trained_betas"\[1\] = 1.5 must be/);
  refused({ num_train_timesteps: 2, trained_betas: [0.1, -0.2] }, /"trained_betas"\[1\] = -0.2/);
  refused({ clip_sample_range: 0 }, /"clip_sample_range" = 0 must be a number > 0/, ['ddim', 'ddpm']);
  // the cosine schedule does not read beta_start / beta_end: values there are left alone, as diffusers does
  schedulerFromConfig({ beta_schedule: 'squaredcos_cap_v2', beta_start: 0.5, beta_end: 0.1 }, 'ddpm');
  // a constant schedule is valid
  schedulerFromConfig({ beta_start: 0.01, beta_end: 0.01 }, 'ddim');
});

test('quoted values are bounded; deep JSON is refused by depth, not by a stack overflow', () => {
  refused({ beta_schedule: 'x'.repeat(20_000) }, /"beta_schedule" = "xxx/);
  let deep: unknown = 1;
  for (let i = 0; i < 20_000; i++) deep = [deep];
  refused({ num_train_timesteps: deep }, /"num_train_timesteps" must be/);
  const text = `{"a": ${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
  assert.throws(
    () => parseSchedulerConfig(text, 'x/scheduler_config.json'),
    (e: Error) => /x\/scheduler_config\.json: JSON nested more than 32 levels/.test(e.message),
  );
  assert.throws(
    () => schedulerFromConfig({ _class_name: 'y'.repeat(10_000) }),
    (e: Error) => e.message.length < 600,
  );
});

test('a model folder names its scheduler_config.json in every refusal; loadScheduler too', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-sched-values-'));
  mkdirSync(join(dir, 'scheduler'));
  const file = join(dir, 'scheduler', 'scheduler_config.json');
  writeFileSync(file, JSON.stringify({ _class_name: 'DDIMScheduler', beta_end: 2 }));
  const named = (e: Error) => e.message.startsWith(`${file}: DDIMScheduler config: "beta_end" = 2`);
  assert.throws(() => loadScheduler(dir), named);
  assert.throws(() => componentConfig(dir, 'scheduler', 'scheduler_config.json'), named);
});

test('a zero-terminal-SNR model folder without prediction_type is refused at load, saying why', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-sched-vpred-'));
  mkdirSync(join(dir, 'scheduler'));
  const file = join(dir, 'scheduler', 'scheduler_config.json');
  const zeroSnr = {
    _class_name: 'DDIMScheduler',
    beta_schedule: 'scaled_linear',
    beta_start: 0.00085,
    beta_end: 0.012,
    clip_sample: false,
    set_alpha_to_one: false,
    rescale_betas_zero_snr: true,
    timestep_spacing: 'trailing',
    steps_offset: 0,
  };
  writeFileSync(file, JSON.stringify(zeroSnr));
  assert.throws(
    () => componentConfig(dir, 'scheduler', 'scheduler_config.json'),
    (e: Error) =>
      e.message.startsWith(file) &&
      /"prediction_type" is missing.*epsilon.*"rescale_betas_zero_snr" is true.*v_prediction/.test(e.message),
  );
  writeFileSync(file, JSON.stringify({ ...zeroSnr, prediction_type: 'epsilon' }));
  assert.throws(
    () => componentConfig(dir, 'scheduler', 'scheduler_config.json'),
    /"prediction_type" = "epsilon"/,
  );
  writeFileSync(file, JSON.stringify({ ...zeroSnr, prediction_type: 'v_prediction' }));
  assert.equal(componentConfig(dir, 'scheduler', 'scheduler_config.json')['prediction_type'], 'v_prediction');
  // Python's -Infinity in a DPM-Solver config is read as diffusers writes it
  writeFileSync(file, '{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity}');
  assert.equal(
    componentConfig(dir, 'scheduler', 'scheduler_config.json')['lambda_min_clipped'],
    Number.NEGATIVE_INFINITY,
  );
  // a class attnkit does not implement still loads (a scheduler may be named later); its shared keys are checked
  writeFileSync(file, JSON.stringify({ _class_name: 'LMSDiscreteScheduler', beta_end: 0.012 }));
  componentConfig(dir, 'scheduler', 'scheduler_config.json');
  writeFileSync(file, JSON.stringify({ _class_name: 'LMSDiscreteScheduler', beta_end: 2 }));
  assert.throws(() => componentConfig(dir, 'scheduler', 'scheduler_config.json'), /"beta_end" = 2/);
});
