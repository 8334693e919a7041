// Paint-with-words: the bias w · log(1 + σ) · max(QKᵀ) on a hand-made call (values worked by hand), the painted
// word's attention moving into its region on the tiny-sd-a model, and bad regions refused when it is made.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AttentionCall, guidedBatch } from '../../../src/attention/call.js';
import { AttentionStore } from '../../../src/methods/map/attention-store.js';
import { boxMask, cellMeans, PaintWithWords } from '../../../src/methods/map/paint-with-words.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';

const close = (a: number, b: number, tol = 1e-5) => assert.ok(Math.abs(a - b) < tol, `${a} vs ${b}`);
const sd = StableDiffusion.fromPretrained(goldenDir());
const prompt = 'a red circle and a blue square';

test('box masks and cell means', () => {
  assert.deepEqual([...boxMask([0, 0, 0.5, 1], 2, 4)], [1, 1, 0, 0, 1, 1, 0, 0]);
  assert.deepEqual([...cellMeans(Float32Array.from([1, 1, 0, 1, 1, 1, 0, 0]), 2, 4, 1, 2)], [1, 0.25]);
  assert.throws(() => cellMeans(new Float32Array(9), 3, 3, 2, 2), /does not divide/);
});

test('the bias on a hand-made call: conditional row only, the word’s tokens inside its region', () => {
  const alphas = new Array<number>(10).fill(0.5);
  alphas[5] = 0.2; // σ = √(0.8 / 0.2) = 2
  const pww = new PaintWithWords({
    tokenizer: sd.tokenizer,
    prompts: prompt,
    words: [{ word: 'circle', region: [0, 0, 0.5, 1], weight: 0.5 }],
    imageSize: [4, 4],
    alphasCumprod: alphas,
  });
  const t = sd.tokenizer.tokenIndices(prompt, 'circle')[0] as number;
  const tk = sd.tokenizer.modelMaxLength;
  const call: AttentionCall = {
    path: 'up_blocks.0.attentions.0.transformer_blocks.0.attn2',
    kind: 'cross',
    place: 'up',
    index: 0,
    step: 0,
    numSteps: 1,
    timestep: 5,
    batch: guidedBatch(1),
    size: [2, 2],
    heads: 1,
    headDim: 4,
    queryTokens: 4,
    keyTokens: tk,
  };
  const s = new Float32Array(2 * 4 * tk).fill(0.5);
  s[4 * tk + 3 * tk + 2] = 2; // the conditional row's largest score
  s[0] = 3; // an unconditional score larger still: not the max the bias scales by
  const out = pww.scores(call, new Tensor(s, [2, 1, 4, tk])).toArray();
  const bias = 0.5 * 0.4 * Math.log(3) * 2; // weight · w · log(1 + σ) · max
  for (let r = 0; r < 2; r++) {
    for (let q = 0; q < 4; q++) {
      for (let k = 0; k < tk; k++) {
        const i = (r * 4 + q) * tk + k;
        const painted = r === 1 && (q === 0 || q === 2) && k === t;
        close(out[i] as number, (s[i] as number) + (painted ? bias : 0));
      }
    }
  }
});

test('on tiny-sd-a the painted word’s attention moves into its region', () => {
  const region = [0, 0, 0.5, 0.5] as const;
  const side = sd.defaultSize;
  const inside = (controllers: readonly import('../../../src/attention/hooks.js').Controller[]) => {
    const store = new AttentionStore({
      kinds: ['cross'],
      maxTokens: Number.POSITIVE_INFINITY,
      guidance: ['cond'],
    });
    sd.generate({ prompt, steps: 2, seed: 2, guidanceScale: 3, controllers: [...controllers, store] });
    const t = sd.tokenizer.tokenIndices(prompt, 'circle')[0] as number;
    let [inMass, all] = [0, 0];
    for (const m of store.maps()) {
      const [, heads, tq, tk] = m.map.shape as [number, number, number, number];
      const h = Math.sqrt(tq);
      const mask = cellMeans(boxMask(region, side, side), side, side, h, h);
      const v = m.map.toArray();
      for (let hd = 0; hd < heads; hd++) {
        for (let q = 0; q < tq; q++) {
          const p = v[(hd * tq + q) * tk + t] as number;
          all += p;
          inMass += p * (mask[q] as number);
        }
      }
    }
    return inMass / all;
  };
  const pww = new PaintWithWords({
    tokenizer: sd.tokenizer,
    prompts: prompt,
    words: [{ word: 'circle', region }],
    imageSize: [side, side],
    alphasCumprod: sd.scheduler().alphasCumprod,
  });
  const [plain, painted] = [inside([]), inside([pww])];
  assert.ok(painted > plain + 0.03, `share inside ${plain} → ${painted}`);
});

