// attnkit generate on an SDXL folder (tiny-sdxl): the micro-conditioning options reach the UNet, and a bad
// value is refused while the command line is read.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readPng } from '../../../src/io/png.js';
import { sdxlDir } from '../../golden/sdxl/helpers.js';
import { repoRoot } from '../../helpers/fixtures.js';

const prompt = 'a red circle above a blue square';

test('attnkit generate takes SDXL micro-conditioning as --original-size / --crop-top-left / --target-size', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-sdxl-cli-'));
  try {
    const run = (...args: string[]) =>
      execFileSync(
        process.execPath,
        [
          '--import',
          'tsx',
          join(repoRoot, 'src/cli/main.ts'),
          'generate',
          prompt,
          '--model',
          sdxlDir(),
          ...args,
        ],
        { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
    const common = ['--steps', '2', '--scheduler', 'ddim', '--threads', '1', '-q'];
    run(...common, '--out', join(dir, 'a.png'));
    run(
      ...common,
      '--out',
      join(dir, 'b.png'),
      '--original-size',
      '96,80',
      '--crop-top-left',
      '4,2',
      '--target-size',
      '16,16',
    );
    assert.notDeepEqual(readPng(join(dir, 'a.png')).data, readPng(join(dir, 'b.png')).data);
    assert.throws(
      () => run(...common, '--out', join(dir, 'c.png'), '--original-size', '96'),
      /--original-size must be two integers a,b, each from 0 to 65536 \(pixels\), got '96'/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
