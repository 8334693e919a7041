// Layout guidance (backward guidance) and BoxDiff: each loss on hand-made maps with values worked by hand, a
// guidance step lowering the loss on the tiny-sd-a model, and bad boxes / words refused before anything is
// generated.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttentionCall } from '../../../src/attention/call.js';
import type { Controller } from '../../../src/attention/hooks.js';
import { BoxDiff, boxDiffLoss } from '../../../src/methods/application/box-diff.js';
import { LayoutGuidance, layoutLoss } from '../../../src/methods/application/layout-guidance.js';
import {
  boxCells,
  CrossAttentionRecorder,
  type GuidanceStep,
  type LatentGuidance,
  lossAndGradient,
} from '../../../src/methods/application/score-guidance.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';

const close = (a: number, b: number, tol = 1e-4) => assert.ok(Math.abs(a - b) < tol, `${a} vs ${b}`);

test('box cells: layout guidance rounds down, BoxDiff to the nearest, at least one cell', () => {
  assert.deepEqual(boxCells([0.1, 0.2, 0.6, 0.9], 4, 'floor'), [0, 0, 2, 3]);
  assert.deepEqual(boxCells([0.1, 0.2, 0.6, 0.9], 4, 'round'), [0, 1, 2, 4]);
  assert.deepEqual(boxCells([0.3, 0.3, 0.45, 0.45], 4, 'floor'), [1, 1, 2, 2]);
  assert.deepEqual(boxCells([0.9, 0.9, 1, 1], 4, 'round'), [3, 3, 4, 4]);
});

test('layout loss on a hand-made 2×2 map, two heads: mean over heads of (1 − inside/total)²', () => {
  // (1 batch, 2 heads, 4 queries, 3 states); state 1 is the word; its box is the left column (queries 0, 2)
  const head0 = [0.4, 0.1, 0.3, 0.2]; // inside 0.7 of 1.0 → (1 − 0.7)² = 0.09
  const head1 = [0.1, 0.1, 0.1, 0.1]; // inside 0.2 of 0.4 → (1 − 0.5)² = 0.25
  const data = [head0, head1].flatMap((h) => h.flatMap((v) => [0.5, v, 0.1]));
  const map = new Tensor(Float32Array.from(data), [1, 2, 4, 3]);
  const entries = [[{ token: 1, weight: 1, box: [0, 0, 0.5, 1] as const }]];
  close(layoutLoss([{ size: [2, 2], map }], entries, [1]).toArray()[0] as number, 0.17);
  // two layers average; two objects divide
  close(
    layoutLoss(
      [
        { size: [2, 2], map },
        { size: [2, 2], map },
      ],
      entries,
      [1],
    ).toArray()[0] as number,
    0.17,
  );
  close(layoutLoss([{ size: [2, 2], map }], entries, [2]).toArray()[0] as number, 0.085);
});

test('BoxDiff terms on a hand-made 2×2 map (P 0.2, L 1): inner-box, outer-box, corners', () => {
  // states: bos, word, other, eos; softmax(100 · (word, other)) gives the word σ(100·d) per query
  const d = [0.02, -0.02, 0, 0.01];
  const map = new Tensor(Float32Array.from(d.flatMap((v) => [0.2, 0.3 + v, 0.3, 0.2])), [1, 4, 4]);
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  const img = [sig(2), sig(-2), 0.5, sig(1)];
  const { refine, update } = boxDiffLoss(map, 2, [[[1]]], [[[0, 0, 0.5, 0.5]]]);
  // box = query 0: top-1 inside σ(2); top-1 outside σ(1)
  const fg = 1 - (img[0] as number);
  const bg = img[3] as number;
  // columns' maxima (σ(2), σ(1)) against (1, 0), both columns in the corner band; rows the same
  const dist = (1 - (img[0] as number) + (img[3] as number)) / 2;
  close(refine.toArray()[0] as number, fg);
  close(update.toArray()[0] as number, fg + bg + 2 * dist);
});

const sd = StableDiffusion.fromPretrained(goldenDir());
const prompt = 'a red circle and a blue square';

