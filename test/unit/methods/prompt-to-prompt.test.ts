// Prompt-to-Prompt's editors on the tiny-sd-a model: a store before the editor records the raw maps of one
// guided step, a store after it the edited ones; the edited target rows are checked against the raw source rows
// carried through hand-worked token maps (see token-alignment.test.ts), and every other row must not change.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Controller } from '../../../src/attention/index.js';
import { AttentionRefine } from '../../../src/methods/map/attention-refine.js';
import { AttentionReplace } from '../../../src/methods/map/attention-replace.js';
import { AttentionReweight } from '../../../src/methods/map/attention-reweight.js';
import { AttentionStore, type StoredMap } from '../../../src/methods/map/attention-store.js';
import { editPrompt } from '../../../src/pipelines/edit.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

const sd = StableDiffusion.fromPretrained(goldenDir());
const N = sd.tokenizer.modelMaxLength; // 16
const same = { atol: 0, rtol: 0 };

/** Runs one guided step of [source, target] with `editor` between two stores; returns (before, after). */
function record(prompts: string[], editor: Controller): { before: StoredMap[]; after: StoredMap[] } {
  const opts = { maxTokens: Number.POSITIVE_INFINITY, guidance: ['uncond', 'cond'] as const };
  const before = new AttentionStore(opts);
  const after = new AttentionStore(opts);
  sd.generate({ prompt: prompts, steps: 1, seed: 3, controllers: [before, editor, after] });
  return { before: before.maps(), after: after.maps() };
}

/** Batch rows of a guided batch of two prompts: uncond source, uncond target, cond source, cond target. */
const row = (m: StoredMap, r: number): Tensor => m.map.slice(0, r, r + 1);
const [U0, U1, C0, C1] = [0, 1, 2, 3];

/** Column k (all heads and queries) of a (1, H, Tq, Tk) map, as numbers. */
function column(t: Tensor, k: number): number[] {
  const v = t.toArray();
  return v.filter((_, i) => i % N === k);
}

function pairs(r: { before: StoredMap[]; after: StoredMap[] }, kind: 'cross' | 'self') {
  const out = r.before
    .filter((m) => m.kind === kind)
    .map((b) => ({ b, a: r.after.find((x) => x.path === b.path)! }));
  assert.ok(out.length > 0, `no ${kind}-attention layer recorded`);
  return out;
}

test('AttentionReplace (cross = self = 1): the target’s maps are the source’s, mapped; other rows untouched', () => {
  const prompts = ['a red circle', 'a crimson circle'];
  const edit = new AttentionReplace({
    tokenizer: sd.tokenizer,
    prompts,
    crossReplaceSteps: 1,
    selfReplaceSteps: 1,
  });
  const r = record(prompts, edit);
  for (const { b, a } of pairs(r, 'cross')) {
    const src = row(b, C0);
    // red (2) spreads over crimson's five tokens; circle 3 → 7, eos and padding keep the offset of 4
    const expected = (t: number) =>
      t < 2 ? column(src, t) : t <= 6 ? column(src, 2).map((v) => 0.2 * v) : column(src, t - 4);
    for (let t = 0; t < N; t++) {
      assertClose(column(row(a, C1), t), expected(t), { atol: 1e-6, rtol: 0, label: `${b.path} token ${t}` });
    }
    for (const u of [U0, U1, C0]) assertClose(row(a, u), row(b, u), { ...same, label: `${b.path} row ${u}` });
  }
  for (const { b, a } of pairs(r, 'self')) {
    assertClose(row(a, C1), row(b, C0), { ...same, label: `${b.path} self` });
    for (const u of [U0, U1, C0]) assertClose(row(a, u), row(b, u), same);
  }
});

test('crossReplaceSteps per word and selfReplaceMaxTokens leave the named tokens and large maps alone', () => {
  const prompts = ['a red circle', 'a green circle'];
  const edit = new AttentionReplace({
    tokenizer: sd.tokenizer,
    prompts,
    crossReplaceSteps: { default_: 1, circle: 0 },
    selfReplaceSteps: 1,
    selfReplaceMaxTokens: 32, // the tiny model's self-attention maps have 64 queries
  });
  const r = record(prompts, edit);
  for (const { b, a } of pairs(r, 'cross')) {
    assertClose(column(row(a, C1), 3), column(row(b, C1), 3), same); // circle: the target's own
    assertClose(column(row(a, C1), 2), column(row(b, C0), 2), same); // green ← red
  }
  for (const { b, a } of pairs(r, 'self')) assertClose(row(a, C1), row(b, C1), same);
});

test('AttentionRefine: aligned tokens take the source’s columns, added words keep their own', () => {
  const prompts = ['a circle', 'a big red circle'];
  const edit = new AttentionRefine({
    tokenizer: sd.tokenizer,
    prompts,
    crossReplaceSteps: 1,
    selfReplaceSteps: 0,
  });
  const r = record(prompts, edit);
  const mapper = [0, 1, -1, -1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
  for (const { b, a } of pairs(r, 'cross')) {
    mapper.forEach((s, t) => {
      const want = s < 0 ? column(row(b, C1), t) : column(row(b, C0), s);
      assertClose(column(row(a, C1), t), want, { atol: 1e-6, rtol: 0, label: `${b.path} token ${t}` });
    });
  }
  for (const { b, a } of pairs(r, 'self')) assertClose(row(a, C1), row(b, C1), same);
});

test('AttentionReweight multiplies exactly the chosen token columns of the source’s maps', () => {
  const prompts = ['a red circle', 'a red circle'];
  const edit = new AttentionReweight({
    tokenizer: sd.tokenizer,
    prompts,
    crossReplaceSteps: 1,
    selfReplaceSteps: 0,
    equalizer: { circle: 2 },
  });
  const r = record(prompts, edit);
  for (const { b, a } of pairs(r, 'cross')) {
    for (let t = 0; t < N; t++) {
      const w = t === 3 ? 2 : 1;
      assertClose(
        column(row(a, C1), t),
        column(row(b, C0), t).map((v) => w * v),
        { ...same, label: `token ${t}` },
      );
    }
    for (const u of [U0, U1, C0]) assertClose(row(a, u), row(b, u), same);
  }
});

test('editors refuse a batch without the target prompt', () => {
  const edit = new AttentionReplace({
    tokenizer: sd.tokenizer,
    prompts: ['a red circle', 'a green circle'],
    crossReplaceSteps: 1,
    selfReplaceSteps: 0,
  });
  assert.throws(
    () => sd.generate({ prompt: 'a red circle', steps: 1, controllers: [edit] }),
    /must hold the source and every target prompt/,
  );
});

test('editPrompt: the source image is the plain generation of the source; method none is plain regeneration', () => {
  const plain = sd.generate({ prompt: 'a red circle', steps: 2, seed: 5 }).images;
  const edited = editPrompt(sd, {
    source: 'a red circle',
    target: 'a green circle',
    steps: 2,
    seed: 5,
    blend: ['red', 'green'],
  });
  assert.equal(edited.method, 'replace');
  assertClose(edited.source, plain, { atol: 1e-4, rtol: 0 });
  const none = editPrompt(sd, {
    source: 'a red circle',
    target: 'a green circle',
    steps: 2,
    seed: 5,
    method: 'none',
  });
  const green = sd.generate({ prompt: 'a green circle', steps: 2, seed: 5 }).images;
  assertClose(none.target, green, { atol: 1e-4, rtol: 0 });
  assert.equal(editPrompt(sd, { source: 'a circle', target: 'a big circle', steps: 1 }).method, 'refine');
});
