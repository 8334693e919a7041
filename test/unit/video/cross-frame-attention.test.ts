// Text2Video-Zero's parts against independent numbers: cross-frame attention equals an attention layer run with
// frame 0 as its context (diffusers' Attention with encoder states), branch by branch and clip by clip; the
// latent translation is checked on hand-worked rows; the warp step on the built-in schedule; and the video
// pipeline on the tiny-sd-a model: frames from one noise with no motion stay one image, motion and
// independent noise make them differ.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Attention } from '../../../src/attention/attention.js';
import { type AttentionContext, guidedBatch, plainBatch } from '../../../src/attention/index.js';
import {
  CrossFrameAttention,
  MotionDynamics,
  motionWarpStep,
  translateFrames,
} from '../../../src/methods/feature/cross-frame-attention.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { encodeGif, frameStrip, generateVideo } from '../../../src/pipelines/video.js';
import { Tensor } from '../../../src/tensor/index.js';
import { randn } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

function layer(): Attention {
  const a = new Attention({ queryDim: 8, heads: 2, dimHead: 4 });
  for (const [i, l] of [a.to_q, a.to_k, a.to_v, a.to_out.at(0)].entries()) {
    l.weight.value = randn(l.weight.value.shape, 10 + i).mul(0.5);
  }
  a.info = {
    path: 'up_blocks.0.attentions.0.transformer_blocks.0.attn1',
    kind: 'self',
    place: 'up',
    index: 0,
  };
  return a;
}

function ctxOf(batch: AttentionContext['batch']): AttentionContext {
  return { controllers: [new CrossFrameAttention()], step: 0, numSteps: 1, timestep: 999, batch };
}

const row = (x: Tensor, r: number) => x.slice(0, r, r + 1);

test('cross-frame attention: frame k attends to frame 0 (Q of frame k, K and V of frame 0)', () => {
  const a = layer();
  const x = randn([3, 5, 8], 1);
  const out = a.forward(x, { ctx: ctxOf(plainBatch(3)), size: [1, 5] });
  for (let k = 0; k < 3; k++) {
    const expected = a.forward(row(x, k), { context: row(x, 0) });
    assertClose(row(out, k), expected, { atol: 1e-5, rtol: 0, label: `frame ${k}` });
  }
  // frame 1 is really changed (it would differ from plain self-attention)
  assert.ok(
    Math.abs(
      row(out, 1)
        .sub(a.forward(row(x, 1)))
        .abs()
        .max().data[0] as number,
    ) > 1e-3,
  );
});

test('cross-frame attention: each guidance branch reads its own frame 0; clips by prompt when frames are given', () => {
  const a = layer();
  const x = randn([4, 5, 8], 2);
  const guided = a.forward(x, { ctx: ctxOf(guidedBatch(2)), size: [1, 5] }); // uncond f0 f1, cond f0 f1
  assertClose(row(guided, 1), a.forward(row(x, 1), { context: row(x, 0) }), { atol: 1e-5, rtol: 0 });
  assertClose(row(guided, 3), a.forward(row(x, 3), { context: row(x, 2) }), { atol: 1e-5, rtol: 0 });
  // two clips of two frames, conditional only: clip 1's frame 1 reads clip 1's frame 0 (row 2)
  const clips = {
    guidance: ['cond', 'cond', 'cond', 'cond'] as const,
    prompt: [0, 0, 1, 1],
    frame: [0, 1, 0, 1],
  };
  const y = a.forward(x, { ctx: ctxOf(clips), size: [1, 5] });
  assertClose(row(y, 3), a.forward(row(x, 3), { context: row(x, 2) }), { atol: 1e-5, rtol: 0 });
  assertClose(row(y, 2), a.forward(row(x, 2)), { atol: 1e-5, rtol: 0 });
  assert.throws(
    () => a.forward(x, { ctx: ctxOf({ ...clips, frame: [1, 2, 1, 2] }), size: [1, 5] }),
    /no 'cond' row of frame 0/,
  );
});

test('cross-frame attention: leaves cross-attention and the VAE alone', () => {
  const c = new CrossFrameAttention();
  const base = {
    step: 0,
    numSteps: 1,
    timestep: 1,
    batch: plainBatch(1),
    heads: 1,
    headDim: 1,
    queryTokens: 1,
    keyTokens: 1,
    index: 0,
    path: 'p',
  };
  assert.equal(c.appliesTo({ ...base, kind: 'self', place: 'down' }), true);
  assert.equal(c.appliesTo({ ...base, kind: 'cross', place: 'down' }), false);
  assert.equal(c.appliesTo({ ...base, kind: 'self', place: 'vae' }), false);
});

test('motion dynamics: frame k is frame 0 moved by k·δ, reflected at the edges (hand-worked)', () => {
  // one channel, one row [1 2 3 4], 3 frames; content moves right 1 pixel a frame
  const x = new Tensor(Float32Array.from([1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9]), [3, 1, 1, 4]);
  assert.deepEqual([...translateFrames(x, 1, 0).data], [1, 2, 3, 4, 1, 1, 2, 3, 2, 1, 1, 2]);
  // left 1.4 a frame: rounded 1, then 3 (2.8)
  assert.deepEqual([...translateFrames(x, -1.4, 0).data], [1, 2, 3, 4, 2, 3, 4, 4, 4, 4, 3, 2]);
  // a column [1 2]ᵀ moving down 1 a frame
  const col = new Tensor(Float32Array.from([1, 2, 0, 0]), [2, 1, 2, 1]);
  assert.deepEqual([...translateFrames(col, 0, 1).data], [1, 2, 1, 1]);
});

