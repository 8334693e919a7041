// ToMe for SD (tomesd semantics): a hand-worked 2×2 merge, identities, token counts per ratio, seeded
// random destinations, and on the tiny golden UNet: ratio 0 changes no bit, 0.5 merges only where told.
// Parity with tomesd itself: test/golden/methods/reference-semantics.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AttentionContext, type Controller, plainBatch } from '../../../src/attention/index.js';
import {
  bipartiteSoftMatchingRandom2d,
  strideDestinations,
  TokenMerging,
} from '../../../src/methods/application/token-merging.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { Generator } from '../../../src/tensor/random.js';
import { golden, goldenUNet } from '../../helpers/golden.js';
import { uniform } from '../../helpers/random.js';
import { assertClose, sameBits } from '../../helpers/tolerance.js';

test('hand-worked 2×2 merge: the two sources closest to the top-left destination average into it', () => {
  // grid 2×2, sx = sy = 2, no randomness: destination = token 0; sources 1, 2, 3
  // cos(t1, t0) ≈ 0.995, cos(t3, t0) ≈ 0.707, cos(t2, t0) = 0 → with r = 2, t1 and t3 merge into t0
  const x = Tensor.from([1, 0, 1, 0.1, 0, 1, 1, 1], [1, 4, 2]);
  const m = bipartiteSoftMatchingRandom2d(x, 2, 2, 2, 2, 2, { noRand: true });
  const merged = m.merge(x);
  const dst = [(1 + 1 + 1) / 3, (0 + 0.1 + 1) / 3];
  assertClose(merged, { shape: [1, 2, 2], data: [0, 1, ...dst] }, { atol: 1e-6, rtol: 0 });
  assertClose(
    m.unmerge(merged),
    { shape: [1, 4, 2], data: [...dst, ...dst, 0, 1, ...dst] },
    { atol: 1e-6, rtol: 0 },
  );
  // r = 1: only t1 merges; the unmerged sources come in edge order (t3, then t2), as in tomesd
  const one = bipartiteSoftMatchingRandom2d(x, 2, 2, 2, 2, 1, { noRand: true }).merge(x);
  assertClose(one, { shape: [1, 3, 2], data: [1, 1, 0, 1, 1, 0.05] }, { atol: 1e-6, rtol: 0 });
});

test('merge then unmerge with ratio 0 is the identity; identical tokens survive a real merge exactly', () => {
  const x = uniform([2, 24, 5], 3);
  const id = bipartiteSoftMatchingRandom2d(x, 6, 4, 2, 2, 0);
  assert.ok(sameBits(id.unmerge(id.merge(x)), x));
  assert.equal(new TokenMerging({ ratio: 0 }).tokens(call([4, 6], 0), x), undefined);
  // every 2×2 cell holds four copies of one vector: merging any r tokens and unmerging gives x back
  const cells = uniform([2, 6, 5], 4);
  const data = new Float32Array(2 * 24 * 5);
  for (let b = 0; b < 2; b++)
    for (let t = 0; t < 24; t++) {
      const cell = Math.floor(Math.floor(t / 6) / 2) * 3 + Math.floor((t % 6) / 2);
      data.set(
        cells.data.subarray((b * 6 + cell) * 5, (b * 6 + cell + 1) * 5) as Float32Array,
        (b * 24 + t) * 5,
      );
    }
  const copies = new Tensor(data, [2, 24, 5]);
  const m = bipartiteSoftMatchingRandom2d(copies, 6, 4, 2, 2, 18, { generator: new Generator(1) });
  assertClose(m.unmerge(m.merge(copies)), copies, { atol: 1e-6, rtol: 0 });
});

test('token counts per ratio: r = ⌊T·ratio⌋, at most the sources (square, non-square, non-divisible grids)', () => {
  for (const [h, w] of [
    [8, 8],
    [4, 6],
    [5, 3],
  ] as const) {
    const n = h * w;
    const sources = n - Math.floor(h / 2) * Math.floor(w / 2);
    for (const ratio of [0.1, 0.25, 0.5, 0.75, 0.9]) {
      const x = uniform([2, n, 3], n);
      const r = atInput(new TokenMerging({ ratio }), [h, w]).tokens(call([h, w], 0), x);
      assert.ok(r, `${h}×${w} ratio ${ratio}`);
      const merged = r.reduce(x);
      assert.deepEqual(
        merged.shape,
        [2, n - Math.min(Math.floor(n * ratio), sources), 3],
        `${h}×${w} ratio ${ratio}`,
      );
      assert.deepEqual(r.restore(merged).shape, [2, n, 3]);
    }
  }
});

test('destinations: one per full sx × sy cell at the chosen offset; none in a partial cell', () => {
  // 5 × 3 grid (w = 5, h = 3), 2 × 2 cells: two full cells (columns 0–1 and 2–3 of rows 0–1)
  const marked = strideDestinations(5, 3, 2, 2, [3, 1]);
  const expected = new Array(15).fill(0);
  expected[1 * 5 + 1] = 1; // cell 0, offset 3 = (dy 1, dx 1)
  expected[0 * 5 + 3] = 1; // cell 1, offset 1 = (dy 0, dx 1)
  assert.deepEqual(Array.from(marked), expected);
});

