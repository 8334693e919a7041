// The built-in DiT Shapes model (models/shapes-dit-v1, an SD3-style folder) through the CLI: `generate` and
// `eval` dispatch on the folder and run the MM-DiT with flow matching; the flags only a UNet model takes are
// refused by name before anything is generated; token merging and block caching run on its joint blocks.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readPng } from '../../../src/io/png.js';
import { repoRoot } from '../../helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-dit-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const model = join(repoRoot, 'models', 'shapes-dit-v1');

function attnkit(...args: string[]): string {
  return execFileSync(
    process.execPath,
    ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), ...args, '--threads', '1', '-q'],
    { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

test('generate -m models/shapes-dit-v1 writes a 64 × 64 image; --tome / --block-cache run on its joint blocks; --scheduler is refused by name', () => {
  const out = join(dir, 'dit.png');
  attnkit('generate', 'a red circle', '-m', model, '--steps', '3', '-o', out);
  const png = readPng(out);
  assert.deepEqual(png.shape, [1, 3, 64, 64]);
  const fast = join(dir, 'fast.png');
  attnkit(
    'generate',
    'a red circle',
    '-m',
    model,
    '--steps',
    '3',
    '--tome',
    '0.5',
    '--block-cache',
    '2',
    '-o',
    fast,
  );
  const [a, b] = [
    Array.from(png.data as ArrayLike<number>),
    Array.from(readPng(fast).data as ArrayLike<number>),
  ];
  const d = Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
  assert.ok(d > 0.01, `ToMe and block caching changed the image (max |Δ| ${d})`);
  const refused = join(dir, 'refused.png');
  try {
    attnkit('generate', 'a red circle', '-m', model, '--steps', '2', '--scheduler', 'ddim', '-o', refused);
    assert.fail('generate with --scheduler on a DiT succeeded');
  } catch (e) {
    const stderr = String((e as { stderr?: string }).stderr);
    assert.match(stderr, /--scheduler/);
  }
  assert.equal(existsSync(refused), false);
});

test('eval on the DiT model: ShapesEval with heat-maps from the joint layers (image→text blocks)', () => {
  const out = join(dir, 'eval.json');
  attnkit('eval', '-m', model, '-n', '2', '--steps', '3', '--heatmaps', '2', '-o', out);
  const json = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(json.config.scheduler, 'flow-match-euler');
  assert.equal(json.config.prompts, 2);
  assert.ok(json.heatMaps.objects > 0);
});
