// MasaCtrl: hand-worked features and masks on tiny tensors, then invariances on the tiny-sd-a pipeline: the
// source row is never changed by the target, equal prompts and latents change nothing, and nothing changes
// before startStep.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AttentionCall,
  type BatchRoles,
  guidedBatch,
  type StepState,
  softmaxAttention,
} from '../../../src/attention/index.js';
import {
  MutualSelfAttention,
  MutualSelfAttentionMaskAuto,
} from '../../../src/methods/feature/mutual-self-attention.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { concat, softmax, Tensor } from '../../../src/tensor/index.js';
import { randn } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

function call(over: Partial<AttentionCall> & { batch: BatchRoles }): AttentionCall {
  return {
    path: 'up_blocks.0.attentions.0.transformer_blocks.0.attn1',
    kind: 'self',
    place: 'up',
    index: 3,
    step: 5,
    numSteps: 10,
    timestep: 500,
    size: [1, 2],
    heads: 1,
    headDim: 1,
    queryTokens: 2,
    keyTokens: 2,
    ...over,
  };
}

const rows = (...r: number[][]) => Tensor.from(r.flat(), [r.length, 1, 2, 1]); // (B, H=1, T=2, d=1)

test('features: every query attends to the source K/V of its own guidance branch (hand-worked)', () => {
  const masa = new MutualSelfAttention({ startStep: 4, startLayer: 3 });
  const batch = guidedBatch(2); // rows: uncond source, uncond target, cond source, cond target
  const c = call({ batch });
  assert.equal(masa.appliesTo(c), true);
  assert.equal(masa.appliesTo({ ...c, step: 3 }), false, 'before startStep');
  assert.equal(masa.appliesTo({ ...c, index: 2 }), false, 'below startLayer');
  assert.equal(masa.appliesTo({ ...c, kind: 'cross' }), false, 'cross-attention');

  const q = rows([1, 1], [1, 1], [1, 1], [1, 1]);
  const k = rows([0, Math.log(3)], [5, -5], [0, Math.log(3)], [-5, 5]);
  const v = rows([1, 2], [10, 20], [3, 4], [30, 40]);
  const f = masa.features(c, { q, k, v });
  // scale 1: weights softmax(1·[0, ln 3]) = [1/4, 3/4] on the source's V in each branch
  const out = softmaxAttention.run({ ...f, scale: 1 });
  assertClose(out.reshape([4, 2]), [1.75, 1.75, 1.75, 1.75, 3.75, 3.75, 3.75, 3.75], { atol: 1e-6, rtol: 0 });
  assert.deepEqual(f.q.data, q.data, 'queries stay the rows’ own');
});

test('MaskAuto: foreground queries see only the source’s foreground keys, background the background', () => {
  const masa = new MutualSelfAttentionMaskAuto({ startStep: 0, startLayer: 0, maskResolution: 2 });
  const batch = guidedBatch(2);
  const cross = call({ batch, kind: 'cross', size: [2, 2], queryTokens: 4, keyTokens: 3 });
  assert.equal(masa.appliesTo(cross), true);
  assert.equal(masa.appliesTo({ ...cross, size: [4, 4] }), false, 'maps at other sizes are not read');
  // token 1's map: source (cond row 2) on pixel 0, target (cond row 3) on pixel 3; uncond rows unused
  const tok1 = [
    [0.3, 0.3, 0.3, 0.3],
    [0.3, 0.3, 0.3, 0.3],
    [0.9, 0.05, 0.0, 0.0],
    [0.0, 0.0, 0.05, 0.9],
  ];
  const p = Tensor.from(
    tok1.flatMap((row) => row.flatMap((v) => [0, v, 1 - v])),
    [4, 1, 4, 3],
  );
  masa.beforeStep();
  masa.map(cross, p);
  const self = call({ batch, size: [2, 2], queryTokens: 4, keyTokens: 4, index: 0 });
  const probs = softmax(masa.scores(self, Tensor.zeros([4, 1, 4, 4])), -1);
  const fg = [1, 0, 0, 0];
  const bg = [0, 1 / 3, 1 / 3, 1 / 3];
  const uniform = [0.25, 0.25, 0.25, 0.25];
  // thresholds at 0.1 after min–max: source fg = {0} (0.05/0.9 < 0.1), target fg = {3}
  const target = [bg, bg, bg, fg].flat();
  const source = new Array(4).fill(uniform).flat();
  assertClose(probs, [...source, ...target, ...source, ...target], { atol: 1e-6, rtol: 0 });
});

