// LocalBlend with hand-made attention maps: the mask is the union of the source's and the target's word regions
// (3×3 max-pooled, nearest-upsampled, thresholded), and outside it the target's latents become the source's.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { type AttentionCall, guidedBatch } from '../../../src/attention/index.js';
import { defaultSide, LocalBlend } from '../../../src/methods/application/local-blend.js';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { Tensor } from '../../../src/tensor/index.js';
import { randn } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';

const tokenizer = CLIPTokenizer.fromDirectorySync(join(goldenDir(), 'tokenizer'));
const N = tokenizer.modelMaxLength; // 16
const prompts = ['a red circle', 'a green circle']; // red / green at position 2

function crossCall(step: number): AttentionCall {
  return {
    path: 'up_blocks.0.attentions.0.transformer_blocks.0.attn2',
    kind: 'cross',
    place: 'up',
    index: 3,
    step,
    numSteps: 10,
    timestep: 500,
    batch: guidedBatch(2),
    size: [4, 4],
    heads: 1,
    headDim: 8,
    queryTokens: 16,
    keyTokens: N,
  };
}

/** Maps (4 rows, 1 head, 16 queries, 16 tokens): token 2 attends fully at one pixel per conditional row. */
function maps(srcPixel: number, tgtPixel: number): Tensor {
  const data = new Float32Array(4 * 16 * N);
  data[(2 * 16 + srcPixel) * N + 2] = 1; // cond source (row 2)
  data[(3 * 16 + tgtPixel) * N + 2] = 1; // cond target (row 3)
  for (let q = 0; q < 16; q++) data[(0 * 16 + q) * N + 2] = 1; // uncond rows are ignored
  return new Tensor(data, [4, 1, 16, N]);
}

test('LocalBlend keeps the latents outside the words’ region equal to the source’s', () => {
  const lb = new LocalBlend({ tokenizer, prompts, words: [['red'], ['green']] });
  const call = crossCall(2);
  assert.ok(lb.appliesTo(call));
  lb.map(call, maps(0, 15)); // source: pixel (0, 0) of 4×4; target: pixel (3, 3)
  const latents = randn([2, 4, 8, 8], 1);
  const out = lb.afterStep({ ...call, latents })!;
  // pooled (0,0) covers 4×4 cells (0..1, 0..1) → latent rows/cols 0..3; (3,3) → 4..7
  const inside = (y: number, x: number) => (y < 4 && x < 4) || (y >= 4 && x >= 4);
  assert.deepEqual(
    lb.lastMask!.slice(0, 1, 2).toArray(),
    Array.from({ length: 64 }, (_, i) => (inside(Math.floor(i / 8), i % 8) ? 1 : 0)),
  );
  const src = latents.slice(0, 0, 1).toArray();
  const tgt = latents.slice(0, 1, 2).toArray();
  const got = out.toArray();
  assert.deepEqual(got.slice(0, 256), src, 'the source row never changes');
  for (let c = 0; c < 4; c++) {
    for (let p = 0; p < 64; p++) {
      const i = c * 64 + p;
      const want = inside(Math.floor(p / 8), p % 8) ? tgt[i]! : src[i]!;
      assert.ok(
        Math.abs(got[256 + i]! - want) <= 1e-6,
        `channel ${c} pixel ${p}: ${got[256 + i]} vs ${want}`,
      );
    }
  }
});

test('LocalBlend waits for startBlend, and substruct words cut their region out', () => {
  const lb = new LocalBlend({ tokenizer, prompts, words: ['circle'], substructWords: [['red'], ['green']] });
  const early = crossCall(0); // ⌊0.2 · 10⌋ = 2: steps 0 and 1 are not blended
  const data = new Float32Array(4 * 16 * N);
  for (const r of [2, 3]) for (let q = 0; q < 16; q++) data[(r * 16 + q) * N + 3] = 1; // circle everywhere
  data[(2 * 16 + 5) * N + 2] = 1; // red at (1, 1) in the source only
  lb.map(early, new Tensor(data, [4, 1, 16, N]));
  const latents = randn([2, 4, 8, 8], 2);
  assert.equal(lb.afterStep({ ...early, step: 1, latents }), undefined);
  lb.afterStep({ ...early, step: 2, latents });
  // circle → all ones; red (not pooled) → cell (1, 1) = latent rows/cols 2..3, removed from both rows' masks
  const mask = lb.lastMask!.slice(0, 1, 2).toArray();
  mask.forEach((v, i) => {
    const y = Math.floor(i / 8);
    const x = i % 8;
    assert.equal(v, y >= 2 && y < 4 && x >= 2 && x < 4 ? 0 : 1, `pixel (${y}, ${x})`);
  });
  assert.throws(() => new LocalBlend({ tokenizer, prompts, words: ['square'] }), /none of the words/);
  for (const startBlend of [-0.1, 1.5])
    assert.throws(
      () => new LocalBlend({ tokenizer, prompts, words: ['circle'], startBlend }),
      /startBlend is a fraction of the steps in \[0, 1\]/,
    );
  // a word cut off long prompts (16 tokens here) is no region of them
  const long = ['a crimson circle and a crimson square', 'a crimson circle and a crimson square'];
  assert.throws(
    () => new LocalBlend({ tokenizer, prompts: long, words: ['square'] }),
    /none of the words \["square"\] occurs in the prompts within their first 16 tokens/,
  );
});

test('LocalBlend.blend is x_src + mask · (x − x_src)', () => {
  const x = Tensor.from([1, 2, 10, 20], [2, 1, 1, 2]);
  const mask = Tensor.from([0, 0, 1, 0], [2, 1, 1, 2]);
  assert.deepEqual(LocalBlend.blend(x, mask).toArray(), [1, 2, 10, 2]);
});

test('LocalBlend reads the maps one level above the smallest by default: SD’s 16 × 16, as the reference', () => {
  assert.equal(defaultSide([32, 16, 8]), 16); // SD at 512 pixels (maps ≤ 32² are stored)
  assert.equal(defaultSide([8, 16, 4, 16]), 8); // the Shapes model, in any order, repeated
  assert.equal(defaultSide([24, 12, 6]), 12); // SD at 768 pixels
  assert.equal(defaultSide([4]), 4); // one side only
  const lb = new LocalBlend({ tokenizer, prompts, words: [['red'], ['green']] });
  const latents = randn([2, 4, 8, 8], 3);
  assert.throws(() => lb.afterStep({ ...crossCall(5), latents }), /saw no cross-attention maps/);
});
