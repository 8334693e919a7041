// The CLI as the e2e tests run it: `attnkit <args> --model <tiny-sd-a> --threads 1 -q` from source in a child
// process; its stdout back, a failure thrown with the child's stderr in the message.

import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { goldenDir, repoRoot } from './fixtures.js';

/** Runs `attnkit …args` on the tiny-sd-a golden model, one thread, quiet; returns its stdout. */
export function attnkitTiny(...args: string[]): string {
  return execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'src/cli/main.ts'),
      ...args,
      '--model',
      goldenDir(),
      '--threads',
      '1',
      '-q',
    ],
    { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
}
