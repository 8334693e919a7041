// The joint view (src/attention/joint-view.ts) on the tiny SD3 transformer of test/fixtures/tiny-sd3: methods
// written for the UNet's cross- and self-attention run on joint calls unchanged. An AttentionStore of kind
// 'cross' records exactly the image→text blocks, and DAAM's aggregation of them equals a hand aggregation;
// Prompt-to-Prompt's word swap replaces exactly the target's image→text block with the source's, its
// self-attention replacement exactly the image→image block; the text rows stay as they were. MasaCtrl (feature
// level, self view) swaps exactly the image tokens' K and V.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { type AttentionCall, plainBatch } from '../../../src/attention/call.js';
import type { AttentionContext, Controller, Features } from '../../../src/attention/hooks.js';
import { jointViewCalls } from '../../../src/attention/joint-view.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { MutualSelfAttention } from '../../../src/methods/feature/mutual-self-attention.js';
import { AttentionReplace } from '../../../src/methods/map/attention-replace.js';
import { AttentionStore } from '../../../src/methods/map/attention-store.js';
import { aggregateCrossAttention } from '../../../src/methods/map/heatmap.js';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { SD3Transformer2DModel } from '../../../src/models/sd3-transformer.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { maxAbsError } from '../schedulers/helpers.js';

const dir = join(import.meta.dirname, '../../fixtures/tiny-sd3');
const goldens = readSafetensors(join(dir, 'goldens.safetensors')).tensors;
const golden = (key: string): Tensor => goldens.get(key) as Tensor;
const model = SD3Transformer2DModel.fromPretrained(dir, { subfolder: 'transformer' });

/** A direct reader of every joint call's whole map (B, H, N + M, N + M), after the controllers before it. */
function recorder(): Controller & { calls: AttentionCall[]; maps: Tensor[] } {
  const calls: AttentionCall[] = [];
  const maps: Tensor[] = [];
  return {
    name: 'record',
    calls,
    maps,
    appliesTo: (c) => c.kind === 'joint',
    map(c, p) {
      calls.push(c);
      maps.push(p);
      return p;
    },
  };
}

function run(...controllers: Controller[]): void {
  const ctx: AttentionContext = { controllers, step: 0, numSteps: 1, timestep: 0, batch: plainBatch(2) };
  model.forward(
    golden('in.sample'),
    golden('in.timestep').toArray(),
    golden('in.context'),
    golden('in.pooled'),
    {
      ctx,
    },
  );
}

/** Rows [r0, r1) and columns [c0, c1) of the last two axes of a map (B, H, Tq, Tk). */
const block = (p: Tensor, [r0, r1]: readonly number[], [c0, c1]: readonly number[]) =>
  p.slice(2, r0!, r1!).slice(3, c0!, c1!);

test('a joint call seen as cross (image→text) and self (image→image) calls', () => {
  const rec = recorder();
  run(rec);
  const call = rec.calls[0]!;
  const { cross, self } = jointViewCalls(call);
  const [n, m] = [call.joint!.image[1], call.joint!.text[1] - call.joint!.text[0]];
  assert.deepEqual([cross.kind, cross.queryTokens, cross.keyTokens, cross.view], ['cross', n, m, 'joint']);
  assert.deepEqual([self.kind, self.queryTokens, self.keyTokens], ['self', n, n]);
  assert.equal(n, call.size![0] * call.size![1]);
  assert.equal(cross.joint, undefined);
});

test('an AttentionStore of cross maps records the image→text blocks; DAAM of them = a hand aggregation', () => {
  const rec = recorder();
  const store = new AttentionStore({ kinds: ['cross'], maxTokens: Number.POSITIVE_INFINITY });
  run(rec, store);
  const maps = store.maps();
  assert.equal(maps.length, 2); // both joint layers, nothing else
  const { image, text } = rec.calls[0]!.joint!;
  maps.forEach((m, i) => {
    assert.deepEqual([m.kind, m.place, m.index, m.path], ['cross', 'mid', i, rec.calls[i]!.path]);
    assert.equal(maxAbsError(m.map, block(rec.maps[i]!, image, text)), 0);
  });
  // DAAM at the grid's own size (no resampling): per prompt, the mean over layers and heads of the block's
  // columns as h × w maps
  const [h, w] = rec.calls[0]!.size!;
  const heads = rec.calls[0]!.heads;
  for (const prompt of [0, 1]) {
    const heat = aggregateCrossAttention(maps, { latentSize: [h, w], prompt, midBlock: true }); // (M, h, w)
    const m = text[1] - text[0];
    const got = heat.toArray();
    const hand = new Array<number>(m * h * w).fill(0);
    for (const p of rec.maps) {
      const b = block(p, image, text)
        .slice(0, prompt, prompt + 1)
        .toArray(); // (1, H, N, M)
      for (let k = 0; k < heads; k++)
        for (let q = 0; q < h * w; q++)
          for (let t = 0; t < m; t++) hand[t * h * w + q]! += b[(k * h * w + q) * m + t]! / (2 * heads);
    }
    const worst = Math.max(...got.map((x, i) => Math.abs(x - hand[i]!)));
    assert.ok(worst < 1e-6, `prompt ${prompt}: heat-map off the hand aggregation by ${worst}`);
  }
});

