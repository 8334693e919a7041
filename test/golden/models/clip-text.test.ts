// CLIPTextModel against transformers' goldens (tiny-sd-a), strict loading, config errors, hooks, clip skip.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { AttentionCall } from '../../../src/attention/call.js';
import type { AttentionContext, Controller } from '../../../src/attention/hooks.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { CLIPTextModel, clipTextMapKey } from '../../../src/models/clip-text.js';
import { parseCLIPTextConfig } from '../../../src/models/clip-text-config.js';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';

const DIR = join(goldenDir(), 'text_encoder');
const goldens = readSafetensors(join(goldenDir(), 'goldens.safetensors'), {
  names: ['text.in.ids', 'text.out.last_hidden_state'],
}).tensors;
const ids = goldens.get('text.in.ids') as Tensor;
const expected = goldens.get('text.out.last_hidden_state') as Tensor;
const model = CLIPTextModel.fromPretrained(DIR);
const configJson = JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8')) as Record<string, unknown>;

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  let worst = 0;
  for (let i = 0; i < a.size; i++)
    worst = Math.max(worst, Math.abs((a.data[i] as number) - (b.data[i] as number)));
  return worst;
}

function sameBits(a: Tensor, b: Tensor): boolean {
  const x = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  return a.dtype === b.dtype && x.length === y.length && x.every((v, i) => v === y[i]);
}

function context(controllers: Controller[]): AttentionContext {
  return {
    controllers,
    step: 0,
    numSteps: 1,
    timestep: 0,
    batch: { guidance: ['cond', 'cond'], prompt: [0, 1] },
  };
}

