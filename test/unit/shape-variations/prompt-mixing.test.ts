// Object-Shape Variations' parts: prompt-mixing's keys and values on hand-made features (exact rows), the proxy
// prompts' checks, and the pipeline on the tiny golden model (no mixing and no localisation of a proxy equal to
// the source is the source bit for bit; a sweep gives one image per proxy; the region is on the latent grid).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AttentionCall, guidedBatch } from '../../../src/attention/call.js';
import { PromptMixing, proxyPrompts } from '../../../src/methods/map/prompt-mixing.js';
import { shapeVariations } from '../../../src/pipelines/shape-variations.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';

/** A cross-attention call at `step` of 50 over a guided batch of [source, variation]. */
function crossCall(step: number): AttentionCall {
  return {
    path: 'up_blocks.1.attentions.0.transformer_blocks.0.attn2',
    kind: 'cross',
    place: 'up',
    index: 3,
    step,
    numSteps: 50,
    timestep: 500,
    batch: guidedBatch(2), // uncond 0, uncond 1, cond 0, cond 1
    size: [1, 1],
    heads: 1,
    headDim: 1,
    queryTokens: 1,
    keyTokens: 2,
  };
}

/** (4, 1, 2, 1) features whose entries say row and kind: 10·row + (k: 1, v: 2). */
function features(): { q: Tensor; k: Tensor; v: Tensor } {
  const t = (c: number) =>
    new Tensor(Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3].map((r) => 10 * r + c)), [4, 1, 2, 1]);
  return { q: t(0), k: t(1), v: t(2) };
}

test('prompt-mixing: the variation’s keys are the source’s; its values the proxy’s only in steps 7 … 17 of 50', () => {
  const pm = new PromptMixing({ variations: [1] });
  const rowsOf = (x: Tensor) => [0, 1, 2, 3].map((r) => x.toArray()[2 * r]);
  for (const [step, mixing] of [
    [6, false],
    [7, true],
    [16, true],
    [17, false],
  ] as const) {
    const f = pm.features(crossCall(step), features());
    // keys: the variation rows (1: uncond, 3: cond) take their branch's source row (0, 2)
    assert.deepEqual(rowsOf(f.k), [1, 1, 21, 21], `keys at step ${step}`);
    assert.deepEqual(rowsOf(f.v), mixing ? [2, 12, 22, 32] : [2, 2, 22, 22], `values at step ${step}`);
    assert.deepEqual(rowsOf(f.q), [0, 10, 20, 30]);
  }
});

test('prompt-mixing with tokens: only those text positions take the proxy’s values, the rest the source’s', () => {
  const pm = new PromptMixing({ variations: [1], tokens: [1] });
  // values 10·row + 100·position + 2: row and text position readable from each entry
  const v = new Tensor(
    Float32Array.from([0, 0, 1, 1, 2, 2, 3, 3].map((r, i) => 10 * r + 100 * (i % 2) + 2)),
    [4, 1, 2, 1],
  );
  const f = pm.features(crossCall(8), { ...features(), v });
  // rows: uncond source, uncond variation, cond source, cond variation; positions 0, 1 each
  assert.deepEqual(Array.from(f.v.toArray()), [2, 102, 2, 112, 22, 122, 22, 132]);
  // outside the interval the variation's values are the source's at every position
  const g = pm.features(crossCall(30), { ...features(), v });
  assert.deepEqual(Array.from(g.v.toArray()), [2, 102, 2, 102, 22, 122, 22, 122]);
  assert.throws(
    () => pm.features(crossCall(8), { ...features(), v: v.reshape([4, 1, 1, 2]) }),
    /token 1 is past/,
  );
  assert.throws(() => new PromptMixing({ variations: [1], tokens: [] }), /tokens must be text positions/);
});

test('prompt-mixing: a batch without the source row is an error naming the layer', () => {
  const pm = new PromptMixing({ variations: [1], source: 2 });
  assert.throws(
    () => pm.features(crossCall(8), features()),
    /attn2 has no row of the source prompt 2 in the uncond branch/,
  );
  assert.throws(() => new PromptMixing({ variations: [0] }), /prompt 0 is the source/);
});

const sd = StableDiffusion.fromPretrained(goldenDir());

test('proxy prompts: the word swapped; a missing word or a proxy of another token count is refused', () => {
  assert.deepEqual(proxyPrompts(sd.tokenizer, 'a red circle', 'circle', ['square', 'star']), [
    'a red square',
    'a red star',
  ]);
  assert.throws(() => proxyPrompts(sd.tokenizer, 'a red circle', 'ring', ['star']), /'ring' is not a word/);
  assert.throws(() => proxyPrompts(sd.tokenizer, 'a red circle', 'circle', ['big star']), /one word/);
});

test('shape variations on tiny-sd-a: a proxy equal to the word with no mixing is the source bit for bit', () => {
  const common = {
    source: 'a red circle',
    word: 'circle',
    steps: 3,
    seed: 2,
    backgroundBlend: false as const,
  };
  const same = shapeVariations(sd, {
    ...common,
    proxies: ['circle', 'square'],
    mixSteps: 0,
    localizationSteps: 0,
  });
  assert.equal(same.variations.length, 2);
  assert.deepEqual(same.variations[0]!.data, same.source.data);
  // with no mixing the proxy's text never reaches the variation: its keys and values are the source's
  assert.deepEqual(same.variations[1]!.data, same.source.data);
  const mixed = shapeVariations(sd, { ...common, proxies: ['square'], mixSteps: 1 });
  assert.notDeepEqual(mixed.variations[0]!.data, mixed.source.data);
  assert.deepEqual(mixed.object.size, [sd.unet.config.sampleSize, sd.unet.config.sampleSize]);
  assert.ok(Array.from(mixed.object.data).includes(1));
});

test('shape variations on tiny-sd-a: with a local blend every step, the variation leaves the source only near the object', () => {
  const run = (localBlend?: [number, number]) => {
    let last: Tensor | undefined;
    const r = shapeVariations(sd, {
      source: 'a red circle',
      word: 'circle',
      proxies: ['square'],
      steps: 3,
      seed: 2,
      mixSteps: 1,
      proxyTokens: 'word',
      maskThreshold: 0.5,
      backgroundBlend: false,
      localBlend,
      onStep: (e) => {
        last = e.latents;
      },
    });
    // latent cells (over all channels) where the variation row equals the source row
    const [, c, h, w] = last!.shape as number[];
    const d = last!.toArray();
    let same = 0;
    for (let i = 0; i < h! * w!; i++) {
      let eq = true;
      for (let k = 0; k < c!; k++) eq &&= d[k * h! * w! + i] === d[(c! + k) * h! * w! + i];
      if (eq) same++;
    }
    return { same, cells: h! * w!, object: Array.from(r.object.data).filter((v) => v === 1).length };
  };
  const free = run();
  const blended = run([0, 1]);
  assert.equal(free.same, 0, 'without a blend the proxy changes every latent cell');
  assert.ok(
    blended.object < blended.cells,
    `the object region (${blended.object} cells) is not the whole grid`,
  );
  assert.ok(blended.same > 0, 'with the blend the cells away from the object are the source’s');
});
