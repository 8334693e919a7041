// TokenCompose's grounding terms: values worked by hand, gradients against finite differences (the object
// words the Shapes data grounds are tested in test/lab/train/train-data.test.ts).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttentionCall } from '../../../src/attention/call.js';
import { blockMask, TokenGrounding } from '../../../src/methods/map/token-grounding.js';
import { grad, Tensor } from '../../../src/tensor/index.js';

const call = (size: [number, number]): AttentionCall => ({
  path: `up_blocks.0.attentions.0.transformer_blocks.0.attn2@${size.join('x')}`,
  kind: 'cross',
  place: 'up',
  index: 0,
  step: 0,
  numSteps: 1,
  timestep: 999,
  batch: { guidance: ['cond'], prompt: [0] },
  size,
  heads: 2,
  headDim: 4,
  queryTokens: size[0] * size[1],
  keyTokens: 3,
});

/** A 4 × 4 mask with the given pixels set. */
function mask4(pixels: [number, number][]): Float32Array {
  const m = new Float32Array(16);
  for (const [y, x] of pixels) m[y * 4 + x] = 1;
  return m;
}

/** (1, 2, 4, 3) probabilities whose head average gives token 1 the map `col` over the 4 queries. */
function probs(col: number[]): Tensor {
  const d = new Float32Array(2 * 4 * 3);
  for (let h = 0; h < 2; h++) {
    for (let q = 0; q < 4; q++) {
      // the two heads differ but average to col[q]; the rest of each row goes to tokens 0 and 2
      const v = (col[q] as number) + (h === 0 ? 0.05 : -0.05);
      d[(h * 4 + q) * 3 + 1] = v;
      d[(h * 4 + q) * 3 + 0] = (1 - v) / 2;
      d[(h * 4 + q) * 3 + 2] = (1 - v) / 2;
    }
  }
  return new Tensor(d, [1, 2, 4, 3]);
}

test('blockMask: a query is inside when any pixel of its block is', () => {
  assert.deepEqual([...blockMask(mask4([[1, 1]]), 4, 4, 2, 2)], [1, 0, 0, 0]);
  assert.deepEqual(
    [
      ...blockMask(
        mask4([
          [0, 3],
          [3, 0],
        ]),
        4,
        4,
        2,
        2,
      ),
    ],
    [0, 1, 1, 0],
  );
  assert.deepEqual([...blockMask(mask4([[2, 2]]), 4, 4, 1, 1)], [1]);
  assert.throws(() => blockMask(mask4([]), 4, 4, 3, 3), /does not divide/);
});

test('TokenGrounding: token and pixel losses of one layer, worked by hand', () => {
  const g = new TokenGrounding();
  const col = [0.5, 0.3, 0.1, 0.1];
  g.map(call([2, 2]), probs(col));
  // the word is token 1; its object covers the top-left block only
  const { token, pixel } = g.loss([[{ tokens: [1], mask: mask4([[0, 0]]) }]], 4, 4);
  const inside = 0.5 / (0.5 + 0.3 + 0.1 + 0.1);
  assert.ok(Math.abs(token.item() - (1 - inside) ** 2) < 1e-6, `token ${token.item()}`);
  const bce = -(Math.log(0.5) + Math.log(1 - 0.3) + Math.log(1 - 0.1) + Math.log(1 - 0.1)) / 4;
  assert.ok(Math.abs(pixel.item() - bce) < 1e-5, `pixel ${pixel.item()} vs ${bce}`);
});

