// The `attnkit` command of package.json's "bin", as `npm ci` builds it (the `prepare` script) and as the
// README's first line runs it with `npx attnkit`: an executable file with a node shebang that starts, re-launched
// once with glibc's allocator tuned, passing on the child's output and exit status.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { MALLOC_TUNABLES, tunedEnvironment, untunedEnvironment } from '../../../src/process/malloc-tuning.js';
import { repoRoot } from '../../helpers/fixtures.js';

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

test('bin: errors of the re-launched command reach the caller with its exit status', () => {
  const bin = join(repoRoot, 'dist/cli/main.js');
  const r = spawnSync(bin, ['generate'], { cwd: repoRoot, encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /missing required argument 'prompt'/);
});

test('malloc tuning: added on Linux unless already set or switched off', () => {
  assert.equal(tunedEnvironment({}, 'linux')?.['GLIBC_TUNABLES'], MALLOC_TUNABLES);
  assert.equal(
    tunedEnvironment({ GLIBC_TUNABLES: 'glibc.cpu.hwcaps=-AVX512F' }, 'linux')?.['GLIBC_TUNABLES'],
    `glibc.cpu.hwcaps=-AVX512F:${MALLOC_TUNABLES}`,
  );
  assert.equal(tunedEnvironment({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }, 'linux'), undefined);
  assert.equal(tunedEnvironment({ ATTNKIT_MALLOC_TUNING: '0' }, 'linux'), undefined);
  assert.equal(tunedEnvironment({}, 'darwin'), undefined);
  // bench workers measure memory with the default allocator
  const tuned = tunedEnvironment({ GLIBC_TUNABLES: 'glibc.cpu.x86_ibt=off', HOME: '/h' }, 'linux') ?? {};
  assert.deepEqual(untunedEnvironment(tuned), {
    GLIBC_TUNABLES: 'glibc.cpu.x86_ibt=off',
    HOME: '/h',
    ATTNKIT_MALLOC_TUNING: '0',
  });
  assert.deepEqual(untunedEnvironment({ GLIBC_TUNABLES: MALLOC_TUNABLES }), { ATTNKIT_MALLOC_TUNING: '0' });
});
