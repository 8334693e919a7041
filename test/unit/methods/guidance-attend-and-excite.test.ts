// Attend-and-Excite: the reference's Gaussian smoothing and the loss on hand-made maps (values worked by hand),
// one guidance step lowering the loss on the tiny-sd-a model, and a subject not in the prompt refused before
// anything is generated.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  AttendAndExcite,
  attendAndExciteLoss,
  gaussianSmoothingMatrix,
  nounSubjects,
} from '../../../src/methods/application/attend-and-excite.js';
import {
  CrossAttentionRecorder,
  type LatentGuidance,
  lossAndGradient,
  meanMapAt,
} from '../../../src/methods/application/score-guidance.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';

const close = (a: number, b: number, tol = 1e-4) => assert.ok(Math.abs(a - b) < tol, `${a} vs ${b}`);

// the kernel per axis ∝ exp(−((i − 1)/(2·0.5))²) = [e⁻¹, 1, e⁻¹] / (1 + 2e⁻¹) = [0.21194, 0.57612, 0.21194]
const [K0, K1] = [Math.exp(-1) / (1 + 2 * Math.exp(-1)), 1 / (1 + 2 * Math.exp(-1))];

test('Gaussian smoothing (3×3, σ 0.5, reflect): an impulse at the centre and at a corner of a 3×3 map', () => {
  const k = gaussianSmoothingMatrix(3);
  const smooth = (at: number) => {
    const x = new Float32Array(9);
    x[at] = 1;
    return new Tensor(x, [1, 9]).matmul(k.transpose(0, 1)).toArray();
  };
  const c = smooth(4);
  close(c[4] as number, K1 * K1);
  // reflect padding shows the centre to a corner from four sides, to an edge from two
  close(c[0] as number, 4 * K0 * K0);
  close(c[1] as number, 2 * K0 * K1);
  // corner (0, 0): reflect puts it at offsets (±1) of (1, 1) too, so (1, 1) gets the corner weight only
  const corner = smooth(0);
  close(corner[0] as number, K1 * K1);
  close(corner[1] as number, K1 * K0);
  close(corner[4] as number, K0 * K0);
  // a constant map stays constant
  const ones = new Tensor(new Float32Array(9).fill(1), [1, 9]).matmul(k.transpose(0, 1)).toArray();
  for (const v of ones) close(v, 1, 1e-6);
  assert.throws(() => gaussianSmoothingMatrix(1), /too small/);
});

test('the loss on a hand-made 2×2 map: softmax(100 · text tokens), max per subject, the most neglected', () => {
  // (1, 4 queries, 4 states: bos, w1, w2, eos); only states 1 and 2 count
  const rows = [
    [0, 0.5, 0.5, 0],
    [0, 0.51, 0.5, 0],
    [0, 0.5, 0.52, 0],
    [0, 0.5, 0.5, 0],
  ];
  const map = new Tensor(Float32Array.from(rows.flat()), [1, 4, 4]);
  const sig = (d: number) => 1 / (1 + Math.exp(-d));
  // word 1: [0.5, σ(1), σ(−2), 0.5] → max σ(1) = 0.73106; word 2: max σ(2) = 0.88080
  const { maxima, loss } = attendAndExciteLoss(map, [[[1], [2]]]);
  close(maxima.toArray()[0] as number, sig(1));
  close(maxima.toArray()[1] as number, sig(2));
  close(loss.toArray()[0] as number, 1 - sig(1));
  // one subject: its own loss; a two-token subject sums its tokens' maps: max 1, loss 0
  close(attendAndExciteLoss(map, [[[2]]]).loss.toArray()[0] as number, 1 - sig(2));
  close(attendAndExciteLoss(map, [[[1, 2]]]).loss.toArray()[0] as number, 0);
  // smoothing of the 2×2 map (reflect: every pixel sees the other column/row with weight K0 + K0 … )
  const smoothed = attendAndExciteLoss(
    map,
    [[[1]]],
    gaussianSmoothingMatrix(2),
  ).maxima.toArray()[0] as number;
  // pixel (0, 1) = q1: rows {0: K1, 1: 2K0}, cols {1: K1, 0: 2K0}; values v(q) = [0.5, σ(1), σ(−2), 0.5]
  const v = [0.5, sig(1), sig(-2), 0.5];
  const w = (a: number, b: number) => (a === b ? K1 : 2 * K0);
  const at = (y: number, x: number) =>
    [0, 1]
      .flatMap((yy) => [0, 1].map((xx) => w(y, yy) * w(x, xx) * (v[yy * 2 + xx] as number)))
      .reduce((a, b) => a + b);
  close(smoothed, Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1)));
});