/** Loss at step 0 before and after `g.guide` (measured with `loss`), then generation goes on. */
function lowers(
  g: LatentGuidance,
  loss: (maps: Parameters<typeof layoutLoss>[0]) => Tensor,
): [number, number] {
  let [before, after] = [0, 0];
  const probe: LatentGuidance = {
    name: 'probe',
    guide(step) {
      if (step.step !== 0) return undefined;
      const rec = new CrossAttentionRecorder(() => true);
      const at = (x: Tensor) => lossAndGradient(step, x, rec, loss).losses[0] as number;
      before = at(step.latents);
      const x = g.guide(step) as Tensor;
      after = at(x);
      return x;
    },
  };
  sd.generate({ prompt, steps: 2, seed: 1, guidanceScale: 3, guidance: [probe] });
  return [before, after];
}

test('a layout guidance step lowers the layout loss (tiny-sd-a)', () => {
  const boxes = [
    { word: 'circle', box: [0, 0, 0.5, 0.5] as const },
    { word: 'square', box: [0.5, 0.5, 1, 1] as const },
  ];
  const layout = new LayoutGuidance({
    tokenizer: sd.tokenizer,
    prompts: prompt,
    boxes,
    maxIter: 1,
    maxIndexStep: 1,
    layers: () => true,
  });
  const entries = [
    [
      { token: sd.tokenizer.tokenIndices(prompt, 'circle')[0] as number, weight: 1, box: boxes[0]!.box },
      { token: sd.tokenizer.tokenIndices(prompt, 'square')[0] as number, weight: 1, box: boxes[1]!.box },
    ],
  ];
  const [before, after] = lowers(layout, (maps) => layoutLoss(maps, entries, [2]));
  assert.ok(before > 0.2 && after < before, `loss ${before} → ${after}`);
});

test('a BoxDiff step lowers its loss (tiny-sd-a, 8×8 maps)', () => {
  const boxes = [{ word: 'circle', box: [0, 0, 0.5, 0.5] as const }];
  const box = new BoxDiff({
    tokenizer: sd.tokenizer,
    prompts: prompt,
    boxes,
    attentionRes: 8,
    thresholds: new Map(),
    maxIterToAlter: 1,
    smoothAttentions: false,
  });
  const tokens = [[sd.tokenizer.tokenIndices(prompt, 'circle')]];
  const [before, after] = lowers(box, (maps) => {
    const m = maps.filter((r) => r.size[0] === 8);
    const mean = m
      .slice(1)
      .reduce((a, r) => a.add(r.map), (m[0] as { map: Tensor }).map)
      .mean({ axes: [1] })
      .mul(1 / m.length);
    return boxDiffLoss(mean, 8, tokens, [[boxes[0]!.box]]).update;
  });
  assert.ok(before > 0 && after < before, `loss ${before} → ${after}`);
});

test('bad input is refused when the method is made, before anything is generated', () => {
  const make = (word: string, box: readonly [number, number, number, number]) => () =>
    new LayoutGuidance({ tokenizer: sd.tokenizer, prompts: prompt, boxes: [{ word, box }] });
  assert.throws(make('circle', [0, 0, 1.2, 1]), /box of "circle" \[0, 0, 1.2, 1\] lies outside \[0, 1\]/);
  assert.throws(make('circle', [-0.1, 0, 0.5, 1]), /outside \[0, 1\]/);
  assert.throws(make('circle', [0.6, 0, 0.5, 1]), /empty or inverted; give x0 < x1 and y0 < y1/);
  assert.throws(make('circle', [0, 0.5, 1, 0.5]), /empty or inverted/);
  assert.throws(
    make('triangle', [0, 0, 0.5, 0.5]),
    (e: Error) => e.message.startsWith('layout guidance') && e.message.includes('"triangle"'),
  );
  assert.throws(
    () =>
      new BoxDiff({ tokenizer: sd.tokenizer, prompts: prompt, boxes: [{ word: 'star', box: [0, 0, 1, 1] }] }),
    (e: Error) => e.message.startsWith('BoxDiff') && e.message.includes('"star"'),
  );
  assert.throws(
    () =>
      new BoxDiff({
        tokenizer: sd.tokenizer,
        prompts: prompt,
        boxes: [{ word: 'circle', box: [0, 0, 1, Number.NaN] }],
      }),
    /four numbers/,
  );
});

