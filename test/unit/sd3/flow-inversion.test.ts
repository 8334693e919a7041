// Flow inversion (`invertFlow`, src/pipelines/sd3.ts), the rectified-flow counterpart of DDIM inversion, on the
// tiny SD3 transformer of test/fixtures/tiny-sd3: the sampling schedule walked backwards, checked against a
// hand-written Euler loop over σ values worked out by hand, and the steps a controller sees (numbered clean to
// noisy, with the timesteps of the sampling steps they mirror).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AttentionCall } from '../../../src/attention/call.js';
import { plainBatch } from '../../../src/attention/call.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { SD3Transformer2DModel } from '../../../src/models/sd3-transformer.js';
import { invertFlow } from '../../../src/pipelines/sd3.js';
import { FlowMatchEulerDiscreteScheduler } from '../../../src/schedulers/flow-match-euler.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { maxAbsError } from '../schedulers/helpers.js';

const dir = join(import.meta.dirname, '../../fixtures/tiny-sd3');
const goldens = readSafetensors(join(dir, 'goldens.safetensors')).tensors;
const golden = (key: string): Tensor => goldens.get(key) as Tensor;
const model = SD3Transformer2DModel.fromPretrained(dir, { subfolder: 'transformer' });
const [x0, context, pooled] = [golden('in.sample'), golden('in.context'), golden('in.pooled')];

// 3 steps, shift 1, 1000 training steps: σ from 1 to σ_min = 0.001 evenly, then 0
const f32 = Math.fround;
const sigmaMin = f32(0.001);
const sigmas = [1, f32((1000 + 1000 * sigmaMin) / 2 / 1000), sigmaMin, 0];

test('invertFlow = Euler steps from σ = 0 to 1, each with the velocity at the noisier end (by hand)', () => {
  const scheduler = FlowMatchEulerDiscreteScheduler.fromConfig({});
  const out = invertFlow(model, scheduler, { latents: x0, context, pooled, steps: 3 });
  const ctx = (step: number, t: number) => ({
    ctx: { controllers: [], step, numSteps: 3, timestep: t, batch: plainBatch(2) },
  });
  let x = x0;
  for (const [step, k] of [
    [0, 2],
    [1, 1],
    [2, 0],
  ] as const) {
    const t = f32(sigmas[k]! * 1000);
    const v = model.forward(x, t, context, pooled, ctx(step, t));
    x = x.add(v.mul(sigmas[k]! - sigmas[k + 1]!));
  }
  assert.ok(maxAbsError(out, x) < 1e-6, `max |Δ| ${maxAbsError(out, x)}`);
  // the image moved: the inverted latents are not the clean ones
  assert.ok(maxAbsError(out, x0) > 0.1);
});

test('invertFlow: controllers see inversion steps 0…n−1 (clean to noisy) with the mirrored timesteps', () => {
  const seen: [number, number][] = [];
  const rec = {
    name: 'steps',
    appliesTo: (c: AttentionCall) => c.kind === 'joint',
    map(c: AttentionCall, p: Tensor) {
      if (c.index === 0) seen.push([c.step, c.timestep]);
      return p;
    },
  };
  const scheduler = FlowMatchEulerDiscreteScheduler.fromConfig({});
  invertFlow(model, scheduler, { latents: x0, context, pooled, steps: 3, controllers: [rec] });
  assert.deepEqual(
    seen.map(([s]) => s),
    [0, 1, 2],
  );
  const ts = seen.map(([, t]) => t);
  for (const [i, k] of [2, 1, 0].entries()) assert.ok(Math.abs(ts[i]! - sigmas[k]! * 1000) < 1e-3);
  assert.throws(
    () => invertFlow(model, scheduler, { latents: x0, context: context.slice(0, 0, 1), pooled, steps: 3 }),
    /2 latents need 2 rows of context/,
  );
});