test('motion dynamics: bilinear warp with border or zero padding (hand-worked)', () => {
  // one row [1 2 3 4], 3 frames, content moves right 0.5 a frame: frame 1 reads x − 0.5, frame 2 x − 1
  const x = new Tensor(Float32Array.from([1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9]), [3, 1, 1, 4]);
  const border = translateFrames(x, 0.5, 0, undefined, 'bilinear-border');
  assert.deepEqual([...border.data], [1, 2, 3, 4, 1, 1.5, 2.5, 3.5, 1, 1, 2, 3]);
  const zeros = translateFrames(x, 0.5, 0, undefined, 'bilinear-zeros');
  assert.deepEqual([...zeros.data], [1, 2, 3, 4, 0.5, 1.5, 2.5, 3.5, 0, 1, 2, 3]);
  // up 0.25 a frame on a column [1 2]ᵀ: frame 1 reads y + 0.25 → [1.25, 2] (border), [1.25, 1.5] (zeros)
  const col = new Tensor(Float32Array.from([1, 2, 0, 0]), [2, 1, 2, 1]);
  assert.deepEqual([...translateFrames(col, 0, -0.25, undefined, 'bilinear-border').data], [1, 2, 1.25, 2]);
  assert.deepEqual([...translateFrames(col, 0, -0.25, undefined, 'bilinear-zeros').data], [1, 2, 1.25, 1.5]);
  // a whole-pixel move: bilinear equals nearest away from the edge
  assert.deepEqual([...translateFrames(x, 1, 0, undefined, 'bilinear-border').data].slice(5, 8), [1, 2, 3]);
  assert.throws(
    () => new MotionDynamics({ dx: 1, dy: 0, step: 1, sampling: 'cubic' as never }),
    /sampling must be one of nearest-reflection, bilinear-border, bilinear-zeros, got 'cubic'/,
  );
});

test('motion dynamics: warps after the step that reaches t0, and only then', () => {
  const ts = [999, 959, 919, 879, 839, 799];
  assert.equal(motionWarpStep(ts, 881), 2);
  assert.equal(motionWarpStep(ts, 959), 0);
  assert.throws(() => motionWarpStep([999, 959], 500), /never reaches t0 = 500/);
  const m = new MotionDynamics({ dx: 1, dy: 0, step: 2 });
  const latents = randn([2, 1, 1, 4], 3);
  const state = { numSteps: 6, timestep: 919, batch: plainBatch(2), latents };
  assert.equal(m.afterStep({ ...state, step: 1 }), undefined);
  assert.deepEqual(
    [...(m.afterStep({ ...state, step: 2 }) as Tensor).data],
    [...translateFrames(latents, 1, 0).data],
  );
  assert.throws(
    () => new MotionDynamics({ dx: 1, dy: 0, step: 5 }).afterStep({ ...state, step: 5 }),
    /last of 6/,
  );
  assert.throws(() => new MotionDynamics({ dx: Number.NaN, dy: 0, step: 1 }), /dx must be a finite number/);
});

test('video pipeline (tiny-sd-a): one noise and no motion gives one image; motion and independent noise differ', () => {
  const sd = StableDiffusion.fromPretrained(goldenDir());
  const run = (opts: object) =>
    generateVideo(sd, { prompt: 'a cat', frames: 3, steps: 3, seed: 4, ...opts }).frames;
  const still = run({});
  assertClose(row(still, 2), row(still, 0), { atol: 1e-5, rtol: 0 });
  const moving = run({ direction: 'right', strength: 0.25, t0: 700 });
  assertClose(row(moving, 0), row(still, 0), { atol: 1e-5, rtol: 0 });
  assert.ok((row(moving, 2).sub(row(still, 2)).abs().max().data[0] as number) > 1e-3);
  const independent = run({ method: 'independent' });
  assert.ok((row(independent, 1).sub(row(independent, 0)).abs().max().data[0] as number) > 1e-3);
  assert.throws(() => run({ frames: 1 }), /frames must be an integer in \[2, 64\], got 1/);
  assert.throws(() => run({ method: 'warp' }), /method must be one of/);
});

test('video output: the strip lays frames side by side; the GIF holds every frame', () => {
  const frames = new Tensor(
    Float32Array.from({ length: 2 * 3 * 2 * 2 }, (_, i) => i / 24 - 0.5),
    [2, 3, 2, 2],
  );
  const strip = frameStrip(frames);
  assert.deepEqual(strip.shape, [1, 3, 2, 4]);
  // channel 0, row 1: frame 0's (2, 3) then frame 1's (14, 15), in units of 1/24 − 0.5
  assert.deepEqual(
    [...strip.data.slice(4, 8)].map((v) => Math.round((Number(v) + 0.5) * 24)),
    [2, 3, 14, 15],
  );
  const gif = encodeGif(frames);
  assert.equal(String.fromCharCode(...gif.subarray(0, 6)), 'GIF89a');
  assert.equal(gif[gif.length - 1], 0x3b); // the trailer (test/e2e/video decodes every frame)
  assert.throws(() => encodeGif(randn([2, 4, 2, 2], 1)), /expected float32 frames \(F, 3, H, W\)/);
});
