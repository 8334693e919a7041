// The tokenizer folder's sizes and settings checked at load (issue 25 items 5 and 7): model_max_length and the
// vocabulary's size and ids, each error naming the file and the key.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { CONFIG_LIMITS } from '../../../src/models/config.js';
import { repoRoot } from '../../helpers/fixtures.js';

const fixture = join(repoRoot, 'test', 'fixtures', 'tiny-sd-a', 'tokenizer');

function folder(edit: (dir: string) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-tok-config-'));
  cpSync(fixture, dir, { recursive: true });
  edit(dir);
  return dir;
}

const withMaxLength = (v: unknown) =>
  folder((d) => {
    const config = JSON.parse(readFileSync(join(d, 'tokenizer_config.json'), 'utf8'));
    writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ ...config, model_max_length: v }));
  });

test('model_max_length: transformers\' "unknown" (1e30) falls back; bad or huge values name the key', () => {
  assert.equal(CLIPTokenizer.fromDirectorySync(withMaxLength(16)).modelMaxLength, 16);
  assert.equal(CLIPTokenizer.fromDirectorySync(withMaxLength(1e30)).modelMaxLength, 77);
  for (const [v, re] of [
    [0, /tokenizer_config\.json: config key 'model_max_length' = 0 must be an integer ≥ 2/],
    [-5, /'model_max_length' = -5/],
    [7.5, /'model_max_length' = 7.5/],
    ['77', /'model_max_length' = "77"/],
    [1e6, /'model_max_length' = 1000000 is over attnkit's limit of 16384/],
  ] as const) {
    assert.throws(() => CLIPTokenizer.fromDirectorySync(withMaxLength(v)), re, String(v));
  }
});

test('vocab.json: ids outside [0, limit) are refused by entry', () => {
  const withId = (id: number) =>
    folder((d) => {
      const vocab = JSON.parse(readFileSync(join(d, 'vocab.json'), 'utf8'));
      writeFileSync(join(d, 'vocab.json'), JSON.stringify({ ...vocab, 'a</w>': id }));
    });
  assert.throws(
    () => CLIPTokenizer.fromDirectorySync(withId(-1)),
    /vocab\.json: entry "a<\/w>" = -1 is not an id in \[0, /,
  );
  assert.throws(
    () => CLIPTokenizer.fromDirectorySync(withId(1e15)),
    new RegExp(
      `vocab\\.json: entry "a</w>" = 1000000000000000 is not an id in \\[0, ${CONFIG_LIMITS.vocabulary}\\)`,
    ),
  );
});
