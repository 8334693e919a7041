// Prompt-to-Prompt's token bookkeeping on hand-worked prompt pairs (tiny-sd-a tokenizer, 16 positions):
//   "a red circle"      bos 0 · a 1 · red 2 · circle 3 · eos 4 · pad 5…15
//   "a crimson circle"  bos 0 · a 1 · crimson 2–6 (five BPE pieces) · circle 7 · eos 8 · pad 9…15
//   "a big red circle"  bos 0 · a 1 · big 2 · red 3 · circle 4 · eos 5

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  alignTokens,
  checkStepBounds,
  crossReplaceAlpha,
  equalizer,
  refinementMapper,
  replacementMapper,
} from '../../../src/methods/map/token-alignment.js';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { goldenDir } from '../../helpers/fixtures.js';

const tok = CLIPTokenizer.fromDirectorySync(join(goldenDir(), 'tokenizer'));
const N = 16;

/** The nonzero entries of a mapper as "s→t:w". */
function entries(m: Float32Array): string[] {
  const out: string[] = [];
  m.forEach((w, i) => {
    if (w !== 0) out.push(`${Math.floor(i / N)}→${i % N}:${+w.toFixed(4)}`);
  });
  return out;
}

const identity = (from: number, to: number, shift = 0) =>
  Array.from({ length: to - from }, (_, k) => `${from + k}→${from + k + shift}:1`);

test('word swap with equal token counts: the mapper is the identity', () => {
  assert.deepEqual(entries(replacementMapper(tok, 'a red circle', 'a green circle')), identity(0, 16));
});

test('word swap to a longer word spreads its source token; later positions keep their offset', () => {
  const m = entries(replacementMapper(tok, 'a red circle', 'a crimson circle'));
  assert.deepEqual(m, [
    ...identity(0, 2),
    ...[2, 3, 4, 5, 6].map((t) => `2→${t}:0.2`),
    ...identity(3, 12, 4), // circle 3 → 7, eos 4 → 8, padding after
  ]);
});

test('word swap to a shorter word sums the source tokens into it', () => {
  const m = entries(replacementMapper(tok, 'a crimson circle', 'a red circle'));
  assert.deepEqual(m, [...identity(0, 2), ...[2, 3, 4, 5, 6].map((s) => `${s}→2:1`), ...identity(7, 16, -4)]);
  assert.throws(() => replacementMapper(tok, 'a circle', 'a red circle'), /same number of words.*refine/);
});

test('refinement alignment: added words get alpha 0, the rest map to their source tokens', () => {
  const { mapper, alphas } = refinementMapper(tok, 'a circle', 'a big red circle');
  assert.deepEqual([...mapper], [0, 1, -1, -1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
  assert.deepEqual([...alphas], [1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
  // a substituted token is never aligned with a mismatch (gap 0 beats mismatch −1): deleted + inserted
  const swap = refinementMapper(tok, 'a red circle', 'a green circle');
  assert.deepEqual([...swap.mapper].slice(0, 5), [0, 1, -1, 3, 4]);
  assert.deepEqual([...swap.alphas].slice(0, 5), [1, 1, 0, 1, 1]);
});

test('global alignment breaks ties as the reference: left, then up, then diagonal', () => {
  // cases checked against google/prompt-to-prompt seq_aligner.global_align + get_aligned_sequences
  assert.deepEqual(alignTokens([3, 0, 2, 4, 3, 3], [3, 2, 4, 1]), [0, 2, 3, -1]);
  assert.deepEqual(alignTokens([2, 1], [4]), [-1]);
  assert.deepEqual(alignTokens([], [1, 2]), [-1, -1]);
  assert.deepEqual(alignTokens([1, 2], []), []);
});

test('crossReplaceSteps: ⌊f·(numSteps+1)⌋ steps, per word with default_', () => {
  const prompts = ['a red circle', 'a green circle'];
  // 4 steps, 0.5 → steps < ⌊2.5⌋ = 2
  const at = (step: number, steps: Parameters<typeof crossReplaceAlpha>[2]) =>
    crossReplaceAlpha(tok, prompts, steps, step, 4, N)[0]!;
  assert.ok(at(1, 0.5).every((v) => v === 1));
  assert.ok(at(2, 0.5).every((v) => v === 0));
  // [0.4, 1] → steps from ⌊2⌋ = 2 to ⌊5⌋ = 5
  assert.ok(at(1, [0.4, 1]).every((v) => v === 0));
  assert.ok(at(4, [0.4, 1]).every((v) => v === 1));
  // per word: 'circle' (target position 3) only during step 0 (⌊0.25·5⌋ = 1), the rest always
  const perWord = { default_: 1, circle: 0.25 } as const;
  assert.deepEqual([...at(0, perWord)].slice(0, 5), [1, 1, 1, 1, 1]);
  assert.deepEqual([...at(1, perWord)].slice(0, 5), [1, 1, 1, 0, 1]);
  // without default_, the other tokens are replaced all along ((0, 1) as the reference)
  assert.deepEqual([...at(3, { circle: [0.5, 1] })].slice(0, 5), [1, 1, 1, 1, 1]);
});

test('equalizer: the word’s token positions get the weight, all others 1', () => {
  const eq = equalizer(tok, 'a crimson circle', { crimson: 2, circle: -1 });
  assert.deepEqual([...eq].slice(0, 9), [1, 1, 2, 2, 2, 2, 2, -1, 1]);
  // "square" is cut off this prompt (16 tokens): weighting it would change nothing, so it is refused
  assert.throws(
    () => equalizer(tok, 'a crimson circle and a crimson square', { square: 2 }),
    /"square" lies past the first 16 tokens of the prompt/,
  );
  assert.throws(
    () => equalizer(tok, 'a crimson circle', { circle: Number.NaN }),
    /weight of "circle" must be a number/,
  );
});

test('step bounds: fractions of the steps, checked with the option named', () => {
  for (const ok of [0, 0.4, 1, [0.2, 0.8], { default_: 1, circle: [0, 0.5] }] as const)
    assert.doesNotThrow(() => checkStepBounds(ok, 'crossReplaceSteps'));
  assert.throws(
    () => checkStepBounds(2, 'crossReplaceSteps'),
    /crossReplaceSteps must be a fraction .* got 2/,
  );
  assert.throws(() => checkStepBounds(-1, 'selfReplaceSteps'), /selfReplaceSteps must be a fraction/);
  assert.throws(
    () => checkStepBounds([0.8, 0.2], 'selfReplaceSteps'),
    /0 ≤ start ≤ end ≤ 1, got \[0.8,0.2\]/,
  );
  assert.throws(
    () => checkStepBounds({ default_: 1, circle: 1.5 }, 'crossReplaceSteps'),
    /crossReplaceSteps \(word "circle"\) must be a fraction/,
  );
  assert.throws(() => checkStepBounds(Number.NaN, 'crossReplaceSteps'), /got NaN/);
});
