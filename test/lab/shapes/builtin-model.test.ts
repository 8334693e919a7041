// The shipped built-in model (models/shapes-v1): a fresh clone uses it with no training. It loads as a
// diffusers folder within the size budget, and it draws what single-object prompts ask for, judged by
// ShapesEval (a deterministic scorer that knows nothing of the model) on held-out-style prompts.

import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BUILTIN_MODEL, unseenWords } from '../../../src/cli/models.js';
import { captionOf, evaluate } from '../../../src/lab/shapes/index.js';
import { sampleScene } from '../../../src/lab/shapes/scene.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';

function folderBytes(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce(
    (n, e) => n + (e.isDirectory() ? folderBytes(join(dir, e.name)) : statSync(join(dir, e.name)).size),
    0,
  );
}

test('built-in model: a diffusers folder under 40 MB with the Stable Diffusion parts', () => {
  assert.ok(folderBytes(BUILTIN_MODEL) < 40 * 2 ** 20);
  const sd = StableDiffusion.fromPretrained(BUILTIN_MODEL);
  assert.equal(sd.defaultSize, 64);
  assert.equal(sd.unet.config.crossAttentionDim, sd.textEncoder.config.hiddenSize);
});

test('built-in model: every word of Shapes captions is known to it; other words are named', () => {
  const { tokenizer } = StableDiffusion.fromPretrained(BUILTIN_MODEL);
  for (let seed = 0; seed < 300; seed++) {
    const caption = captionOf(sampleScene(seed)).text;
    assert.deepEqual(unseenWords(tokenizer, caption), [], caption);
  }
  assert.deepEqual(unseenWords(tokenizer, 'A zebra, a Red circle and a zebra'), ['zebra']);
});

// One object, every colour and shape word at least once; seeds fixed, so the result is deterministic.
const PROMPTS = [
  'a red circle',
  'a blue square',
  'a green triangle',
  'a yellow star',
  'a purple heart',
  'a white ring',
  'an orange cross',
  'a cyan circle',
];

test('built-in model: single-object prompts come out with the asked colour (and some with the shape)', (t) => {
  const sd = StableDiffusion.fromPretrained(BUILTIN_MODEL);
  const { images } = sd.generate({ prompt: PROMPTS, steps: 25, guidanceScale: 5, seed: 7 });
  const reports = PROMPTS.map((p, i) => evaluate(images.slice(0, i, i + 1), p));
  const colour = reports.filter((r) => r.objects[0]?.color).length;
  const both = reports.filter((r) => r.objects[0]?.color && r.objects[0]?.shape).length;
  t.diagnostic(`${colour}/8 with the colour right, ${both}/8 with colour and shape`);
  // Bounds below the rates measured on 200 held-out prompts (docs/training.md: objects' colour right 69 %,
  // 1-object prompts' colour + shape 20 %): a regression guard for the shipped weights, which an untrained
  // model fails (it draws no objects). They are not issue 4's targets, which this model does not meet yet.
  assert.ok(colour >= 4, `only ${colour}/8 prompts with the colour right`);
  assert.ok(both >= 1, 'no prompt with both colour and shape right');
});
