// The bench's and generate's methods set up for the DiT (src/cli/bench-dit.ts, generate-dit.ts): ToMe counts
// downsampling from the largest attention (a DiT has no UNet input ResNet), keeping its other settings; the
// linear functions act on the joint calls (the UNet rows restrict them to self-attention, which a DiT's calls
// never are) and change a joint call's output, while flash leaves the tiny SD3 transformer as it is.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { plainBatch } from '../../../src/attention/call.js';
import type { Controller } from '../../../src/attention/hooks.js';
import { ditControllers } from '../../../src/cli/bench-dit.js';
import { forDiT } from '../../../src/cli/generate-dit.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { TokenMerging } from '../../../src/methods/application/token-merging.js';
import { SD3Transformer2DModel } from '../../../src/models/sd3-transformer.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { maxAbsError } from '../schedulers/helpers.js';

const dir = join(import.meta.dirname, '../../fixtures/tiny-sd3');
const goldens = readSafetensors(join(dir, 'goldens.safetensors')).tensors;
const golden = (key: string): Tensor => goldens.get(key) as Tensor;
const model = SD3Transformer2DModel.fromPretrained(dir, { subfolder: 'transformer' });

const run = (controllers: readonly Controller[]): Tensor =>
  model.forward(golden('in.sample'), 500, golden('in.context'), golden('in.pooled'), {
    ctx: { controllers, step: 0, numSteps: 1, timestep: 500, batch: plainBatch(2) },
  });

test('forDiT: ToMe counts from the largest attention, other settings kept; other controllers unchanged', () => {
  const unet = new TokenMerging({ ratio: 0.3, sx: 1, seed: 7, mergeMlp: true });
  const dit = forDiT(unet) as TokenMerging;
  assert.ok(dit instanceof TokenMerging && dit !== unet);
  assert.equal(dit.downsampleFrom, 'largest-attention');
  assert.deepEqual(
    [dit.ratio, dit.sx, dit.sy, dit.seed, dit.useRand, dit.maxDownsample, dit.branches],
    [0.3, 1, 2, 7, true, 1, ['attn1', 'ff']],
  );
  const other: Controller = { name: 'x' };
  assert.equal(forDiT(other), other);
  // the UNet's ToMe refuses a model without its input ResNet; set up for the DiT it runs
  assert.throws(() => run([unet]), /no UNet input size seen/);
  assert.ok(maxAbsError(run([dit]), run([])) > 1e-4);
});

test('bench on the DiT: linear attention acts on the joint calls; flash is the plain model', () => {
  const plain = run([]);
  assert.equal(maxAbsError(run(ditControllers('flash')), plain), 0);
  const linear = run(ditControllers('linear-elu'));
  assert.ok(maxAbsError(linear, plain) > 1e-3, 'linear attention replaced the joint attention');
});