test('random destinations are reproducible per seed and differ across seeds', () => {
  const x = uniform([2, 64, 4], 9);
  const merged = (generator: Generator | undefined, noRand = false) =>
    bipartiteSoftMatchingRandom2d(x, 8, 8, 2, 2, 32, { generator, noRand }).merge(x).toArray().join(',');
  assert.equal(merged(new Generator(1)), merged(new Generator(1)));
  assert.notEqual(merged(new Generator(1)), merged(new Generator(2)));
  assert.equal(merged(new Generator(1), true), merged(undefined), 'noRand: the top-left token of every cell');
});

test('maxDownsample counts from the UNet input (tomesd), or from the largest attention layer when asked', () => {
  const x = (n: number) => uniform([2, n, 3], n);
  const input = atInput(new TokenMerging({ ratio: 0.5 }), [16, 16]);
  assert.equal(input.tokens(call([8, 8], 0), x(64)), undefined, '16×16 latents: 8×8 is downsample 2');
  assert.ok(atInput(new TokenMerging({ maxDownsample: 2 }), [16, 16]).tokens(call([8, 8], 0), x(64)));
  assert.ok(
    atInput(input, [8, 8]).tokens(call([8, 8], 0), x(64)),
    'the next forward pass reads its own input',
  );
  const tome = new TokenMerging({ ratio: 0.5, downsampleFrom: 'largest-attention' });
  assert.ok(tome.tokens(call([8, 8], 0), x(64)), 'first layer: the largest resolution');
  assert.equal(tome.tokens(call([4, 4], 3), x(16)), undefined, 'downsample 2 > maxDownsample 1');
  assert.ok(
    new TokenMerging({ maxDownsample: 2, downsampleFrom: 'largest-attention' }).tokens(
      call([4, 4], 3),
      x(16),
    ),
  );
  // a new forward pass at another latent size starts again at its first layer
  assert.ok(tome.tokens(call([4, 4], 0), x(16)));
  const odd = uniform([1, 16, 3], 5);
  const r = tome.tokens(call([4, 4], 1), odd);
  assert.equal(r?.reduce(odd).shape[1], 8, 'odd batch: no randomness, still merges');
});

// ─── on the tiny golden UNet ───────────────────────────────────────────────────────────────────────────────

/** What a UNet forward pass shows ToMe first: its input latents' size, at the first ResNet block. */
function atInput(tome: TokenMerging, size: [number, number]): TokenMerging {
  const h = uniform([1, 1, ...size], 0);
  const block = { path: 'down_blocks.0.resnets.0', place: 'down' as const, index: 0, size };
  tome.resnet({ ...block, step: 0, numSteps: 1, timestep: 0, batch: plainBatch(1) }, h);
  return tome;
}

function call(size: [number, number], index: number): Parameters<TokenMerging['tokens']>[0] {
  const [h, w] = size;
  return {
    path: 'x.attn1',
    kind: 'self',
    place: 'down',
    index,
    step: 0,
    numSteps: 1,
    timestep: 0,
    batch: plainBatch(2),
    size,
    heads: 1,
    headDim: 4,
    queryTokens: h * w,
    keyTokens: h * w,
  };
}

const unet = goldenUNet();
const t = golden('unet.in.timestep').item();
const sample = golden('unet.in.sample');
const text = golden('unet.in.encoder_hidden_states');

function run(controllers: Controller[]): Tensor {
  const ctx: AttentionContext = { controllers, step: 0, numSteps: 1, timestep: t, batch: plainBatch(2) };
  return noGrad(() => unet.forward(sample, t, text, { ctx }));
}

function tokenSpy(seen: Map<string, number>): Controller {
  return {
    name: 'spy',
    output: (c, o) => {
      seen.set(c.path, c.queryTokens);
      return o;
    },
  };
}

test('tiny UNet: ToMe with ratio 0 changes no bit', () => {
  assert.ok(sameBits(run([new TokenMerging({ ratio: 0 })]), run([])));
});

test('tiny UNet: ratio 0.5 merges what it is told to (all its attention is at 8×8, downsample 2)', () => {
  const seen = new Map<string, number>();
  const none = new Map<string, number>();
  assert.ok(sameBits(run([new TokenMerging({ ratio: 0.5 }), tokenSpy(none)]), run([])), 'maxDownsample 1');
  assert.deepEqual(new Set(none.values()), new Set([64]));
  const out = run([new TokenMerging({ ratio: 0.5, maxDownsample: 2 }), tokenSpy(seen)]);
  assert.equal(seen.size, 12);
  for (const [path, n] of seen) assert.equal(n, path.endsWith('attn1') ? 32 : 64, path); // mergeCrossattn off
  assert.ok(!sameBits(out, run([])));
  const cross = new Map<string, number>();
  run([
    new TokenMerging({ ratio: 0.25, maxDownsample: 2, mergeCrossattn: true, mergeMlp: true }),
    tokenSpy(cross),
  ]);
  for (const [path, n] of cross) assert.equal(n, 48, path);
});

test('two token reductions on one block are refused with a clear message', () => {
  const other = new TokenMerging({ maxDownsample: 2, downsampleFrom: 'largest-attention' });
  assert.throws(
    () =>
      run([new TokenMerging({ maxDownsample: 2 }), { name: 'OtherMerge', tokens: other.tokens.bind(other) }]),
    /two token reductions, by TokenMerging and OtherMerge/,
  );
});
