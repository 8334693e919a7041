// TF-ICON: the composite self-attention logits on hand-made features and scores (background ↔ background, the
// pseudo cross-attention columns and rows, object ↔ object, written out by hand), the object placed in the
// box pixel for pixel, the exceptional prompt's uniform states, and the pipeline's checks and run on tiny-sd-a.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AttentionCall, plainBatch } from '../../../src/attention/call.js';
import type { Controller } from '../../../src/attention/hooks.js';
import { tfIconAttention } from '../../../src/methods/map/tf-icon.js';
import { composeImage, exceptionalPromptEmbeds, placeObject } from '../../../src/pipelines/compose.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';

/** A self-attention call on a 1×3 grid, one head of size 1, batch [background, object, composite]. */
function call(step: number): AttentionCall {
  return {
    path: 'up_blocks.1.attentions.0.transformer_blocks.0.attn1',
    kind: 'self',
    place: 'up',
    index: 4,
    step,
    numSteps: 10,
    timestep: 100,
    batch: plainBatch(3),
    size: [1, 3],
    heads: 1,
    headDim: 1,
    queryTokens: 3,
    keyTokens: 3,
  };
}

/** Runs the controllers' features and scores hooks on hand-made values; returns the composite's 3×3 logits. */
function run(controllers: Controller[], step: number, s: Tensor): number[][] {
  const q = new Tensor(Float32Array.from([1, 2, 3, 0, 0, 0, 0, 0, 0]), [3, 1, 3, 1]); // Q of the background 1 2 3
  const k = new Tensor(Float32Array.from([0, 0, 0, 5, 6, 7, 0, 0, 0]), [3, 1, 3, 1]); // K of the object 5 6 7
  let x = s;
  for (const c of controllers) {
    if (c.appliesTo && !c.appliesTo(call(step))) continue;
    c.features?.(call(step), { q, k, v: q });
    if (c.scores) x = c.scores(call(step), x);
  }
  const v = x.slice(0, 2, 3).toArray();
  return [0, 1, 2].map((r) => v.slice(3 * r, 3 * r + 3));
}

test('TF-ICON’s composite logits: background, pseudo cross columns and rows, object ↔ object, by hand', () => {
  // row b holds 100·b + 10·q + k
  const s = new Tensor(
    Float32Array.from(
      { length: 27 },
      (_, i) => 100 * Math.floor(i / 9) + 10 * Math.floor((i % 9) / 3) + (i % 3),
    ),
    [3, 1, 3, 3],
  );
  const box = { size: [1, 3] as const, data: [0, 1, 1] };
  const object = { size: [1, 3] as const, data: [0, 0, 1] };
  const cs = tfIconAttention({ box, object }); // background 40 % and τ_A 0.4 of 10 steps: steps 0–3
  assert.deepEqual(run(cs, 0, s), [
    [0, 201, 1 * 7], // (0,0) the background's; (0,1) own; (0,2) Q_bg[0]·K_obj[2]
    [210, 211, 2 * 7], // (1,2) Q_bg[1]·K_obj[2]
    [7 * 1, 7 * 2, 122], // row 2: K_obj[2]·Q_bg[k]; (2,2) the object's own
  ]);
  assert.deepEqual(run(cs, 4, s), [
    [200, 201, 202],
    [210, 211, 212],
    [220, 221, 222],
  ]);
});

test('TF-ICON refuses an object outside its box and regions on two grids', () => {
  assert.throws(
    () =>
      tfIconAttention({ box: { size: [1, 3], data: [0, 1, 0] }, object: { size: [1, 3], data: [0, 0, 1] } }),
    /object token 2 lies outside the box/,
  );
  assert.throws(
    () =>
      tfIconAttention({ box: { size: [1, 3], data: [0, 1, 1] }, object: { size: [3, 1], data: [0, 0, 1] } }),
    /one grid/,
  );
});

test('placeObject: the mask’s bounding box lands on the box, pixel for pixel (nearest)', () => {
  // a 1-channel 4×4 object image with values 0…15 and a 2×2 object at x 1–2, y 2–3
  const img = new Tensor(
    Float32Array.from({ length: 16 }, (_, i) => i),
    [1, 1, 4, 4],
  );
  const mask = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0];
  const r = placeObject(img, mask, [0, 0, 2, 2], [3, 3]);
  assert.deepEqual(Array.from(r.image.toArray()).slice(0, 2), [9, 10]);
  assert.deepEqual(Array.from(r.image.toArray()).slice(3, 5), [13, 14]);
  assert.deepEqual(Array.from(r.mask), [1, 1, 0, 1, 1, 0, 0, 0, 0]);
  assert.throws(() => placeObject(img, new Array(16).fill(0), [0, 0, 2, 2], [3, 3]), /mask is empty/);
  assert.throws(
    () => placeObject(img, [1], [0, 0, 2, 2], [3, 3]),
    /mask has 1 values, the object image is 4×4/,
  );
});

const sd = StableDiffusion.fromPretrained(goldenDir());

test('the exceptional prompt: one state at every position, so cross-attention is uniform', () => {
  const e = exceptionalPromptEmbeds(sd);
  const [, t, d] = e.shape as [number, number, number];
  assert.equal(t, sd.tokenizer.modelMaxLength);
  const v = e.toArray();
  for (let i = 1; i < t; i++) assert.deepEqual(v.slice(i * d, (i + 1) * d), v.slice(0, d));
});

test('composeImage on tiny-sd-a: checks the box first; runs and returns the composite', () => {
  const size = sd.defaultSize;
  const bg = Tensor.full([1, 3, size, size], -0.5);
  const obj = Tensor.full([1, 3, size, size], 0.5);
  const mask = Float32Array.from({ length: size * size }, (_, i) =>
    i % size < size / 2 && i < (size * size) / 2 ? 1 : 0,
  );
  const base = { background: bg, object: obj, objectMask: mask, prompt: 'a red circle', steps: 2 };
  assert.throws(
    () => composeImage(sd, { ...base, box: [0, 0, size + 1, 8] }),
    new RegExp(`0 ≤ x0 < x1 ≤ ${size}`),
  );
  assert.throws(() => composeImage(sd, { ...base, box: [8, 8, 8, 16] }), /must be whole pixels/);
  const r = composeImage(sd, { ...base, box: [size / 2, size / 2, size, size] });
  assert.deepEqual(r.image.shape, [1, 3, size, size]);
  assert.ok(Array.from(r.image.toArray()).every(Number.isFinite));
  // the pasted image: the object's colour inside the placed mask, the background's outside
  assert.equal(r.pasted.toArray()[size * size - 1], 0.5);
  assert.equal(r.pasted.toArray()[0], -0.5);
});
