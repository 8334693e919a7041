// The `attnkit` command of package.json's "bin", as `npm ci` builds it (the `prepare` script) and as the
// README's first line runs it with `npx attnkit`: an executable file with a node shebang that starts.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../helpers/fixtures.js';

test('bin: the built attnkit command is executable and runs', () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
    bin: { attnkit: string };
  };
  const bin = join(repoRoot, pkg.bin.attnkit);
  assert.ok(statSync(bin).mode & 0o111, `${bin} is not executable: run npm run build`);
  assert.match(readFileSync(bin, 'utf8'), /^#!\/usr\/bin\/env node\n/);
  const help = execFileSync(bin, ['--help'], { cwd: repoRoot, encoding: 'utf8' });
  assert.match(help, /generate/);
});
