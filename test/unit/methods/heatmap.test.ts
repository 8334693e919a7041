// DAAM aggregation, upsampling and attention masks against hand-worked numbers.
//
// Bicubic (A = −0.75, half-pixel) from 2 to 4 samples reads the source at −0.25, 0.25, 0.75, 1.25; the kernel
// weights at distances 0.25, 0.75, 1.25, 1.75 are 0.87890625, 0.26171875, −0.10546875, −0.03515625, so the
// signal [1, 0] becomes [1.10546875, 0.7734375, 0.2265625, −0.10546875] (edge samples clamp to the border).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { maskIoU } from '../../../src/lab/shapes/masks.js';
import { attentionMask, otsuThreshold } from '../../../src/methods/application/attention-mask.js';
import type { StoredMap } from '../../../src/methods/map/attention-store.js';
import { aggregateCrossAttention, expandAs, GlobalHeatMap } from '../../../src/methods/map/heatmap.js';
import { resize2d, resizeMatrix } from '../../../src/methods/map/upsample.js';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

const CUBIC_1D = [1.10546875, 0.7734375, 0.2265625, -0.10546875];
const exact = { atol: 1e-6, rtol: 0 };

test('resize matrices: bicubic and bilinear 2 → 4 by hand, nearest 4 → 2', () => {
  // row i: the weights of the two source samples for output i
  const cubic = [
    1.10546875, -0.10546875, 0.7734375, 0.2265625, 0.2265625, 0.7734375, -0.10546875, 1.10546875,
  ];
  assertClose(resizeMatrix(2, 4, 'bicubic'), cubic, exact);
  assertClose(resizeMatrix(2, 4, 'bilinear'), [1, 0, 0.75, 0.25, 0.25, 0.75, 0, 1], exact);
  assertClose(resizeMatrix(4, 2, 'nearest'), [1, 0, 0, 0, 0, 0, 1, 0], exact);
  const up = resize2d(Tensor.from([1, 0, 0, 0], [2, 2]), [4, 4]);
  assertClose(up, { shape: [4, 4], data: CUBIC_1D.flatMap((a) => CUBIC_1D.map((b) => a * b)) }, exact);
});

/** A stored map of one prompt row: per head, per token, an (h, w) map given row by row. */
function stored(path: string, size: number, heads: number[][][]): StoredMap {
  const tk = heads[0]!.length;
  const data: number[] = [];
  for (const tokens of heads)
    for (let q = 0; q < size * size; q++) for (let k = 0; k < tk; k++) data.push(tokens[k]![q]!);
  return {
    path,
    place: 'up',
    kind: 'cross',
    index: 0,
    size: [size, size],
    map: Tensor.from(data, [1, heads.length, size * size, tk]),
    prompts: [0],
    guidance: ['cond'],
    steps: 1,
  };
}

test('DAAM aggregation: each head upsampled bicubically, clamped at 0, averaged over layers and heads', () => {
  const a = stored('a', 2, [
    [
      [1, 0, 0, 0],
      [0, 0, 0, 0],
    ],
  ]); // 1 head, 2 tokens, 2×2
  const b = stored('b', 4, [
    [new Array(16).fill(0.5), new Array(16).fill(1)],
    [new Array(16).fill(0.25), new Array(16).fill(0)],
  ]); // 2 heads, 4×4 already at latent size
  const heat = aggregateCrossAttention([a, b], { latentSize: [4, 4] });
  assert.deepEqual(heat.shape, [2, 4, 4]);
  // token 0: (clamp(bicubic(a)) + 0.5 + 0.25) / 3 heads
  const t0 = CUBIC_1D.flatMap((x) => CUBIC_1D.map((y) => (Math.max(x * y, 0) + 0.75) / 3));
  assertClose(heat.slice(0, 0, 1), { shape: [1, 4, 4], data: t0 }, exact);
  assertClose(heat.slice(0, 0, 1).toArray()[0]!, (1.2220611572265625 + 0.75) / 3, exact);
  assertClose(heat.slice(0, 0, 1).toArray()[3]!, 0.75 / 3, exact); // (0, 3): 1.105·(−0.105) < 0 → 0
  // token 1: (0 + 1 + 0) / 3
  assertClose(heat.slice(0, 1, 2), { shape: [1, 4, 4], data: new Array(16).fill(1 / 3) }, exact);
  // resolutions and heads select what is averaged
  const only4 = aggregateCrossAttention([a, b], { latentSize: [4, 4], resolutions: [4], heads: [1] });
  assertClose(only4.slice(0, 0, 1), { shape: [1, 4, 4], data: new Array(16).fill(0.25) }, exact);
  assert.throws(() => aggregateCrossAttention([a], { latentSize: [4, 4], resolutions: [8] }), /holds 2×2/);
});

