// Motion modules inserted in the image UNet (the built-in model): a zero-initialised adapter leaves every output
// bit-identical; a trained-looking (random) one makes frames of a clip depend on each other and never on another
// clip; every block gets its modules (20 temporal attention calls in a 3-block UNet); an adapter that does not fit
// the UNet is refused naming the block.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttentionCall, Controller } from '../../../src/attention/index.js';
import { MotionAdapter, type MotionAdapterConfig } from '../../../src/models/motion-module.js';
import { UNet2DConditionModel } from '../../../src/models/unet2d-condition.js';
import { initParameters } from '../../../src/nn/init.js';
import { BUILTIN_MODEL } from '../../../src/pipelines/builtin-model.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { generateVideo } from '../../../src/pipelines/video.js';
import { Tensor } from '../../../src/tensor/index.js';
import { Generator, randn } from '../../../src/tensor/random.js';
import { motionConfigFor } from '../../../src/train/motion.js';
import { assertClose } from '../../helpers/tolerance.js';

const unet = UNet2DConditionModel.fromPretrained(BUILTIN_MODEL, { subfolder: 'unet' });
const config: MotionAdapterConfig = {
  blockOutChannels: [32, 64, 64],
  layersPerBlock: 1,
  transformerLayers: 1,
  midLayers: 1,
  midTransformerLayers: 1,
  heads: 4,
  normGroups: 8,
  maxSeqLength: 32,
};
const sample = randn([4, 4, 16, 16], 1);
const context = randn([4, 8, 64], 2);
const maxDiff = (a: Tensor, b: Tensor) => a.sub(b).abs().max().data[0] as number;
const frame = (x: Tensor, k: number) => x.slice(0, k, k + 1);

test('motion in the UNet: a zero-initialised adapter changes nothing', () => {
  const adapter = new MotionAdapter(config);
  initParameters(adapter, new Generator(3));
  adapter.zeroOutputs();
  const plain = unet.forward(sample, 500, context);
  const withMotion = unet.forward(sample, 500, context, { motion: { adapter, frames: 4 } });
  assert.deepEqual([...withMotion.data], [...plain.data]);
});

test('motion in the UNet: frames of a clip depend on each other, clips do not', () => {
  const adapter = new MotionAdapter(config);
  initParameters(adapter, new Generator(4));
  const calls: AttentionCall[] = [];
  const spy: Controller = {
    name: 'spy',
    appliesTo: (c) => {
      if (c.kind === 'temporal') calls.push(c);
      return false;
    },
  };
  const ctx = {
    controllers: [spy],
    step: 0,
    numSteps: 1,
    timestep: 500,
    batch: { guidance: [], prompt: [] },
  };
  const out = unet.forward(sample, 500, context, { motion: { adapter, frames: 4 }, ctx });
  assert.equal(calls.length, 20);
  assert.ok(calls.every((c) => c.queryTokens === 4));
  // change frame 3's input: frame 0's output moves with one clip of 4 frames, not with 4 clips of 1 frame
  const changed = sample.add(
    new Tensor(
      Float32Array.from({ length: sample.size }, (_, i) => (i >= 3 * 1024 ? 0.5 : 0)),
      sample.shape,
    ),
  );
  const out2 = unet.forward(changed, 500, context, { motion: { adapter, frames: 4 } });
  assert.ok(maxDiff(frame(out2, 0), frame(out, 0)) > 1e-4);
  const single = unet.forward(sample, 500, context, { motion: { adapter, frames: 1 } });
  const single2 = unet.forward(changed, 500, context, { motion: { adapter, frames: 1 } });
  assert.ok(maxDiff(frame(single2, 0), frame(single, 0)) < 1e-6);
  // two clips of two frames: clip 0 ignores clip 1
  const pairs = unet.forward(sample, 500, context, { motion: { adapter, frames: 2 } });
  const pairs2 = unet.forward(changed, 500, context, { motion: { adapter, frames: 2 } });
  assert.ok(maxDiff(frame(pairs2, 0), frame(pairs, 0)) < 1e-6);
  assert.ok(maxDiff(frame(pairs2, 2), frame(pairs, 2)) > 1e-4);
});

test('motion in the UNet: an adapter that does not fit, or a batch that is not whole clips, is refused', () => {
  const small = new MotionAdapter({ ...config, blockOutChannels: [32, 64, 32] });
  assert.throws(
    () => unet.forward(sample, 500, context, { motion: { adapter: small, frames: 4 } }),
    /motion adapter's down_blocks\.2 has 1 modules of 32 channels; this UNet's block needs 1 of 64/,
  );
  const adapter = new MotionAdapter(config);
  assert.throws(
    () => unet.forward(sample, 500, context, { motion: { adapter, frames: 3 } }),
    /a batch of 4 is not whole clips of 3 frames/,
  );
});

test("video method 'motion': with a zero-initialised adapter it is independent per-frame generation", () => {
  const sd = StableDiffusion.fromPretrained(BUILTIN_MODEL);
  const adapter = new MotionAdapter(motionConfigFor(sd));
  initParameters(adapter, new Generator(5));
  adapter.zeroOutputs();
  const opts = { prompt: 'a red circle', frames: 2, steps: 2, seed: 7, guidanceScale: 5 };
  const motion = generateVideo(sd, { ...opts, method: 'motion', motionAdapter: adapter }).frames;
  const independent = generateVideo(sd, { ...opts, method: 'independent' }).frames;
  assertClose(motion, independent, { atol: 1e-5, rtol: 0 });
  assert.throws(() => generateVideo(sd, { ...opts, method: 'motion' }), /needs a MotionAdapter/);
});
