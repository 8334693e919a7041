// The hook levels on the golden UNet: a store reproduces diffusers' maps, identity hooks change no bit,
// the fast function equals the reference, and conflicting functions are refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type AttentionContext,
  type AttentionFunction,
  type Controller,
  flashAttention,
  plainBatch,
  softmaxAttention,
} from '../../../src/attention/index.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { golden, goldenKeys, goldenUNet } from '../../helpers/golden.js';
import { assertClose, sameBits } from '../../helpers/tolerance.js';

const unet = goldenUNet();
const t = golden('unet.in.timestep').item();
const sample = golden('unet.in.sample');
const text = golden('unet.in.encoder_hidden_states');

function run(controllers: Controller[]): Tensor {
  const ctx: AttentionContext = { controllers, step: 0, numSteps: 1, timestep: t, batch: plainBatch(2) };
  return noGrad(() => unet.forward(sample, t, text, { ctx }));
}

test('a store-only controller reproduces every golden attention map (1e-4)', () => {
  const maps = new Map<string, Tensor>();
  const store: Controller = {
    name: 'store',
    map: (call, p) => {
      maps.set(call.path, p);
      return p;
    },
  };
  run([store]);
  const keys = goldenKeys('unet.attn_probs.');
  assert.equal(keys.length, 12);
  for (const k of keys) {
    const ref = golden(k);
    const p = maps.get(k.slice('unet.attn_probs.'.length));
    assert.ok(p, `no map recorded for ${k}`);
    // (B, heads, Tq, Tk) → (B·heads, Tq, Tk): row b·heads + h, as diffusers lays them out
    assertClose(p.reshape(ref.shape), ref, { atol: 1e-4, rtol: 0, label: k });
  }
});

test('a controller that only records maps changes no output bit', () => {
  const plain = run([]);
  const reference = run([{ name: 'force-softmax', fn: () => softmaxAttention }]);
  const recorded = run([{ name: 'recorder', map: (_c, p) => p, scores: (_c, s) => s }]);
  assert.ok(sameBits(reference, recorded), 'recording maps changed the output');
  // and the fast path (no probabilities anywhere) agrees with the reference
  assertClose(plain, reference, { atol: 1e-5, rtol: 0 });
});

test('identity hooks at every level change no output bit', () => {
  const base = run([{ name: 'softmax', fn: () => softmaxAttention }]);
  const identity: Controller = {
    name: 'identity',
    weights: (_c, w) => w,
    features: (_c, f) => f,
    scores: (_c, s) => s,
    map: (_c, p) => p,
    output: (_c, o) => o,
  };
  assert.ok(sameBits(base, run([identity])));
});

test('every call carries its layer, kind, place, step and batch roles', () => {
  const calls: string[] = [];
  run([
    {
      name: 'spy',
      output: (c, o) => {
        calls.push(`${c.path}|${c.kind}|${c.place}|${c.index}|${c.size?.join('x')}|${c.heads}x${c.headDim}`);
        assert.deepEqual(c.batch.guidance, ['cond', 'cond']);
        assert.equal(c.timestep, t);
        return o;
      },
    },
  ]);
  assert.equal(calls.length, 12);
  assert.equal(calls[0], 'down_blocks.1.attentions.0.transformer_blocks.0.attn1|self|down|0|8x8|8x8');
  assert.equal(calls[1], 'down_blocks.1.attentions.0.transformer_blocks.0.attn2|cross|down|0|8x8|8x8');
  assert.equal(calls[11], 'up_blocks.0.attentions.2.transformer_blocks.0.attn2|cross|up|5|8x8|8x8');
});

test('appliesTo limits a hook to the layers it selects', () => {
  const seen = new Set<string>();
  run([
    {
      name: 'cross-only',
      appliesTo: (c) => c.kind === 'cross' && c.place === 'mid',
      map: (c, p) => {
        seen.add(c.path);
        return p;
      },
    },
  ]);
  assert.deepEqual([...seen], ['mid_block.attentions.0.transformer_blocks.0.attn2']);
});

test('a map hook changes the output (the hook really acts)', () => {
  const base = run([{ name: 'softmax', fn: () => softmaxAttention }]);
  const uniform = run([
    {
      name: 'uniform',
      appliesTo: (c) => c.kind === 'cross',
      map: (_c, p) => Tensor.full(p.shape, 1 / (p.shape[3] as number)),
    },
  ]);
  assert.ok(!sameBits(base, uniform));
});

test('two attention functions on one layer are refused with a clear message', () => {
  const custom: AttentionFunction = { ...softmaxAttention, name: 'custom' };
  assert.throws(
    () =>
      run([
        { name: 'A', fn: () => flashAttention },
        { name: 'B', fn: () => custom },
      ]),
    /two attention functions requested, 'flash' by A and 'custom' by B/,
  );
  assert.throws(
    () =>
      run([
        { name: 'reader', map: (_c, p) => p },
        { name: 'fast', fn: () => flashAttention },
      ]),
    /reader reads attention probabilities but fast computes attention with 'flash'/,
  );
});

test('flash attention equals the softmax reference within 1e-5 on a large self-attention', () => {
  const [b, h, n, d] = [1, 4, 512, 40];
  const rnd = (k: number) =>
    Tensor.from(
      Array.from({ length: b * h * n * d }, (_, i) => Math.sin(i * 0.37 + k)),
      [b, h, n, d],
    );
  const a = { q: rnd(1), k: rnd(2), v: rnd(3), scale: 1 / Math.sqrt(d) };
  assertClose(flashAttention.run(a), softmaxAttention.run(a), { atol: 1e-5, rtol: 0 });
});