test('word maps average their tokens; DAAM normalisation divides by the sum over the words', () => {
  const tokenizer = CLIPTokenizer.fromDirectorySync(join(goldenDir(), 'tokenizer'));
  // "a crimson circle": bos 0, a 1, crimson 2..6, circle 7, eos 8; token k's map is the constant k + 1
  const maps = Tensor.from(
    Array.from({ length: 16 * 4 }, (_, i) => Math.floor(i / 4) + 1),
    [16, 2, 2],
  );
  const g = new GlobalHeatMap(tokenizer, 'a crimson circle', maps);
  assert.equal(g.numTokens, 7);
  assertClose(g.wordHeatMap('crimson'), new Array(4).fill((3 + 4 + 5 + 6 + 7) / 5), exact);
  assertClose(g.wordHeatMap('circle'), new Array(4).fill(8), exact);
  assert.deepEqual(
    g.wordHeatMaps().map((w) => w.word),
    ['a', 'crimson', 'circle'],
  );
  // words are positions 1..7 with values 2..8: sum 35
  assertClose(g.normalized().token(7), new Array(4).fill(8 / (35 + 1e-6)), exact);
  assertClose(expandAs(Tensor.from([0, 2, 4, 6], [2, 2]), [2, 2]), [0, 1 / 3, 2 / 3, 1], {
    atol: 1e-6,
    rtol: 0,
  });
});

test('a word the tokenizer cut off a long prompt has no map: left out of the word list, named when asked', () => {
  const tokenizer = CLIPTokenizer.fromDirectorySync(join(goldenDir(), 'tokenizer'));
  // 16 tokens: bos, 14 ids (a, crimson ×5, circle, and, a, crimson ×5), eos — "square" is cut
  const prompt = 'a crimson circle and a crimson square';
  const g = new GlobalHeatMap(tokenizer, prompt, Tensor.zeros([16, 2, 2]));
  assert.deepEqual(
    g.wordHeatMaps().map((w) => w.word),
    ['a', 'crimson', 'circle', 'and', 'a', 'crimson'],
  );
  assert.throws(() => g.wordHeatMap('square'), /"square" lies past the first 16 tokens of the prompt/);
  assert.ok(g.wordHeatMaps().every((w) => w.map.toArray().every(Number.isFinite)));
});

test('attention masks: normalisation, fixed and Otsu thresholds, pooling, IoU', () => {
  const map = Tensor.from([0, 1, 2, 10, 0, 1, 8, 9, 0], [3, 3]);
  // min–max: values / 10; > 0.4 keeps 10, 8, 9
  assert.deepEqual(attentionMask(map).toArray(), [0, 0, 0, 1, 0, 0, 1, 1, 0]);
  // by the maximum with 3×3 pooling: every pixel next to the 10 (row 1, col 0), the 8 or the 9 is hot; the top
  // right corner sees only 1, 2, 0, 1 → 0.2 < 0.3
  assert.deepEqual(
    attentionMask(map, { normalize: 'max', pool: true, threshold: 0.3 }).toArray(),
    [1, 1, 0, 1, 1, 1, 1, 1, 1],
  );
  const bimodal = [0.1, 0.12, 0.15, 0.11, 0.8, 0.85, 0.9];
  const th = otsuThreshold(bimodal);
  assert.ok(th > 0.15 && th <= 0.8, `Otsu threshold ${th} should separate the two groups`);
  const m = attentionMask(map, { threshold: 'otsu' });
  assert.deepEqual(m.toArray(), [0, 0, 0, 1, 0, 0, 1, 1, 0]);
  assert.equal(maskIoU(m, Tensor.from([0, 0, 0, 1, 1, 0, 1, 0, 0], [3, 3])), 2 / 4);
  assert.equal(attentionMask(map, { size: [6, 6] }).shape.join('×'), '6×6');
});
