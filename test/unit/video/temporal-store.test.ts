// Temporal maps in the AttentionStore: a temporal call's rows are the clips' spatial positions, so the store
// keeps them apart from the self / cross entries, as (clips, heads, h·w, F, F). Checked on hand-written maps
// (which rows are kept, the step average, the per-frame-pair and per-position aggregates) and on the built-in
// UNet with a random motion adapter (every temporal layer recorded, its shape, rows that sum to one), and the
// default store still ignores temporal layers.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttentionCall, BatchRoles } from '../../../src/attention/index.js';
import { AttentionStore, framePairMap, temporalHeatMap } from '../../../src/methods/map/attention-store.js';
import { MotionAdapter } from '../../../src/models/motion-module.js';
import { UNet2DConditionModel } from '../../../src/models/unet2d-condition.js';
import { initParameters } from '../../../src/nn/init.js';
import { BUILTIN_MODEL } from '../../../src/pipelines/builtin-model.js';
import { Tensor } from '../../../src/tensor/index.js';
import { Generator, randn } from '../../../src/tensor/random.js';

/** A guided batch of one clip of two frames: uncond f0 f1, cond f0 f1 (two clips in the temporal layer). */
const BATCH: BatchRoles = {
  guidance: ['uncond', 'uncond', 'cond', 'cond'],
  prompt: [0, 0, 0, 0],
  frame: [0, 1, 0, 1],
};

function temporalCall(step: number): AttentionCall {
  return {
    path: 'down_blocks.0.motion_modules.0.transformer_blocks.0.attn1',
    kind: 'temporal',
    place: 'down',
    index: 0,
    step,
    numSteps: 2,
    timestep: 500,
    batch: BATCH,
    size: [1, 2],
    heads: 1,
    headDim: 4,
    queryTokens: 2,
    keyTokens: 2,
  };
}

/** (2 clips · 2 positions, 1 head, 2, 2): row-stochastic maps, position q of clip c = [[a, 1−a], [b, 1−b]]. */
function mapOf(ab: readonly [number, number][]): Tensor {
  return new Tensor(Float32Array.from(ab.flatMap(([a, b]) => [a, 1 - a, b, 1 - b])), [4, 1, 2, 2]);
}

test('AttentionStore (temporal): the conditional clip’s frame × frame maps, per position, averaged over steps', () => {
  const store = new AttentionStore({ kinds: ['temporal'] });
  assert.equal(store.appliesTo(temporalCall(0)), true);
  // rows: uncond clip positions 0, 1; cond clip positions 0, 1
  store.map(
    temporalCall(0),
    mapOf([
      [0.9, 0.9],
      [0.9, 0.9],
      [0.5, 0.25],
      [1, 0],
    ]),
  );
  store.map(
    temporalCall(1),
    mapOf([
      [0.9, 0.9],
      [0.9, 0.9],
      [0.75, 0.25],
      [0, 0.5],
    ]),
  );
  const [m] = store.temporalMaps();
  assert.ok(m);
  assert.deepEqual(m.map.shape, [1, 1, 2, 2, 2]);
  assert.deepEqual([m.steps, m.frames, m.size, m.guidance, m.prompts], [2, 2, [1, 2], ['cond'], [0]]);
  // step mean: position 0 [[0.625, 0.375], [0.25, 0.75]], position 1 [[0.5, 0.5], [0.25, 0.75]]
  assert.deepEqual([...m.map.data], [0.625, 0.375, 0.25, 0.75, 0.5, 0.5, 0.25, 0.75]);
  // per frame pair, the mean over positions (and the one head)
  assert.deepEqual([...framePairMap(m).data], [0.5625, 0.4375, 0.25, 0.75]);
  // where frame 0 attends to frame 1: position 0 0.375, position 1 0.5
  const heat = temporalHeatMap(m, 0, 1);
  assert.deepEqual(heat.shape, [1, 1, 2]);
  assert.deepEqual([...heat.data], [0.375, 0.5]);
  assert.throws(() => temporalHeatMap(m, 0, 2), /frame j must be an integer in \[0, 2\), got 2/);
  // nothing reaches the self / cross entries
  assert.deepEqual(store.maps(), []);
});

test('AttentionStore: by default temporal layers are not recorded; a map of the wrong size is refused', () => {
  assert.equal(new AttentionStore().appliesTo(temporalCall(0)), false);
  const store = new AttentionStore({ kinds: ['temporal'] });
  assert.throws(
    () => store.map(temporalCall(0), new Tensor(new Float32Array(12), [3, 1, 2, 2])),
    /temporal layer .* has a map \[3, 1, 2, 2\] but the batch holds 4 rows of 2 frames at 1×2/,
  );
});

test('AttentionStore (temporal) on the built-in UNet with a random motion adapter: every temporal layer', () => {
  const unet = UNet2DConditionModel.fromPretrained(BUILTIN_MODEL, { subfolder: 'unet' });
  const adapter = new MotionAdapter({
    blockOutChannels: [32, 64, 64],
    layersPerBlock: 1,
    transformerLayers: 1,
    midLayers: 1,
    midTransformerLayers: 1,
    heads: 4,
    normGroups: 8,
    maxSeqLength: 32,
  });
  initParameters(adapter, new Generator(5));
  const store = new AttentionStore({ kinds: ['temporal'], guidance: ['uncond', 'cond'] });
  const ctx = { controllers: [store], step: 0, numSteps: 1, timestep: 500, batch: BATCH };
  unet.forward(randn([4, 4, 16, 16], 1), 500, randn([4, 8, 64], 2), { motion: { adapter, frames: 2 }, ctx });
  const maps = store.temporalMaps();
  assert.equal(maps.length, 20); // 10 modules, two temporal attentions each
  for (const m of maps) {
    const [h, w] = m.size;
    assert.deepEqual(m.map.shape, [2, 4, h * w, 2, 2], m.path);
    assert.deepEqual(m.guidance, ['uncond', 'cond']);
    const sums = m.map.sum({ axes: [4] }).data as Float32Array;
    assert.ok(
      sums.every((s) => Math.abs(s - 1) < 1e-5),
      `${m.path}: rows sum to 1`,
    );
  }
  assert.deepEqual(new Set(maps.map((m) => m.size[0])), new Set([16, 8, 4]));
  assert.deepEqual(store.maps(), []);
});
