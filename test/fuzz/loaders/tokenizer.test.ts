// Fuzzing CLIPTokenizer's directory loader (issue 25): seeded mutations of tiny-sd-a's vocab.json, merges.txt
// and tokenizer_config.json, loaded with fromDirectorySync (and fromDirectory for every tenth case), then a
// prompt encoded. Every case loads or throws a plain Error naming the tokenizer and the problem.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { repoRoot } from '../../helpers/fixtures.js';
import {
  check,
  checkAsync,
  int,
  mutateBytes,
  mutateJson,
  pick,
  type Rand,
  rng,
  scratchDir,
  summary,
  tally,
} from './mutate.js';

const seedDir = join(repoRoot, 'test', 'fixtures', 'tiny-sd-a', 'tokenizer');
const FILES = ['vocab.json', 'merges.txt', 'tokenizer_config.json'] as const;
const seeds = Object.fromEntries(FILES.map((f) => [f, readFileSync(join(seedDir, f))]));
const dir = scratchDir('tokenizer');

function mutateMerges(text: string, r: Rand): string {
  const lines = text.split('\n');
  const i = int(r, lines.length);
  switch (int(r, 5)) {
    case 0:
      lines.splice(i, 1);
      break;
    case 1:
      lines.splice(
        i,
        0,
        pick(r, ['a', 'a b c', ' ', 'x'.repeat(10_000), '#version: 0.2', 'a  b', '\u0000 \u0001']),
      );
      break;
    case 2:
      lines[i] = lines[int(r, lines.length)]!;
      break;
    case 3:
      return lines.slice(0, i).join('\r\n');
    default:
      return Buffer.from(mutateBytes(Buffer.from(text), r)).toString('utf8');
  }
  return lines.join('\n');
}

function mutate(r: Rand): Record<string, string | undefined> {
  const files: Record<string, string | undefined> = Object.fromEntries(
    FILES.map((f) => [f, seeds[f]!.toString('utf8')]),
  );
  const f = pick(r, FILES);
  const text = files[f]!;
  if (r() < 0.05)
    files[f] = undefined; // missing
  else if (f === 'merges.txt') files[f] = mutateMerges(text, r);
  else if (r() < 0.7) files[f] = mutateJson(JSON.parse(text), r);
  else files[f] = Buffer.from(mutateBytes(Buffer.from(text), r)).toString('utf8');
  return files;
}

const NAMES = /^CLIPTokenizer/;
const PROMPT = 'a red circle above a blue square, 42 times!';

test('fuzz: 2,000 mutated tokenizer folders load (and encode) or give an Error naming the problem', async () => {
  const r = rng(25_004);
  // Quoted lines and entries are bounded previews, so every message stays short.
  const t = tally(600);
  for (let k = 0; k < 2000; k++) {
    const files = mutate(r);
    const d = join(dir, `c${k % 2}`);
    mkdirSync(d, { recursive: true });
    for (const f of FILES) {
      if (files[f] === undefined) rmSync(join(d, f), { force: true });
      else writeFileSync(join(d, f), files[f]);
    }
    if (k % 10 === 0) {
      await checkAsync(t, `async #${k}`, NAMES, async () =>
        (await CLIPTokenizer.fromDirectory(d)).encode(PROMPT),
      );
    } else check(t, `sync #${k}`, NAMES, () => CLIPTokenizer.fromDirectorySync(d).encode(PROMPT));
  }
  console.log(`tokenizer fuzz: ${summary(t)}`);
  assert.ok(t.ok > 0 && t.refused > 0);
});
