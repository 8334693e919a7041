// Golden parity: FlowMatchEulerDiscreteScheduler against diffusers 0.30.0 itself
// (test/fixtures/tiny-sd3/make_scheduler_goldens.py): the shifted training grid, the timesteps and sigmas of
// 7 steps, the forward process (`scale_noise`) and every Euler step on the stand-in velocity
// v = 0.5 sin(3x + i), for shift 1 and SD3's shift 3. The chain runs free (Δσ ≤ 1, so no error grows).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { FlowMatchEulerDiscreteScheduler } from '../../../src/schedulers/flow-match-euler.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { assertMaxAbs, standInModel } from '../../unit/schedulers/helpers.js';

const goldens = readSafetensors(
  join(import.meta.dirname, '../../fixtures/tiny-sd3/scheduler_goldens.safetensors'),
);
const golden = (key: string): Tensor => {
  const t = goldens.tensors.get(key);
  if (!t) throw new Error(`golden tensor '${key}' not found`);
  return t;
};

test('the goldens come from diffusers 0.30.0', () => {
  assert.equal(goldens.metadata?.['diffusers'], '0.30.0');
});

for (const shift of [1, 3]) {
  const key = `shift${shift}`;
  const build = () => FlowMatchEulerDiscreteScheduler.fromConfig({ shift });
  describe(`FlowMatchEulerDiscreteScheduler, shift ${shift}`, () => {
    test('the training grid before setTimesteps, bit for bit', () => {
      const s = build();
      assert.deepEqual(s.timesteps, golden(`${key}.train_timesteps`).toArray());
      assert.deepEqual(s.sigmas, golden(`${key}.train_sigmas`).toArray());
    });

    test('timesteps and sigmas of 7 steps, bit for bit', () => {
      const s = build();
      s.setTimesteps(7);
      assert.deepEqual(s.timesteps, golden(`${key}.timesteps`).toArray());
      assert.deepEqual(s.sigmas, golden(`${key}.sigmas`).toArray());
    });

    test('scaleNoise (the forward process) within 1e-6', () => {
      const s = build();
      s.setTimesteps(7);
      const x = s.scaleNoise(golden(`${key}.init`), golden('noise'), s.timesteps[2]!);
      assertMaxAbs(x, golden(`${key}.scale_noise`), 1e-6, 'scale_noise');
    });

    test('every step of a free-running chain within 1e-5', (t) => {
      const s = build();
      s.setTimesteps(7);
      let x = golden(`${key}.init`);
      let worst = 0;
      s.timesteps.forEach((ts, i) => {
        assert.equal(s.scaleModelInput(x, ts), x);
        x = s.step(standInModel(x, i), ts, x).prevSample;
        worst = Math.max(worst, assertMaxAbs(x, golden(`${key}.step${i}.prev_sample`), 1e-5, `step ${i}`));
      });
      t.diagnostic(`shift ${shift}: max abs error ${worst.toExponential(2)}`);
    });
  });
}

describe('FlowMatchEulerDiscreteScheduler, bad input', () => {
  test('a config value out of range names the key', () => {
    assert.throws(() => FlowMatchEulerDiscreteScheduler.fromConfig({ shift: 0 }), /"shift" = 0/);
    assert.throws(
      () => FlowMatchEulerDiscreteScheduler.fromConfig({ num_train_timesteps: 1e9 }),
      /num_train_timesteps/,
    );
  });

  test('dynamic shifting needs mu; a timestep not in the schedule is refused; churn is refused', () => {
    const dyn = FlowMatchEulerDiscreteScheduler.fromConfig({ use_dynamic_shifting: true });
    assert.throws(() => dyn.setTimesteps(4), /mu/);
    const s = FlowMatchEulerDiscreteScheduler.fromConfig({});
    s.setTimesteps(4);
    const x = golden('shift1.init');
    assert.throws(() => s.step(x, 123.5, x), /not one of scheduler.timesteps/);
    assert.throws(() => s.step(x, s.timesteps[0]!, x, { sChurn: 1 }), /sChurn/);
    assert.throws(() => s.setTimesteps(0), /numInferenceSteps/);
  });

  test('unknown keys are listed as ignored, the dynamic shift settings are read', () => {
    const s = FlowMatchEulerDiscreteScheduler.fromConfig({ base_shift: 0.5, beta_start: 0.1 });
    assert.deepEqual(s.ignoredConfigKeys, ['beta_start']);
  });
});