describe('CLIPTextModel', () => {
  test('matches transformers on the tiny-sd-a goldens (max abs error ≤ 1e-4)', () => {
    const out = model.forward(ids);
    const err = maxAbsDiff(out.lastHiddenState, expected);
    console.log(`  clip-text parity: max abs error ${err.toExponential(3)} over ${expected.size} values`);
    assert.ok(err <= 1e-4, `max abs error ${err} > 1e-4`);
    // int64 ids give the same result
    const ids64 = Tensor.int64(ids.toArray(), ids.shape);
    assert.ok(sameBits(model.forward(ids64).lastHiddenState, out.lastHiddenState));
  });

  test('pooled is the final state at the first end-of-text token', () => {
    const row = [998, 5, 17, 999, 999, 999];
    const out = model.forward(Tensor.int64([...row, 998, 999, 999, 999, 999, 999], [2, 6]));
    const c = model.config.hiddenSize;
    const at = (b: number, t: number) =>
      Array.from((out.lastHiddenState.data as Float32Array).subarray((b * 6 + t) * c, (b * 6 + t + 1) * c));
    assert.deepEqual(out.pooled.shape, [2, c]);
    assert.deepEqual(out.pooled.toArray(), [...at(0, 3), ...at(1, 1)]);
  });

  test('a wrongly shaped weight is an error naming the key', () => {
    const tensors = readSafetensors(join(DIR, 'model.safetensors')).tensors;
    const key = 'text_model.encoder.layers.1.mlp.fc1.weight';
    tensors.set(key, Tensor.zeros([128, 31]));
    const fresh = new CLIPTextModel(model.config);
    assert.throws(
      () => fresh.load(tensors),
      (e: Error) => e.message.includes(key) && /shape/.test(e.message),
    );
  });

  test('missing and unexpected weights are errors naming them; position_ids is dropped', () => {
    const tensors = readSafetensors(join(DIR, 'model.safetensors')).tensors;
    tensors.set('text_model.embeddings.position_ids', Tensor.int64([...Array(16).keys()], [1, 16]));
    new CLIPTextModel(model.config).load(tensors);
    assert.deepEqual(clipTextMapKey('text_model.embeddings.position_ids', Tensor.zeros([1])), []);
    tensors.delete('text_model.final_layer_norm.bias');
    tensors.set('text_projection.weight', Tensor.zeros([32, 32]));
    assert.throws(
      () => new CLIPTextModel(model.config).load(tensors),
      (e: Error) =>
        e.message.includes('text_model.final_layer_norm.bias') &&
        e.message.includes('text_projection.weight'),
    );
  });

  test('an unsupported config value is an error naming the key', () => {
    assert.throws(() => parseCLIPTextConfig({ ...configJson, hidden_act: 'relu' }), /'hidden_act'.*"relu"/);
    assert.throws(() => parseCLIPTextConfig({ ...configJson, model_type: 'bert' }), /'model_type'/);
    assert.throws(
      () => parseCLIPTextConfig({ ...configJson, num_attention_heads: 5 }),
      /'num_attention_heads'/,
    );
    assert.throws(() => parseCLIPTextConfig({ ...configJson, hidden_size: '32' }), /'hidden_size'/);
    // a full CLIP config is read through its text_config
    const nested = parseCLIPTextConfig({ model_type: 'clip', text_config: configJson });
    assert.deepEqual(nested, model.config);
    assert.equal(model.config.hiddenAct, 'quick_gelu');
    assert.equal(model.config.eosTokenId, 999);
  });

  test('every attention layer is seen by hooks as text self-attention, with a causal map', () => {
    const calls: AttentionCall[] = [];
    const probs: Tensor[] = [];
    const recorder: Controller = {
      name: 'recorder',
      map(call, p) {
        calls.push(call);
        probs.push(p);
        return p;
      },
    };
    model.forward(ids, { ctx: context([recorder]) });
    assert.deepEqual(
      calls.map((c) => [c.path, c.kind, c.place, c.index, c.heads, c.queryTokens]),
      [0, 1, 2].map((i) => [`text_model.encoder.layers.${i}.self_attn`, 'self', 'text', i, 4, 16]),
    );
    const p = probs[0] as Tensor; // (B, heads, T, T)
    assert.deepEqual(p.shape, [2, 4, 16, 16]);
    for (let r = 0; r < 2 * 4 * 16; r++) {
      const q = r % 16;
      for (let k = q + 1; k < 16; k++)
        assert.equal(p.data[r * 16 + k], 0, `row ${r} attends to future token ${k}`);
    }
  });

  test('an identity controller changes no output bit', () => {
    const plain = model.forward(ids, { outputHiddenStates: true });
    const identity: Controller = {
      name: 'identity',
      weights: (_, w) => w,
      features: (_, f) => f,
      scores: (_, s) => s,
      map: (_, p) => p,
      output: (_, o) => o,
    };
    const passThrough: Controller = { name: 'pass-through', weights: (_, w) => w, output: (_, o) => o };
    for (const c of [identity, passThrough]) {
      const hooked = model.forward(ids, { ctx: context([c]), outputHiddenStates: true });
      assert.ok(
        sameBits(hooked.lastHiddenState, plain.lastHiddenState),
        `${c.name}: lastHiddenState changed`,
      );
      assert.ok(sameBits(hooked.pooled, plain.pooled), `${c.name}: pooled changed`);
      hooked.hiddenStates?.forEach((h, i) => {
        assert.ok(sameBits(h, plain.hiddenStates?.[i] as Tensor), `${c.name}: hidden state ${i} changed`);
      });
    }
  });

  test('clip skip 1 is the final layer norm of the penultimate hidden state', () => {
    const full = model.forward(ids, { outputHiddenStates: true });
    const states = full.hiddenStates as Tensor[];
    assert.equal(states.length, model.config.numHiddenLayers + 1);
    assert.ok(sameBits(states[0] as Tensor, model.text_model.embeddings.forward(ids)));
    const skipped = model.forward(ids, { clipSkip: 1 });

    // independent layer norm in float64 over the penultimate state, with the file's weights
    const weights = readSafetensors(join(DIR, 'model.safetensors')).tensors;
    const gamma = (weights.get('text_model.final_layer_norm.weight') as Tensor).data;
    const beta = (weights.get('text_model.final_layer_norm.bias') as Tensor).data;
    const h = (states[states.length - 2] as Tensor).data as Float32Array;
    const c = model.config.hiddenSize;
    const want = new Float32Array(h.length);
    for (let r = 0; r < h.length / c; r++) {
      const x = Array.from(h.subarray(r * c, (r + 1) * c));
      const mu = x.reduce((a, b) => a + b, 0) / c;
      const variance = x.reduce((a, b) => a + (b - mu) ** 2, 0) / c;
      x.forEach((v, j) => {
        want[r * c + j] =
          ((v - mu) / Math.sqrt(variance + 1e-5)) * (gamma[j] as number) + (beta[j] as number);
      });
    }
    const err = maxAbsDiff(skipped.lastHiddenState, new Tensor(want, skipped.lastHiddenState.shape));
    assert.ok(err <= 1e-5, `clip skip: max abs error ${err} > 1e-5`);
    // and it is not the unskipped output
    assert.ok(maxAbsDiff(skipped.lastHiddenState, full.lastHiddenState) > 1e-2);
    // pooled comes from the full model either way
    assert.ok(sameBits(skipped.pooled, full.pooled));
    assert.throws(() => model.forward(ids, { clipSkip: 3 }), /clipSkip/);
  });

  test('rejects ids longer than max_position_embeddings or of a float dtype', () => {
    assert.throws(
      () => model.forward(Tensor.int64(new Array(17).fill(1), [1, 17])),
      /max_position_embeddings/,
    );
    assert.throws(() => model.forward(Tensor.from([1, 2], [1, 2])), /int64 or int32/);
  });

  test('encodePrompts tokenizes as diffusers does and encodes', () => {
    const tokenizer = CLIPTokenizer.fromDirectorySync(join(goldenDir(), 'tokenizer'));
    const prompts = ['a red circle', 'two blue squares on the left'];
    const out = model.encodePrompts(tokenizer, prompts);
    const { ids: rows } = tokenizer.call(prompts);
    const direct = model.forward(Tensor.int64(rows.flat(), [2, 16]));
    assert.deepEqual(out.lastHiddenState.shape, [2, 16, 32]);
    assert.ok(sameBits(out.lastHiddenState, direct.lastHiddenState));
    // the eos of each row is right after the prompt's ids
    assert.deepEqual(
      model.eosPositions(Tensor.int64(rows.flat(), [2, 16])),
      rows.map((r) => r.indexOf(999)),
    );
  });
});
