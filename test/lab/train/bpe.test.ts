// The BPE vocabulary learned from captions: CLIP's layout, every caption word one token, and a round trip
// through vocab.json / merges.txt and CLIPTokenizer.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { shapesTrainingData } from '../../../src/lab/train-data.js';
import { bytesToUnicode, CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { END_OF_TEXT, learnBPE, START_OF_TEXT, tokenizerOf, writeTokenizer } from '../../../src/train/bpe.js';
import { vocabularyCaptions } from '../../../src/train/shapes.js';

const captions = vocabularyCaptions(shapesTrainingData, 400);
const bpe = learnBPE(captions);

test('bpe: CLIP layout — 256 byte symbols, 256 with </w>, merges, then the two special tokens', () => {
  const n = Object.keys(bpe.vocab).length;
  assert.equal(n, 512 + bpe.merges.length + 2);
  assert.equal(bpe.vocab['!'], 0);
  assert.equal(bpe.vocab['!</w>'], 256);
  // 188 printable bytes first, then bytes 0, 1, … remapped: the space (byte 32, 'Ġ') is 188 + 32, as in CLIP
  assert.equal(bpe.vocab[bytesToUnicode()[32] as string], 220);
  assert.equal(bpe.vocab[START_OF_TEXT], n - 2);
  assert.equal(bpe.vocab[END_OF_TEXT], n - 1);
  assert.equal(new Set(Object.values(bpe.vocab)).size, n);
});

test('bpe: every caption word is one token, and the tokenizer folder round-trips', () => {
  const tok = tokenizerOf(bpe, 32);
  const words = new Set(captions.flatMap((c) => c.split(' ')));
  for (const w of words) assert.equal(tok.encode(w).length, 1, `"${w}" is not one token`);
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-bpe-'));
  try {
    writeTokenizer(dir, bpe, 32);
    const read = CLIPTokenizer.fromDirectorySync(dir);
    assert.equal(read.modelMaxLength, 32);
    for (const c of captions.slice(0, 50)) {
      assert.deepEqual(read.encode(c), tok.encode(c));
      assert.equal(read.decode(read.encode(c)), c);
    }
    const { ids } = read.call(['a red circle']);
    assert.equal(ids[0]?.length, 32);
    assert.equal(ids[0]?.[0], read.bosTokenId);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
