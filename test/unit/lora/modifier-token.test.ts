// Custom Diffusion's modifier token bound to a one-token word of tiny-sd-a's tokenizer: the word's embedding
// row becomes the learned one (and only that row), the prompt's text states change where the word is,
// unbinding restores the table, the diffusers layout round-trips, bad inputs are errors.

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  bindModifierToken,
  readModifierTokens,
  singleTokenId,
  writeModifierTokens,
} from '../../../src/methods/weight/modifier-token.js';
import { CLIPTextModel } from '../../../src/models/clip-text.js';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { uniform } from '../../helpers/random.js';
import { sameBits } from '../../helpers/tolerance.js';

const te = CLIPTextModel.fromPretrained(join(goldenDir(), 'text_encoder'));
const tok = CLIPTokenizer.fromPretrained(join(goldenDir(), 'tokenizer'));
const dim = te.config.hiddenSize;
const table = () => te.text_model.embeddings.token_embedding.weight.value;

test('binding replaces exactly the word’s row; unbinding puts the same table back', () => {
  const word = 'a';
  const id = singleTokenId(tok, word);
  const emb = uniform([dim], 7);
  const before = table();
  const states = (prompt: string) => noGrad(() => te.encodePrompts(tok, [prompt]).lastHiddenState);
  const plain = states('a b');
  const bound = bindModifierToken(te, tok, word, emb);
  const after = table();
  const rows = (t: Tensor, r: number) => t.toArray().slice(r * dim, (r + 1) * dim);
  assert.deepEqual(rows(after, id), emb.toArray());
  for (const r of [0, id - 1, id + 1]) assert.deepEqual(rows(after, r), rows(before, r));
  assert.ok(states('a b').sub(plain).abs().max().item() > 1e-3);
  bound.unbind();
  assert.equal(table(), before);
  assert.ok(sameBits(states('a b'), plain));
});

test('modifier tokens round-trip in diffusers layout; bad inputs are errors', () => {
  const path = join(mkdtempSync(join(tmpdir(), 'attnkit-mt-')), 'new1.safetensors');
  const emb = uniform([dim], 8);
  writeModifierTokens(path, new Map([['<new1>', emb]]));
  const back = readModifierTokens(path);
  assert.ok(sameBits(back.get('<new1>') as Tensor, emb));
  assert.throws(
    () => bindModifierToken(te, tok, 'a', Tensor.zeros([dim + 1])),
    /embedding of shape \[33\] for 'a'.*32 features/,
  );
  assert.throws(() => singleTokenId(tok, 'a b c'), /'a b c' is 3 tokens/);
  assert.throws(() => readModifierTokens('x.bin'), /safetensors only/);
});
