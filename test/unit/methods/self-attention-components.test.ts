// P2P's aggregate_attention and self-attention components on hand-made maps.
//
// A = 3·e₁·v₁ᵀ + 1·e₂·v₂ᵀ with v₁ = (1, −1, 1, −1)/2 and v₂ = (1, 1, −1, −1)/2: its rows already have mean 0,
// so its right singular vectors are v₁ (σ = 3) then v₂ (σ = 1); min–max normalised, v₁ is a checkerboard
// (1, 0, 1, 0) and v₂ two bands (1, 1, 0, 0), up to sign.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StoredMap } from '../../../src/methods/map/attention-store.js';
import {
  aggregateAttention,
  selfAttentionComponents,
} from '../../../src/methods/map/self-attention-components.js';
import { Tensor } from '../../../src/tensor/index.js';
import { assertClose } from '../../helpers/tolerance.js';

function selfMap(place: 'down' | 'mid' | 'up', heads: number[][], prompts = [0]): StoredMap {
  return {
    path: `${place}.attn1`,
    place,
    kind: 'self',
    index: 0,
    size: [2, 2],
    map: Tensor.from(heads.flat(), [prompts.length, heads.length / prompts.length, 4, 4]),
    prompts,
    guidance: prompts.map(() => 'cond'),
    steps: 1,
  };
}

const v1 = [0.5, -0.5, 0.5, -0.5];
const v2 = [0.5, 0.5, -0.5, -0.5];
const A = [...v1.map((x) => 3 * x), ...v2, 0, 0, 0, 0, 0, 0, 0, 0];

test('aggregate_attention averages the chosen places over layers and heads of the selected prompt', () => {
  const up = selfMap('up', [A, A.map((x) => 3 * x)]); // two heads: A and 3A
  const mid = selfMap('mid', [A.map(() => 100)]);
  const down = selfMap('down', [A.map(() => 7), A], [0, 1]); // prompt 0's row is 7s, prompt 1's is A
  // from up and down (the default): (A + 3A + 7) / 3 heads; mid is left out
  const p0 = aggregateAttention([up, mid, down], { res: 2, kind: 'self' });
  assert.deepEqual(p0.shape, [2, 2, 4]);
  assertClose(
    p0.reshape([16]),
    A.map((x) => (4 * x + 7) / 3),
    { atol: 1e-6, rtol: 0 },
  );
  assertClose(aggregateAttention([down], { res: 2, kind: 'self', select: 1 }).reshape([16]), A, {
    atol: 0,
    rtol: 0,
  });
  assertClose(
    aggregateAttention([up, mid], { res: 2, kind: 'self', fromWhere: ['mid'] }).reshape([16]),
    mid.map.reshape([16]),
    {
      atol: 0,
      rtol: 0,
    },
  );
  assert.throws(
    () => aggregateAttention([up], { res: 2, kind: 'self', select: 1 }),
    /no conditional row of prompt 1/,
  );
  assert.throws(() => aggregateAttention([up], { res: 4, kind: 'self' }), /no self-attention maps of side 4/);
});

test('the components are the right singular vectors by decreasing singular value, normalised to [0, 1]', () => {
  const [c1, c2] = selfAttentionComponents([selfMap('up', [A])], { res: 2, maxCom: 2 });
  const is = (t: Tensor, a: number[]) => t.toArray().every((v, i) => Math.abs(v - a[i]!) < 1e-6);
  assert.ok(is(c1!, [1, 0, 1, 0]) || is(c1!, [0, 1, 0, 1]), `first component ${c1!.toArray()}`);
  assert.ok(is(c2!, [1, 1, 0, 0]) || is(c2!, [0, 0, 1, 1]), `second component ${c2!.toArray()}`);
});
