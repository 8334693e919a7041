// Token merging (ToMe) and block caching on MM-DiT blocks (src/models/sd3-blocks.ts), on the tiny SD3 transformer
// of test/fixtures/tiny-sd3 sampled for 3 flow-matching steps: configured to do nothing they give the plain
// model's latents bit for bit; switched on they act where they should — ToMe shortens the image queries of the
// joint attention (text rows untouched), a reused block runs no attention and its branch is the one computed
// before — and change the result measurably.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AttentionCall, TransformerCall } from '../../../src/attention/call.js';
import type { Controller } from '../../../src/attention/hooks.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { BlockCaching } from '../../../src/methods/application/block-caching.js';
import { TokenMerging } from '../../../src/methods/application/token-merging.js';
import { SD3Transformer2DModel } from '../../../src/models/sd3-transformer.js';
import { sampleFlow } from '../../../src/pipelines/sd3.js';
import { FlowMatchEulerDiscreteScheduler } from '../../../src/schedulers/flow-match-euler.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { maxAbsError } from '../schedulers/helpers.js';

const dir = join(import.meta.dirname, '../../fixtures/tiny-sd3');
const goldens = readSafetensors(join(dir, 'goldens.safetensors')).tensors;
const golden = (key: string): Tensor => goldens.get(key) as Tensor;
const model = SD3Transformer2DModel.fromPretrained(dir, { subfolder: 'transformer' });
const layers = model.config.numLayers;

/** 3 unguided Euler steps of the flow from the fixture's sample, with these controllers. */
const sample = (...controllers: Controller[]): Tensor =>
  sampleFlow(model, FlowMatchEulerDiscreteScheduler.fromConfig({}), {
    latents: golden('in.sample'),
    context: golden('in.context'),
    pooled: golden('in.pooled'),
    steps: 3,
    guidanceScale: 1,
    controllers,
  });

/** Records each joint call's step and map shape (B, H, Tq, Tk), reading the whole joint map. */
function recorder(): Controller & { seen: { step: number; shape: number[] }[] } {
  const seen: { step: number; shape: number[] }[] = [];
  return {
    name: 'record',
    seen,
    appliesTo: (c: AttentionCall) => c.kind === 'joint',
    map(c: AttentionCall, p: Tensor) {
      seen.push({ step: c.step, shape: [...p.shape] as number[] });
      return p;
    },
  };
}

const plain = sample();

test('ToMe on DiT blocks: ratio 0 is the plain model; ratio 0.5 merges half the image queries and changes the result', () => {
  const off = new TokenMerging({ ratio: 0, downsampleFrom: 'largest-attention' });
  assert.equal(maxAbsError(sample(off), plain), 0);
  const rec = recorder();
  const on = sample(new TokenMerging({ ratio: 0.5, downsampleFrom: 'largest-attention' }), rec);
  const [n, m] = [12, golden('in.context').shape[1] as number]; // a 4 × 3 patch grid, the text tokens
  const first = rec.seen[0]!.shape;
  // merged image queries, then the text's: keys are merged too (the joint sequence is one)
  const kept = n - Math.floor(n * 0.5);
  assert.deepEqual(first.slice(2), [kept + m, kept + m]);
  assert.equal(rec.seen.length, 3 * layers);
  assert.ok(maxAbsError(on, plain) > 1e-3, `ToMe changed the latents by ${maxAbsError(on, plain)}`);
  assert.deepEqual(on.shape, plain.shape);
});

test('block caching on DiT blocks: threshold 0 is the plain model; reusing every block after step 0 runs no attention there', () => {
  const never = new BlockCaching({ threshold: 0 });
  const calibrated = never.calibrate(() => sample(never));
  assert.equal(maxAbsError(calibrated, plain), 0, 'calibration computes every block');
  assert.equal(maxAbsError(sample(never), plain), 0, 'a plan that reuses nothing');
  assert.deepEqual(never.counts, { computed: 3 * layers, reused: 0 });

  const always = new BlockCaching({ plan: (c: TransformerCall) => c.step > 0 });
  const rec = recorder();
  const branches = new Map<string, Tensor[]>();
  const spy: Controller = {
    name: 'branches',
    transformer(c: TransformerCall, h: Tensor) {
      branches.set(c.path, [...(branches.get(c.path) ?? []), h]);
      return h;
    },
  };
  const cached = sample(always, spy, rec);
  assert.deepEqual(
    rec.seen.map((s) => s.step),
    new Array(layers).fill(0),
    'only step 0 runs the joint attention',
  );
  assert.deepEqual(always.counts, { computed: layers, reused: 2 * layers });
  for (let i = 0; i < layers; i++) {
    const [b0, b1, b2] = branches.get(`transformer_blocks.${i}`)!;
    // the branch packs both streams' updates, image tokens first (the last block has no text output)
    const tokens = 12 + (i === layers - 1 ? 0 : (golden('in.context').shape[1] as number));
    assert.equal(b0!.shape[1], tokens);
    assert.equal(maxAbsError(b1!, b0!), 0, 'step 1 reuses step 0’s branch');
    assert.equal(maxAbsError(b2!, b0!), 0);
  }
  assert.ok(maxAbsError(cached, plain) > 1e-3, `reuse changed the latents by ${maxAbsError(cached, plain)}`);
});

test('block caching on DiT blocks: a reused branch of the wrong shape is refused, naming the block', () => {
  const bad: Controller = {
    name: 'bad',
    reuseTransformer: (c: TransformerCall) => (c.step > 0 ? golden('in.sample') : undefined),
  };
  assert.throws(() => sample(bad), /transformer_blocks\.0: bad reused a branch of shape .* expected \[2, /);
});
