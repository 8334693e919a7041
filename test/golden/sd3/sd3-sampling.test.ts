// Golden parity: a short guided flow-matching run — the tiny SD3 transformer and FlowMatchEulerDiscreteScheduler
// (the fixture folder's scheduler config, shift 3) in diffusers 0.30.0's SD3 denoising loop
// (test/fixtures/tiny-sd3/make_sampling_goldens.py), run by the pipeline's loop `sampleFlow`: 4 steps, classifier-free guidance 5 with the unconditional
// row first, seeded stand-in text states. Latents after every step within 1e-3 (the bound for a guided
// generation); the hooks see each step's joint calls with the guided batch layout.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AttentionCall } from '../../../src/attention/call.js';
import type { Controller } from '../../../src/attention/hooks.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { readConfig } from '../../../src/models/config.js';
import { SD3Transformer2DModel } from '../../../src/models/sd3-transformer.js';
import { sampleFlow } from '../../../src/pipelines/sd3.js';
import { FlowMatchEulerDiscreteScheduler } from '../../../src/schedulers/flow-match-euler.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { assertMaxAbs } from '../../unit/schedulers/helpers.js';

const dir = join(import.meta.dirname, '../../fixtures/tiny-sd3');
const goldens = readSafetensors(join(dir, 'sampling_goldens.safetensors'));
const golden = (key: string): Tensor => {
  const t = goldens.tensors.get(key);
  if (!t) throw new Error(`golden tensor '${key}' not found`);
  return t;
};

test('4 guided flow-matching steps match diffusers 0.30.0 within 1e-3 at every step', (t) => {
  assert.equal(goldens.metadata?.['diffusers'], '0.30.0');
  const model = SD3Transformer2DModel.fromPretrained(dir, { subfolder: 'transformer' });
  const scheduler = FlowMatchEulerDiscreteScheduler.fromConfig(
    readConfig(join(dir, 'scheduler'), 'scheduler_config.json'),
  );
  const seen: AttentionCall[] = [];
  const watcher: Controller = {
    name: 'watch',
    appliesTo(call) {
      seen.push(call);
      return false;
    },
  };
  // the pipeline's loop (src/pipelines/sd3.ts sampleFlow), on the goldens' stand-in text states
  let worst = 0;
  sampleFlow(model, scheduler, {
    latents: golden('init'),
    context: golden('context'),
    pooled: golden('pooled'),
    steps: 4,
    guidanceScale: 5,
    controllers: [watcher],
    onStep: ({ step, latents }) => {
      worst = Math.max(worst, assertMaxAbs(latents, golden(`step${step}.latents`), 1e-3, `step ${step}`));
    },
  });
  t.diagnostic(
    `max abs error over 4 steps ${worst.toExponential(2)} (max |latents| ${golden('step3.latents').abs().max().item().toFixed(2)})`,
  );
  assert.deepEqual(scheduler.timesteps, golden('timesteps').toArray());
  assert.equal(seen.length, 8); // 2 joint layers × 4 steps
  assert.deepEqual(
    seen.map((c) => [c.step, c.timestep, c.batch.guidance]),
    scheduler.timesteps.flatMap((ts, i) => [0, 1].map(() => [i, ts, ['uncond', 'cond']])),
  );
});
