// The map-composition primitive: hand-made maps with hand-written composed rows and columns, one source with a
// full mask equal to that source's maps bit for bit on the tiny golden model, the errors, and Prompt-to-Prompt's
// self-attention replacement written as a composition (equal to AttentionReplace's output).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AttentionCall, plainBatch } from '../../../src/attention/call.js';
import { AttentionReplace } from '../../../src/methods/map/attention-replace.js';
import { AttentionStore } from '../../../src/methods/map/attention-store.js';
import {
  boxRegion,
  complementRegion,
  fullRegion,
  MapComposition,
  poolRegion,
  rowSource,
} from '../../../src/methods/map/map-composition.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';

/** A self-attention call on a 2×2 grid (4 tokens), one head, batch [prompt 0, prompt 1, prompt 2]. */
function call2x2(): AttentionCall {
  return {
    path: 'down_blocks.0.attentions.0.transformer_blocks.0.attn1',
    kind: 'self',
    place: 'down',
    index: 0,
    step: 0,
    numSteps: 1,
    timestep: 999,
    batch: plainBatch(3),
    size: [2, 2],
    heads: 1,
    headDim: 4,
    queryTokens: 4,
    keyTokens: 4,
  };
}

/** Row r of batch row b holds 100·b + 10·q + k, so every entry says where it came from. */
function handMaps(): Tensor {
  const v: number[] = [];
  for (let b = 0; b < 3; b++)
    for (let q = 0; q < 4; q++) for (let k = 0; k < 4; k++) v.push(100 * b + 10 * q + k);
  return new Tensor(Float32Array.from(v), [3, 1, 4, 4]);
}

const rowsOf = (t: Tensor, b: number): number[][] => {
  const v = t.slice(0, b, b + 1).toArray();
  return [0, 1, 2, 3].map((q) => v.slice(q * 4, q * 4 + 4));
};

test('two sources by token regions: exact rows and columns, later parts win, other rows untouched', () => {
  // tokens 0 1 / 2 3; region A = the left column {0, 2}, region B = token 3
  const left = { size: [2, 2] as const, data: [1, 0, 1, 0] };
  const t3 = { size: [2, 2] as const, data: [0, 0, 0, 1] };
  const comp = new MapComposition({
    targets: [2],
    parts: [
      { source: rowSource(0), rows: left }, // queries 0, 2 × every key ← prompt 0
      { source: rowSource(1), cols: t3 }, // every query × key 3 ← prompt 1
    ],
  });
  const p = handMaps();
  const out = comp.map(call2x2(), p);
  assert.deepEqual(rowsOf(out, 2), [
    [0, 1, 2, 103],
    [210, 211, 212, 113],
    [20, 21, 22, 123],
    [230, 231, 232, 133],
  ]);
  assert.deepEqual(rowsOf(out, 0), rowsOf(p, 0));
  assert.deepEqual(rowsOf(out, 1), rowsOf(p, 1));
});

test('rows × cols: only the pairs inside both regions; complement and box regions', () => {
  const box = boxRegion([2, 2], [1, 0, 2, 2]); // x ∈ [1, 2): tokens 1, 3
  assert.deepEqual(Array.from(box.data), [0, 1, 0, 1]);
  assert.deepEqual(Array.from(complementRegion(box).data), [1, 0, 1, 0]);
  const comp = new MapComposition({
    targets: [1],
    parts: [{ source: rowSource(0), rows: box, cols: complementRegion(box) }],
  });
  const out = comp.map(call2x2(), handMaps());
  assert.deepEqual(rowsOf(out, 1), [
    [100, 101, 102, 103],
    [10, 111, 12, 113],
    [120, 121, 122, 123],
    [30, 131, 32, 133],
  ]);
});

test('a coarser layer reads a token as in the region when any grid cell under it is (max-pooling)', () => {
  const m = { size: [4, 4] as const, data: new Uint8Array(16) };
  m.data[3 * 4 + 2] = 1; // one cell at (y 3, x 2)
  assert.deepEqual([...poolRegion(m, [2, 2])], [0, 0, 0, 1]);
  assert.deepEqual([...poolRegion(m, [1, 1])], [1]);
  const comp = new MapComposition({ targets: [1], parts: [{ source: rowSource(0), rows: m }] });
  const out = comp.map(call2x2(), handMaps());
  assert.deepEqual(rowsOf(out, 1)[3], [30, 31, 32, 33]);
  assert.deepEqual(rowsOf(out, 1)[0], [100, 101, 102, 103]);
});

test('scores level: composes the logits, leaves the probabilities; map level the reverse', () => {
  const parts = [{ source: rowSource(0) }];
  const s = new MapComposition({ targets: [1], parts, level: 'scores' });
  const p = handMaps();
  assert.deepEqual(rowsOf(s.scores(call2x2(), p), 1), rowsOf(p, 0));
  assert.equal(s.map(call2x2(), p), p);
  const m = new MapComposition({ targets: [1], parts });
  assert.equal(m.scores(call2x2(), p), p);
});

