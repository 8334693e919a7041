// AttentionStore: reproduces the golden maps of one UNet forward, averages over steps, keeps only the rows and
// layers it is asked for.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AttentionCall,
  type AttentionContext,
  guidedBatch,
  plainBatch,
} from '../../../src/attention/index.js';
import { AttentionStore } from '../../../src/methods/map/attention-store.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { golden, goldenKeys, goldenUNet } from '../../helpers/golden.js';
import { assertClose } from '../../helpers/tolerance.js';

const unet = goldenUNet();
const t = golden('unet.in.timestep').item();
const sample = golden('unet.in.sample');
const text = golden('unet.in.encoder_hidden_states');

function forward(store: AttentionStore, step: number, numSteps: number): void {
  const ctx: AttentionContext = { controllers: [store], step, numSteps, timestep: t, batch: plainBatch(2) };
  noGrad(() => unet.forward(sample, t, text, { ctx }));
}

test('a store-only controller reproduces every golden map; averaging two equal steps changes nothing', () => {
  const store = new AttentionStore({ maxTokens: Number.POSITIVE_INFINITY });
  forward(store, 0, 2);
  const once = store.maps();
  forward(store, 1, 2);
  const twice = store.maps();
  const keys = goldenKeys('unet.attn_probs.');
  assert.equal(once.length, keys.length);
  for (const k of keys) {
    const ref = golden(k);
    const path = k.slice('unet.attn_probs.'.length);
    for (const maps of [once, twice]) {
      const m = maps.find((x) => x.path === path);
      assert.ok(m, `no map stored for ${path}`);
      // (rows, heads, Tq, Tk) → (rows·heads, Tq, Tk), diffusers' layout
      assertClose(m.map.reshape(ref.shape), ref, { atol: 1e-4, rtol: 0, label: k });
    }
  }
  assert.equal(twice[0]!.steps, 2);
  const avg = store.averageAttention();
  assert.deepEqual(Object.fromEntries(Object.entries(avg).map(([k, v]) => [k, v.length])), {
    down_cross: 2,
    mid_cross: 1,
    up_cross: 3,
    down_self: 2,
    mid_self: 1,
    up_self: 3,
  });
});

function call(over: Partial<AttentionCall>): AttentionCall {
  return {
    path: 'up_blocks.1.attentions.0.transformer_blocks.0.attn2',
    kind: 'cross',
    place: 'up',
    index: 3,
    step: 0,
    numSteps: 3,
    timestep: 999,
    batch: guidedBatch(2),
    size: [2, 2],
    heads: 1,
    headDim: 8,
    queryTokens: 4,
    keyTokens: 3,
    ...over,
  };
}

test('the store averages over steps, keeps only conditional rows in prompt order, and skips large maps', () => {
  const store = new AttentionStore({ maxTokens: 4 });
  // rows: uncond p0, uncond p1, cond p0, cond p1; row r filled with r + step
  const at = (step: number) =>
    Tensor.from(
      Array.from({ length: 4 * 12 }, (_, i) => Math.floor(i / 12) + step),
      [4, 1, 4, 3],
    );
  for (const step of [0, 1, 2]) {
    const c = call({ step });
    assert.ok(store.appliesTo(c));
    store.map(c, at(step));
  }
  const [m] = store.maps();
  assert.deepEqual(m!.prompts, [0, 1]);
  assert.deepEqual(m!.map.shape, [2, 1, 4, 3]);
  // cond rows are rows 2 and 3: (2 + 0 + 2 + 1 + 2 + 2) / 3 = 3 and 4
  assert.deepEqual([...new Set(m!.map.slice(0, 0, 1).toArray())], [3]);
  assert.deepEqual([...new Set(m!.map.slice(0, 1, 2).toArray())], [4]);
  assert.equal(
    store.appliesTo(call({ queryTokens: 16, size: [4, 4] })),
    false,
    'maps above maxTokens are skipped',
  );
  assert.equal(store.appliesTo(call({ place: 'text' })), false, 'the text encoder is not stored');
  assert.throws(() => store.map(call({ step: 2 }), at(2)), /called twice in step 2/);
  const windowed = new AttentionStore({ steps: [1, 2], kinds: ['self'] });
  assert.equal(windowed.appliesTo(call({ step: 0, kind: 'self' })), false);
  assert.equal(windowed.appliesTo(call({ step: 1, kind: 'self' })), true);
  assert.equal(
    windowed.appliesTo(call({ step: 1 })),
    false,
    'cross maps are not recorded by a self-only store',
  );
});