// a tokenizer of 5 text states (the fixture's text length): 'a cat' → 'a dog' is a one-word swap
const tokenizer = new CLIPTokenizer({
  vocab: { 'a</w>': 0, 'cat</w>': 1, 'dog</w>': 2, '<|startoftext|>': 3, '<|endoftext|>': 4 },
  merges: [],
  modelMaxLength: 5,
});

test("P2P word swap on joint calls replaces exactly the target's image→text block", () => {
  const plain = recorder();
  run(plain);
  const edited = recorder();
  const replace = new AttentionReplace({
    tokenizer,
    prompts: ['a cat', 'a dog'],
    crossReplaceSteps: 1,
    selfReplaceSteps: 0,
  });
  run(replace, edited);
  // the first layer sees the same input in both runs: the edit is all that differs
  const [before, after] = [plain.maps[0]!, edited.maps[0]!];
  const { image, text } = plain.calls[0]!.joint!;
  const all = [0, text[1]] as const;
  const row = (p: Tensor, r: number) => p.slice(0, r, r + 1);
  assert.equal(maxAbsError(row(after, 0), row(before, 0)), 0, 'the source row is untouched');
  assert.ok(maxAbsError(block(row(before, 1), image, text), block(row(before, 0), image, text)) > 1e-3);
  assert.equal(maxAbsError(block(row(after, 1), image, text), block(row(before, 0), image, text)), 0);
  assert.equal(maxAbsError(block(row(after, 1), image, image), block(row(before, 1), image, image)), 0);
  assert.equal(maxAbsError(block(row(after, 1), text, all), block(row(before, 1), text, all)), 0);
});

test('P2P self-attention replacement on joint calls replaces exactly the image→image block', () => {
  const plain = recorder();
  run(plain);
  const edited = recorder();
  const replace = new AttentionReplace({
    tokenizer,
    prompts: ['a cat', 'a dog'],
    crossReplaceSteps: 0,
    selfReplaceSteps: 1,
  });
  run(replace, edited);
  const [before, after] = [plain.maps[0]!, edited.maps[0]!];
  const { image, text } = plain.calls[0]!.joint!;
  const row = (p: Tensor, r: number) => p.slice(0, r, r + 1);
  assert.equal(maxAbsError(block(row(after, 1), image, image), block(row(before, 0), image, image)), 0);
  assert.equal(maxAbsError(block(row(after, 1), image, text), block(row(before, 1), image, text)), 0);
  assert.equal(
    maxAbsError(block(row(after, 1), text, [0, text[1]]), block(row(before, 1), text, [0, text[1]])),
    0,
  );
});

test("MasaCtrl on joint calls: the target's image K, V become the source's; its text K, V and Q stay", () => {
  const features = (): Controller & { seen: Features[] } => {
    const seen: Features[] = [];
    return {
      name: 'features',
      seen,
      appliesTo: (c) => c.kind === 'joint',
      features(_c, f) {
        seen.push(f);
        return f;
      },
    };
  };
  const plain = features();
  run(plain);
  const edited = features();
  run(new MutualSelfAttention({ startStep: 0, startLayer: 0 }), edited);
  const [before, after] = [plain.seen[0]!, edited.seen[0]!];
  const n = 12; // 4 × 3 image tokens, then the text tokens
  const t = before.k.shape[2] as number;
  const part = (x: Tensor, r: number, a: number, b: number) => x.slice(0, r, r + 1).slice(2, a, b);
  for (const key of ['k', 'v'] as const) {
    assert.ok(maxAbsError(part(before[key], 1, 0, n), part(before[key], 0, 0, n)) > 1e-3);
    assert.equal(maxAbsError(part(after[key], 1, 0, n), part(before[key], 0, 0, n)), 0);
    assert.equal(maxAbsError(part(after[key], 1, n, t), part(before[key], 1, n, t)), 0);
  }
  assert.equal(maxAbsError(after.q, before.q), 0);
});