test('a layout guidance step on DDIM latents is lossScale · (1 − ᾱ_t) · ∇L (the reference’s σ_t² on LMS latents)', () => {
  // A stand-in denoiser whose map for the word is x_q² on a 2×2 map (every other state 1); box = left column.
  // At x = 1: inside/total = 2/4, L = (1 − 0.5)² = 0.25, ∂L/∂x_q = −2 · 0.5 · 2x_q(total − inside)/total² = −0.25
  // inside the box, +0.25 outside. lossScale 1, ᾱ 0.75: the step is 0.25 · ∇L, so x → 1.0625 inside, 0.9375
  // outside (σ_t² = (1 − ᾱ)/ᾱ = 1/3 would give 1.0833: the VE view's step applied to VP latents).
  const token = sd.tokenizer.tokenIndices(prompt, 'circle')[0] as number;
  const tk = token + 2;
  const hot = Float32Array.from({ length: tk }, (_, k) => (k === token ? 1 : 0));
  const layout = new LayoutGuidance({
    tokenizer: sd.tokenizer,
    prompts: prompt,
    boxes: [{ word: 'circle', box: [0, 0, 0.5, 1] }],
    lossScale: 1,
    lossThreshold: 0,
    maxIter: 1,
    maxIndexStep: 1,
    layers: () => true,
  });
  const call = { kind: 'cross', place: 'mid', size: [2, 2] } as unknown as AttentionCall;
  const step = {
    step: 0,
    numSteps: 2,
    timestep: 999,
    batch: { roles: ['cond'] },
    latents: Tensor.ones([1, 1, 2, 2]),
    alphaCumprod: 0.75,
    denoise(x: Tensor, cs: readonly Controller[]) {
      const word = x
        .reshape([1, 1, 4, 1])
        .pow(2)
        .matmul(new Tensor(hot, [1, 1, 1, tk]));
      const p = word.add(
        new Tensor(
          hot.map((v) => 1 - v),
          [1, 1, 1, tk],
        ),
      );
      for (const c of cs) c.map?.(call, p);
      return x;
    },
  } as unknown as GuidanceStep;
  const x = (layout.guide(step) as Tensor).toArray();
  for (const [q, v] of [1.0625, 0.9375, 1.0625, 0.9375].entries()) close(x[q] as number, v, 1e-5);
});

test('sides: the loss reads the mid-block and up-path layers of those map sides only', () => {
  // a 8×8 up layer with the word's attention all inside its box (loss 0), and a down layer of side 8, a mid
  // layer of side 4 and an up layer of side 4 with it spread evenly over the image (loss (1 − ½)² = 0.25 each)
  const token = sd.tokenizer.tokenIndices(prompt, 'circle')[0] as number;
  const tk = token + 2;
  const mapOf = (side: number, inside: boolean) => {
    const p = new Float32Array(side * side * tk);
    for (let q = 0; q < side * side; q++) p[q * tk + token] = !inside || q % side < side / 2 ? 1 : 0;
    return new Tensor(p, [1, 1, side * side, tk]);
  };
  const calls = [
    ['down', 8, false],
    ['mid', 4, false],
    ['up', 4, false],
    ['up', 8, true],
  ] as const;
  const lossWith = (sides: number[]) => {
    const layout = new LayoutGuidance({
      tokenizer: sd.tokenizer,
      prompts: prompt,
      boxes: [{ word: 'circle', box: [0, 0, 0.5, 1] }],
      lossThreshold: 1,
      maxIndexStep: 1,
      sides,
    });
    const step = {
      step: 0,
      numSteps: 2,
      timestep: 999,
      batch: { roles: ['cond'] },
      latents: Tensor.ones([1, 1, 2, 2]),
      alphaCumprod: 0.5,
      denoise(x: Tensor, cs: readonly Controller[]) {
        for (const [place, side, inside] of calls) {
          const call = { kind: 'cross', place, size: [side, side] } as unknown as AttentionCall;
          const p = mapOf(side, inside).mul(x.sum().mul(0.25)); // × 1, on the latents
          for (const c of cs) if (c.appliesTo?.(call) ?? true) c.map?.(call, p);
        }
        return x.mul(0);
      },
    } as unknown as GuidanceStep;
    layout.guide(step);
    return layout.losses[0]?.losses[0] as number;
  };
  close(lossWith([8]), 0);
  close(lossWith([4]), 0.25);
  close(lossWith([8, 4]), 0.25 * (2 / 3));
});