test('errors before generation: wrong mask size, empty region, values not 0/1, grid not the latents', () => {
  const src = rowSource(0);
  assert.throws(
    () =>
      new MapComposition({ targets: [1], parts: [{ source: src, rows: { size: [2, 2], data: [1, 0, 1] } }] }),
    /part 0 \(source prompt 0\), rows: a 2×2 mask needs 4 values, got 3/,
  );
  assert.throws(
    () =>
      new MapComposition({
        targets: [1],
        parts: [{ source: src }, { source: rowSource(1), cols: { size: [2, 2], data: [0, 0, 0, 0] } }],
      }),
    /part 1 \(source prompt 1\), cols: the region is empty/,
  );
  assert.throws(
    () =>
      new MapComposition({ targets: [1], parts: [{ source: src, rows: { size: [1, 2], data: [1, 0.5] } }] }),
    /mask values must be 0 or 1, got 0.5/,
  );
  assert.throws(
    () =>
      new MapComposition({
        targets: [1],
        parts: [
          { source: src, rows: fullRegion([2, 2]) },
          { source: src, cols: fullRegion([4, 4]) },
        ],
      }),
    /part 1 \(source prompt 0\), cols: mask is 4×4 but an earlier region is 2×2/,
  );
  const c = new MapComposition({ targets: [1], parts: [{ source: src, rows: fullRegion([8, 8]) }] });
  assert.throws(
    () => c.checkLatentSize([16, 16]),
    /part 0 \(source prompt 0\) has rows on a 8×8 grid but the latents are 16×16/,
  );
  assert.doesNotThrow(() => c.checkLatentSize([8, 8]));
});

test('errors at a layer name the layer, the source and the region', () => {
  const c = new MapComposition({ targets: [1], parts: [{ source: rowSource(0), rows: fullRegion([3, 3]) }] });
  assert.throws(
    () => c.map(call2x2(), handMaps()),
    /layer down_blocks\.0.*attn1 has 4 query tokens \(2×2\), which the 3×3 rows region of part 0 \(source prompt 0\)/,
  );
  const missing = new MapComposition({ targets: [1], parts: [{ source: rowSource(5) }] });
  assert.throws(() => missing.map(call2x2(), handMaps()), /attn1 has no row of prompt 5 in the cond branch/);
});

const sd = StableDiffusion.fromPretrained(goldenDir());
const grid = [sd.unet.config.sampleSize, sd.unet.config.sampleSize] as const;
const prompts = ['a red circle', 'a blue square'];

test('one source with a full mask: the target rows equal that source’s maps bit for bit (tiny-sd-a)', () => {
  const store = {
    maxTokens: Number.POSITIVE_INFINITY,
    kinds: ['self'] as const,
    guidance: ['uncond', 'cond'] as const,
  };
  const before = new AttentionStore(store);
  const after = new AttentionStore(store);
  const comp = new MapComposition({
    targets: [1],
    guidance: ['uncond', 'cond'],
    parts: [{ source: rowSource(0), rows: fullRegion(grid), cols: fullRegion(grid) }],
  });
  comp.checkLatentSize(grid);
  sd.generate({ prompt: prompts, steps: 1, seed: 3, controllers: [before, comp, after] });
  const b = before.maps();
  assert.ok(b.length > 0);
  for (const m of b) {
    const a = after.maps((x) => x.path === m.path)[0]!;
    // guided batch: uncond 0, uncond 1, cond 0, cond 1
    for (const [src, tgt] of [
      [0, 1],
      [2, 3],
    ] as const) {
      assert.deepEqual(a.map.slice(0, tgt, tgt + 1).data, m.map.slice(0, src, src + 1).data, m.path);
      assert.deepEqual(a.map.slice(0, src, src + 1).data, m.map.slice(0, src, src + 1).data, m.path);
    }
  }
});

test('Prompt-to-Prompt’s self-attention replacement is a composition: same image as AttentionReplace', () => {
  const opts = { prompt: prompts, steps: 4, seed: 5 };
  const p2p = new AttentionReplace({
    tokenizer: sd.tokenizer,
    prompts,
    crossReplaceSteps: 0,
    selfReplaceSteps: 0.5,
  });
  const comp = new MapComposition({
    targets: [1],
    parts: [{ source: rowSource(0) }],
    steps: 0.5,
    maxTokens: 16 ** 2,
  });
  const a = sd.generate({ ...opts, controllers: [p2p] }).images;
  const b = sd.generate({ ...opts, controllers: [comp] }).images;
  const plain = sd.generate(opts).images;
  assert.deepEqual(b.data, a.data);
  assert.notDeepEqual(b.data, plain.data); // the replacement did something
});
