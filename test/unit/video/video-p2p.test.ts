// Video-P2P's word swap on a clip: the frame-by-frame editor against hand-worked rows (the target clip's frame k
// takes the source clip's frame k, nothing else moves), the motion warp of several clips in one batch against
// hand-worked latents, and editVideo on the tiny-sd-a model: its source clip is the clip generateVideo makes
// alone, and with no attention control its edited clip is the target prompt's clip made alone.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttentionCall, BatchRoles } from '../../../src/attention/index.js';
import { latentFrames, translateFrames } from '../../../src/methods/feature/cross-frame-attention.js';
import { AttentionReplace } from '../../../src/methods/map/attention-replace.js';
import { VideoP2P } from '../../../src/methods/map/video-p2p.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { editVideo, generateVideo } from '../../../src/pipelines/video.js';
import { Tensor } from '../../../src/tensor/index.js';
import { randn } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

const sd = StableDiffusion.fromPretrained(goldenDir());
const N = sd.tokenizer.modelMaxLength;
const row = (x: Tensor, r: number) => x.slice(0, r, r + 1);
const same = { atol: 0, rtol: 0 };

/** Two clips (source, target) of two frames, guided: uncond s0 s1 t0 t1, cond s0 s1 t0 t1. */
const CLIPS: BatchRoles = {
  guidance: ['uncond', 'uncond', 'uncond', 'uncond', 'cond', 'cond', 'cond', 'cond'],
  prompt: [0, 0, 1, 1, 0, 0, 1, 1],
  frame: [0, 1, 0, 1, 0, 1, 0, 1],
};

function callOf(kind: 'self' | 'cross', batch: BatchRoles): AttentionCall {
  return {
    path: `down_blocks.0.attentions.0.transformer_blocks.0.attn${kind === 'self' ? 1 : 2}`,
    kind,
    place: 'down',
    index: 0,
    step: 0,
    numSteps: 10,
    timestep: 999,
    batch,
    size: [1, 3],
    heads: 2,
    headDim: 4,
    queryTokens: 3,
    keyTokens: kind === 'self' ? 3 : N,
  };
}

test('VideoP2P: the target clip’s frame k takes the source clip’s frame k (cond rows), every other row stays', () => {
  const prompts = ['a red circle', 'a blue circle'];
  const editor = new AttentionReplace({
    tokenizer: sd.tokenizer,
    prompts,
    crossReplaceSteps: 0.8,
    selfReplaceSteps: 0.4,
  });
  // a one-word swap of one token each: the mapper is the identity, so the swapped map is the source's
  assert.deepEqual(editor.mappers[0]!.toArray(), new Tensor(eye(N), [N, N]).toArray());
  const v = new VideoP2P(editor);
  for (const kind of ['cross', 'self'] as const) {
    const call = callOf(kind, CLIPS);
    assert.equal(v.appliesTo(call), true, kind);
    const p = randn([8, 2, 3, kind === 'self' ? 3 : N], 7).softmax(-1);
    const out = v.map(call, p);
    const expected = [0, 1, 2, 3, 4, 5, 4, 5]; // cond t0 ← cond s0, cond t1 ← cond s1
    expected.forEach((from, r) => {
      assertClose(row(out, r), row(p, from), { ...same, label: `${kind} row ${r}` });
    });
  }
  // after the self-replace steps (0.4 of 10) self-attention is left alone
  assert.equal(v.appliesTo({ ...callOf('self', CLIPS), step: 4 }), false);
  const plain = { guidance: CLIPS.guidance, prompt: CLIPS.prompt };
  assert.throws(
    () => v.map(callOf('cross', plain), randn([8, 2, 3, N], 1)),
    /without the frame of each row; sample the clips with editVideo/,
  );
});

function eye(n: number): Float32Array {
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

test('motion dynamics on two clips in one batch: each clip’s frame k is its own frame 0 moved by k·δ', () => {
  // latents: clip 0 frames [1 2 3 4], [9 …]; clip 1 frames [5 6 7 8], [9 …]; cond rows only
  const x = new Tensor(Float32Array.from([1, 2, 3, 4, 9, 9, 9, 9, 5, 6, 7, 8, 9, 9, 9, 9]), [4, 1, 1, 4]);
  const state = { step: 0, numSteps: 2, timestep: 1, latents: x, batch: CLIPS };
  const sources = latentFrames(state);
  assert.deepEqual(sources, [
    { from: 0, frame: 0 },
    { from: 0, frame: 1 },
    { from: 2, frame: 0 },
    { from: 2, frame: 1 },
  ]);
  assert.deepEqual(
    [...translateFrames(x, 1, 0, sources).data],
    [1, 2, 3, 4, 1, 1, 2, 3, 5, 6, 7, 8, 5, 5, 6, 7],
  );
  // without frame roles, row k is frame k of one clip (as generate lays a clip out)
  assert.equal(latentFrames({ ...state, batch: { guidance: ['cond'], prompt: [0] } }), undefined);
});

test('editVideo (tiny-sd-a): the source clip is generateVideo’s; with no control the edit is the target’s clip', () => {
  const opts = {
    prompt: 'a red circle',
    frames: 3,
    steps: 3,
    seed: 4,
    direction: 'right',
    strength: 0.25,
    t0: 700,
  } as const;
  const alone = generateVideo(sd, opts).frames;
  const edit = editVideo(sd, { ...opts, target: 'a blue circle' });
  assertClose(edit.source, alone, { atol: 1e-4, rtol: 0, label: 'source clip' });
  assert.ok((edit.edited.sub(edit.source).abs().max().data[0] as number) > 1e-3, 'the edit changes the clip');
  const none = editVideo(sd, { ...opts, target: 'a blue circle', editMethod: 'none' });
  const target = generateVideo(sd, { ...opts, prompt: 'a blue circle' }).frames;
  assertClose(none.edited, target, { atol: 1e-4, rtol: 0, label: 'target clip without control' });
  // the controlled edit is not the plain target clip
  assert.ok((edit.edited.sub(target).abs().max().data[0] as number) > 1e-3);
  assert.throws(() => editVideo(sd, { ...opts, target: 'a red circle' }), /target prompt equals the source/);
  assert.throws(() => editVideo(sd, { ...opts, target: ' ' }), /give the target prompt/);
});
