// Which model a command runs on: --model, else the built-in Shapes model shipped in models/shapes-v1.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (this file is src/cli/models.ts or dist/cli/models.js). */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const BUILTIN_MODEL = join(packageRoot, 'models', 'shapes-v1');
const TEST_MODEL = join(packageRoot, 'test', 'fixtures', 'tiny-sd-a');

/** Resolves the model folder; says honestly when the built-in model is not there yet. */
export function resolveModel(flag: string | undefined, log: (s: string) => void): string {
  if (flag) return resolve(flag);
  if (existsSync(join(BUILTIN_MODEL, 'model_index.json'))) return BUILTIN_MODEL;
  if (existsSync(join(TEST_MODEL, 'model_index.json'))) {
    log(
      'note: the built-in Shapes model (models/shapes-v1) is not trained yet; running the tiny random-weight ' +
        'test model test/fixtures/tiny-sd-a instead, so its outputs are noise. Pass --model <diffusers folder> ' +
        'to use real weights.',
    );
    return TEST_MODEL;
  }
  throw new Error('no model: pass --model <diffusers folder> (the built-in model is not installed)');
}