test('TokenGrounding: a word of two tokens sums their maps; layers average; rows without words add nothing', () => {
  const g = new TokenGrounding();
  // layer 1 (2 × 2) and layer 2 (1 × 1); rows: a word of tokens 1 and 2, and a dropped caption
  const p1 = new Tensor(
    Float32Array.from({ length: 2 * 2 * 4 * 3 }, (_, i) => {
      const [b, t] = [Math.floor(i / 24), i % 3];
      const q = Math.floor(i / 3) % 4;
      if (b === 1) return 1 / 3;
      return t === 0 ? 0.2 : q === 3 ? 0.4 : 0.4; // tokens 1 and 2: 0.4 each everywhere
    }),
    [2, 2, 4, 3],
  );
  const p2 = Tensor.from(
    Array.from({ length: 2 * 2 * 1 * 3 }, () => 1 / 3),
    [2, 2, 1, 3],
  );
  g.map(call([2, 2]), p1);
  g.map(call([1, 1]), p2);
  assert.equal(g.layerCount, 2);
  const { token, pixel } = g.loss([[{ tokens: [1, 2], mask: mask4([[3, 3]]) }], []], 4, 4);
  // layer 1: the word's map is 0.8 on every query, one query of four inside → (1 − 1/4)²;
  // layer 2: one query, inside → 0
  assert.ok(Math.abs(token.item() - (0.75 ** 2 + 0) / 2) < 1e-6, `token ${token.item()}`);
  // pixel, per resolution: 2 × 2 → mean of −log 0.8 (inside) and 3 × −log 0.2; 1 × 1 → −log(2/3)
  const r2 = -(Math.log(0.8) + 3 * Math.log(0.2)) / 4;
  const r1 = -Math.log(2 / 3);
  assert.ok(Math.abs(pixel.item() - (r2 + r1) / 2) < 1e-5, `pixel ${pixel.item()}`);
  g.reset();
  assert.equal(g.layerCount, 0);
  assert.throws(() => g.loss([[]], 4, 4), /no cross-attention layer/);
});

test('TokenGrounding: a word weight multiplies its terms; the average is still over the words', () => {
  // two rows, one word each, on the same map: row 0's object is the top-left block, row 1's the bottom-right
  const col = [0.5, 0.3, 0.1, 0.1];
  const one = probs(col).data as Float32Array;
  const both = new Tensor(new Float32Array([...one, ...one]), [2, 2, 4, 3]);
  const run = (w: number) => {
    const g = new TokenGrounding();
    g.map({ ...call([2, 2]), batch: { guidance: ['cond', 'cond'], prompt: [0, 1] } }, both);
    return g.loss(
      [[{ tokens: [1], mask: mask4([[0, 0]]) }], [{ tokens: [1], mask: mask4([[3, 3]]), weight: w }]],
      4,
      4,
    );
  };
  const [t0, t1] = [(1 - 0.5) ** 2, (1 - 0.1) ** 2];
  const [p0, p1] = [
    -(Math.log(0.5) + Math.log(0.7) + 2 * Math.log(0.9)) / 4,
    -(Math.log(0.5) + Math.log(0.7) + Math.log(0.9) + Math.log(0.1)) / 4,
  ];
  for (const w of [1, 3, 0]) {
    const { token, pixel } = run(w);
    assert.ok(Math.abs(token.item() - (t0 + w * t1) / 2) < 1e-6, `weight ${w}: token ${token.item()}`);
    assert.ok(Math.abs(pixel.item() - (p0 + w * p1) / 2) < 1e-5, `weight ${w}: pixel ${pixel.item()}`);
  }
});

test('TokenGrounding: gradients of both terms match finite differences through the softmax', () => {
  const logits = Tensor.from(
    Array.from({ length: 1 * 2 * 4 * 3 }, (_, i) => Math.sin(i * 1.7) * 2),
    [1, 2, 4, 3],
  );
  const words = [
    [
      {
        tokens: [1],
        mask: mask4([
          [0, 0],
          [0, 1],
          [2, 3],
        ]),
      },
    ],
  ];
  const f = (s: Tensor) => {
    const g = new TokenGrounding();
    g.map(call([2, 2]), s.softmax(-1));
    const { token, pixel } = g.loss(words, 4, 4);
    return token.add(pixel.mul(0.5));
  };
  const [dl] = grad(f)(logits);
  assert.ok(dl);
  const analytic = dl.toArray() as number[];
  const base = logits.toArray() as number[];
  const eps = 1e-2;
  for (let i = 0; i < base.length; i++) {
    const at = (d: number) =>
      f(
        Tensor.from(
          base.map((v, j) => (j === i ? v + d : v)),
          logits.shape,
        ),
      ).item();
    const fd = (at(eps) - at(-eps)) / (2 * eps);
    const an = analytic[i] as number;
    assert.ok(Math.abs(an - fd) < 2e-3 + 2e-2 * Math.abs(fd), `logit ${i}: ${an} vs ${fd}`);
  }
});

test('TokenGrounding: bad tokens and batch sizes are errors', () => {
  const g = new TokenGrounding();
  g.map(call([2, 2]), probs([0.25, 0.25, 0.25, 0.25]));
  assert.throws(() => g.loss([[{ tokens: [3], mask: mask4([]) }]], 4, 4), /outside the 3 text tokens/);
  assert.throws(() => g.loss([[], []], 4, 4), /2 rows, batch of 1/);
  assert.equal(g.loss([[]], 4, 4).token.item(), 0);
});