test('bad regions and words are refused when it is made', () => {
  const make = (words: ConstructorParameters<typeof PaintWithWords>[0]['words']) => () =>
    new PaintWithWords({
      tokenizer: sd.tokenizer,
      prompts: prompt,
      words,
      imageSize: [8, 8],
      alphasCumprod: [],
    });
  const mask = { width: 4, height: 8, data: new Float32Array(32) };
  assert.throws(make([{ word: 'circle', region: mask }]), /mask of "circle" is 4×8, the image 8×8/);
  assert.throws(make([{ word: 'circle', region: [0.5, 0, 0.2, 1] }]), /empty or inverted/);
  assert.throws(make([{ word: 'circle', region: [0, 0, 2, 1] }]), /outside \[0, 1\]/);
  assert.throws(
    make([{ word: 'heart', region: [0, 0, 1, 1] }]),
    (e: Error) => e.message.startsWith('paint-with-words') && e.message.includes('"heart"'),
  );
  assert.throws(make([{ word: 'circle', region: [0, 0, 1, 1], weight: -1 }]), /weight of "circle"/);
});

test('hard regions, the step range and the map sides that get the bias', () => {
  const alphas = new Array<number>(10).fill(0.2); // σ = 2
  const t = sd.tokenizer.tokenIndices(prompt, 'circle')[0] as number;
  const tk = sd.tokenizer.modelMaxLength;
  // a 4 × 4 image's left column and one more pixel: on a 2 × 2 grid the cells hold 3/4, 0, 1/2, 0 of the region
  const mask = Float32Array.from([1, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
  const make = (o: Partial<ConstructorParameters<typeof PaintWithWords>[0]>) =>
    new PaintWithWords({
      tokenizer: sd.tokenizer,
      prompts: prompt,
      words: [{ word: 'circle', region: { width: 4, height: 4, data: mask } }],
      imageSize: [4, 4],
      alphasCumprod: alphas,
      scale: 1,
      ...o,
    });
  const call = (step: number, side: number): AttentionCall => ({
    path: 'up_blocks.0.attentions.0.transformer_blocks.0.attn2',
    kind: 'cross',
    place: 'up',
    index: 0,
    step,
    numSteps: 10,
    timestep: 3,
    batch: guidedBatch(1),
    size: [side, side],
    heads: 1,
    headDim: 4,
    queryTokens: side * side,
    keyTokens: tk,
  });
  const s = new Float32Array(2 * 4 * tk).fill(0.5);
  s[4 * tk + 1] = 2; // the conditional row's max
  const painted = (p: PaintWithWords) => {
    const out = p.scores(call(0, 2), new Tensor(s, [2, 1, 4, tk])).toArray();
    return [0, 1, 2, 3].map((q) => (out[(4 + q) * tk + t] as number) - 0.5);
  };
  const unit = Math.log(3) * 2; // w · log(1 + σ) · max
  // soft: each cell its share of the region (3/4, 0, 1/2, 0); hard at 0.6: only the first cell, at full weight
  for (const [o, cells] of [
    [{}, [0.75, 0, 0.5, 0]],
    [{ hardThreshold: 0.6 }, [1, 0, 0, 0]],
    [{ hardThreshold: 0.5 }, [1, 0, 1, 0]],
    // inside − outsideWeight · (1 − inside)
    [{ outsideWeight: 1 }, [0.5, -1, 0, -1]],
    [{ outsideWeight: 2, hardThreshold: 0.6 }, [1, -2, -2, -2]],
  ] as const) {
    const got = painted(make(o));
    for (let q = 0; q < 4; q++) close(got[q]!, cells[q]! * unit);
  }
  const ranged = make({ steps: [2, 5], resolutions: [2] });
  assert.deepEqual(
    [0, 1, 2, 4, 5, 9].map((step) => ranged.appliesTo(call(step, 2))),
    [false, false, true, true, false, false],
  );
  assert.equal(ranged.appliesTo(call(3, 1)), false);
  assert.equal(make({}).appliesTo(call(0, 1)), true);
  assert.throws(() => make({ hardThreshold: 0 }), /hardThreshold must be in \(0, 1\]/);
  assert.throws(() => make({ outsideWeight: -1 }), /outsideWeight must be ≥ 0/);
});
