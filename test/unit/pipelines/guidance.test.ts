// The score-driven guidance path of generate(): off (none given, an empty list, or a guidance that runs its
// conditional pass and returns nothing) is plain generation bit for bit; what a guidance returns becomes the
// step's latents; its conditional pass carries gradients to the latents through the recorded maps.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CrossAttentionRecorder,
  type GuidanceStep,
  type LatentGuidance,
  lossAndGradient,
} from '../../../src/methods/application/score-guidance.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { Generator } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';

const sd = StableDiffusion.fromPretrained(goldenDir());
const base = { prompt: ['a red circle', 'a blue square'], steps: 2, seed: 5, guidanceScale: 3 };

test('guidance off = plain generation, bit for bit (none, [], a guidance that returns undefined)', () => {
  const plain = sd.generate(base).latents.toArray();
  assert.deepEqual(sd.generate({ ...base, guidance: [] }).latents.toArray(), plain);
  let calls = 0;
  const observer: LatentGuidance = {
    name: 'observer',
    guide(step: GuidanceStep) {
      calls++;
      const rec = new CrossAttentionRecorder(() => true);
      step.denoise(step.latents, [rec]);
      assert.ok(rec.maps.length > 0, 'the conditional pass ran the recorder');
      assert.equal(rec.maps[0]?.map.shape[0], 2, 'one row per prompt (conditional rows only)');
      return undefined;
    },
  };
  assert.deepEqual(sd.generate({ ...base, guidance: [observer] }).latents.toArray(), plain);
  assert.equal(calls, 2, 'called once per step');
});

test('the latents a guidance returns are the step’s input: shifting them at step 0 = starting from shifted noise', () => {
  const shift: LatentGuidance = {
    name: 'shift',
    guide: (s) => (s.step === 0 ? s.latents.add(0.5) : undefined),
  };
  const guided = sd.generate({ ...base, guidance: [shift] }).latents.toArray();
  assert.equal(sd.scheduler().initNoiseSigma, 1);
  const side = sd.unet.config.sampleSize;
  const noise = new Generator(base.seed).randn([2, sd.unet.config.inChannels, side, side]);
  const shifted = sd.generate({ ...base, latents: noise.add(0.5) }).latents.toArray();
  assert.deepEqual(guided, shifted);
  assert.notDeepEqual(guided, sd.generate(base).latents.toArray());
});

test('lossAndGradient: the gradient of a map loss reaches the latents and matches a finite difference', () => {
  let checked = false;
  const fd: LatentGuidance = {
    name: 'fd',
    guide(step) {
      if (step.step !== 0) return undefined;
      const rec = new CrossAttentionRecorder(() => true);
      // loss per row: the first recorded layer's probability of text token 1, summed over queries
      const loss = (maps: readonly { map: Tensor }[]) =>
        (maps[0] as { map: Tensor }).map.slice(3, 1, 2).sum({ axes: [1, 2, 3] });
      const { losses, grad } = lossAndGradient(step, step.latents, rec, loss);
      assert.equal(losses.length, 2);
      // directional finite difference along the gradient
      const eps = 1e-2;
      const g = grad.toArray();
      const norm = Math.sqrt(g.reduce((a, v) => a + v * v, 0));
      assert.ok(norm > 0, 'a nonzero gradient');
      const dir = grad.mul(1 / norm);
      const at = (x: Tensor) => lossAndGradient(step, x, rec, loss).losses.reduce((a, v) => a + v, 0);
      const numeric = (at(step.latents.add(dir.mul(eps))) - at(step.latents.sub(dir.mul(eps)))) / (2 * eps);
      assert.ok(Math.abs(numeric - norm) < 0.05 * norm, `finite difference ${numeric} vs |∇| ${norm}`);
      checked = true;
      return undefined;
    },
  };
  sd.generate({ ...base, guidance: [fd] });
  assert.ok(checked);
});