const sd = StableDiffusion.fromPretrained(goldenDir());
const z = randn([1, 4, 16, 16], 11);
const z2 = randn([1, 4, 16, 16], 12);
const steps = 4;

function run(prompt: string[], latents: Tensor, controllers: MutualSelfAttention[] = []) {
  const trace: Tensor[] = [];
  const { latents: out } = sd.generate({
    prompt,
    latents,
    steps,
    guidanceScale: 7.5,
    scheduler: 'ddim',
    controllers,
    onStep: (e) => trace.push(e.latents),
  });
  return { out, trace };
}

const row = (t: Tensor, i: number) => t.slice(0, i, i + 1);

test('equal prompts and latents: the target is exactly the source, as without MasaCtrl', () => {
  const prompts = ['a red circle', 'a red circle'];
  const masa = run(prompts, concat([z, z], 0), [new MutualSelfAttention({ startStep: 0, startLayer: 0 })]);
  assert.deepEqual(row(masa.out, 1).data, row(masa.out, 0).data);
  assertClose(masa.out, run(prompts, concat([z, z], 0)).out, { atol: 1e-5, rtol: 0 });
});

test('the source is never changed by the target; the target is, from startStep on only', () => {
  const prompts = ['a red circle', 'a blue square'];
  const controller = new MutualSelfAttention({ startStep: 2, startLayer: 3 });
  const masa = run(prompts, concat([z, z2], 0), [controller]);
  const plain = run(prompts, concat([z, z2], 0));
  const alone = run(['a red circle'], z);
  assertClose(row(masa.out, 0), alone.out, { atol: 1e-5, rtol: 0 });
  for (const s of [0, 1]) {
    assert.deepEqual(masa.trace[s]?.data, plain.trace[s]?.data, `step ${s} < startStep changed`);
  }
  const moved = row(masa.trace[2] as Tensor, 1)
    .sub(row(plain.trace[2] as Tensor, 1))
    .abs()
    .max()
    .item();
  assert.ok(moved > 1e-4, `the target did not change at startStep (max |Δ| ${moved})`);
});

test('MaskAuto on the pipeline keeps the source and runs; wrong layer or resolution choices are refused', () => {
  const prompts = ['a red circle', 'a blue square'];
  const mask = new MutualSelfAttentionMaskAuto({ startStep: 1, startLayer: 3, maskResolution: 8 });
  const masked = run(prompts, concat([z, z2], 0), [mask]);
  assert.ok(masked.out.data.every(Number.isFinite));
  assertClose(row(masked.out, 0), run(['a red circle'], z).out, { atol: 1e-5, rtol: 0 });
  const unmasked = run(prompts, concat([z, z2], 0), [
    new MutualSelfAttention({ startStep: 1, startLayer: 3 }),
  ]);
  const moved = row(masked.out, 1).sub(row(unmasked.out, 1)).abs().max().item();
  assert.ok(moved > 1e-5, `the masks changed nothing (max |Δ| ${moved})`);

  const step0 = { step: 0, numSteps: 2, timestep: 1, batch: guidedBatch(2), latents: z } as StepState;
  assert.throws(
    () => run(prompts, concat([z, z2], 0), [new MutualSelfAttention()]),
    /no self-attention layer has index ≥ startLayer 10; this model's are 0 down_blocks\.1\.attentions\.0/,
  );
  const wrongRes = new MutualSelfAttentionMaskAuto({ startLayer: 3, maskResolution: 16 });
  assert.throws(
    () => run(prompts, concat([z, z2], 0), [wrongRes]),
    /no cross-attention layer at 16×16; set maskResolution to one of 8$/,
  );
  assert.doesNotThrow(() => mask.afterStep(step0));
  // a start past the last step would never act: refused after the first step, and a negative one at once
  assert.throws(
    () => mask.afterStep({ ...step0, numSteps: 1 }),
    /startStep 1 is past the last of the 1 denoising/,
  );
  assert.throws(() => new MutualSelfAttention({ startStep: -1 }), /startStep must be an integer ≥ 0, got -1/);
});
