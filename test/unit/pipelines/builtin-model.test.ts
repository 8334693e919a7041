// StableDiffusion.fromPretrained() with no folder loads the built-in model (issue 34); a folder that is not one
// is refused with an error naming what was passed and what is expected.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BUILTIN_MODEL, StableDiffusion } from '../../../src/index.js';
import { repoRoot } from '../../helpers/fixtures.js';

test('BUILTIN_MODEL is models/shapes-v1 at the package root', () => {
  assert.equal(BUILTIN_MODEL, join(repoRoot, 'models', 'shapes-v1'));
  assert.ok(existsSync(join(BUILTIN_MODEL, 'model_index.json')));
});

test('fromPretrained() with no folder loads the built-in model', () => {
  const sd = StableDiffusion.fromPretrained();
  const explicit = StableDiffusion.fromPretrained(BUILTIN_MODEL);
  // the same weights as loading the folder by name (the tokenizer's vocabulary is the model's own, not CLIP's)
  assert.deepEqual(sd.unet.config, explicit.unet.config);
  assert.equal(sd.tokenizer.vocabSize, explicit.tokenizer.vocabSize);
  assert.ok(sd.tokenizer.vocabSize < 49408, `built-in vocabulary ${sd.tokenizer.vocabSize}`);
  const w = sd.unet.conv_in.weight.value.data;
  const v = explicit.unet.conv_in.weight.value.data;
  assert.deepEqual(w, v);
});

test('a folder that does not exist: the error names it and what is expected', () => {
  const missing = join(tmpdir(), 'attnkit-no-such-model');
  assert.throws(
    () => StableDiffusion.fromPretrained(missing),
    (e: Error) =>
      e.message.includes(missing) &&
      e.message.includes('model_index.json') &&
      e.message.includes('fromPretrained()'),
  );
});

test('a folder without model_index.json is refused naming the folder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-empty-'));
  try {
    assert.throws(
      () => StableDiffusion.fromPretrained(dir),
      (e: Error) => e.message.includes(dir) && e.message.includes('model_index.json'),
    );
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('a folder that is not a string (null, a number, an empty string) is refused naming what was passed', () => {
  for (const [bad, shown] of [
    [null, 'null'],
    [42, '42'],
    ['', '""'],
  ] as const) {
    assert.throws(
      () => StableDiffusion.fromPretrained(bad as unknown as string),
      (e: Error) => e.message.includes(shown) && e.message.includes('folder'),
      `for ${String(bad)}`,
    );
  }
});