test('normalizeEot: eos and the padding after it leave the softmax (the reference’s normalize_eot)', () => {
  // (1, 4 queries, 6 states: bos, w1, w2, eos, pad, last); eos and pad hold more attention than the words
  const words = [
    [0.5, 0.5],
    [0.51, 0.5],
    [0.5, 0.52],
    [0.5, 0.5],
  ];
  const map = new Tensor(Float32Array.from(words.flatMap((w) => [0, ...w, 0.6, 0.6, 0])), [1, 4, 6]);
  const sig = (d: number) => 1 / (1 + Math.exp(-d));
  // states 1…2 only (eos at 3): the 2×2 case above, word 1's max σ(1), word 2's σ(2)
  const { maxima, loss } = attendAndExciteLoss(map, [[[1], [2]]], undefined, [3]);
  close(maxima.toArray()[0] as number, sig(1));
  close(maxima.toArray()[1] as number, sig(2));
  close(loss.toArray()[0] as number, 1 - sig(1));
  // states 1…4 (the default, SD 1.x's 1:-1): eos and pad win by 10 per × 100 → word 1's max e¹ / (e¹ + 1 + 2e¹⁰)
  const all = attendAndExciteLoss(map, [[[1], [2]]]).maxima.toArray()[0] as number;
  close(all, Math.E / (Math.E + 1 + 2 * Math.exp(10)), 1e-7);
});

const sd = StableDiffusion.fromPretrained(goldenDir());

test('a guidance step lowers the loss (tiny-sd-a, 8×8 maps)', () => {
  const prompts = ['a red circle and a blue square'];
  const excite = new AttendAndExcite({
    tokenizer: sd.tokenizer,
    prompts,
    subjects: ['circle', 'square'],
    attentionRes: 8,
    thresholds: new Map(),
    maxIterToAlter: 1,
  });
  const tokens = [
    [
      sd.tokenizer.tokenIndices(prompts[0] as string, 'circle'),
      sd.tokenizer.tokenIndices(prompts[0] as string, 'square'),
    ],
  ];
  let before = 0;
  let after = 0;
  const probe: LatentGuidance = {
    name: 'probe',
    guide(step) {
      if (step.step !== 0) return undefined;
      const rec = new CrossAttentionRecorder((c) => c.size?.[0] === 8);
      const lossAt = (x: Tensor) =>
        lossAndGradient(
          step,
          x,
          rec,
          (m) => attendAndExciteLoss(meanMapAt(m, 8, 't'), tokens, gaussianSmoothingMatrix(8)).loss,
        ).losses[0] as number;
      before = lossAt(step.latents);
      const x = excite.guide(step) as Tensor;
      after = lossAt(x);
      return x;
    },
  };
  sd.generate({ prompt: prompts, steps: 2, seed: 1, guidanceScale: 3, guidance: [probe] });
  assert.ok(before > 0, `a loss to lower (${before})`);
  assert.ok(after < before, `loss ${before} → ${after}`);
  assert.equal(excite.losses.length, 1, 'only step 0 altered');
});

test('errors before anything is generated: a subject not in the prompt, no subject noun, wrong prompt count', () => {
  assert.throws(
    () => new AttendAndExcite({ tokenizer: sd.tokenizer, prompts: 'a red circle', subjects: ['square'] }),
    (e: Error) => e.message.startsWith('Attend-and-Excite') && e.message.includes('"square"'),
  );
  assert.throws(() => nounSubjects(sd.tokenizer, 'a red thing', ['circle', 'square']), /no subject noun/);
  assert.deepEqual(
    nounSubjects(sd.tokenizer, 'a red circle and a blue square', ['circle', 'square']),
    [2, 6],
  );
  assert.throws(
    () =>
      new AttendAndExcite({
        tokenizer: sd.tokenizer,
        prompts: ['a circle', 'a square'],
        subjects: [['circle']],
      }),
    /1 lists for 2 prompts/,
  );
});
