// Where the test fixtures live. The tiny-sd-a golden folder (see ../shared/golden/README.md) is read from
// test/fixtures/tiny-sd-a when the project holds a copy, else from the shared folder beside the repository.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is test/helpers/fixtures.ts). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The tiny-sd-a diffusers folder with goldens.safetensors. */
export function goldenDir(): string {
  const local = join(repoRoot, 'test', 'fixtures', 'tiny-sd-a');
  if (existsSync(join(local, 'goldens.safetensors'))) return local;
  const shared = resolve(repoRoot, '..', 'shared', 'golden', 'tiny-sd-a');
  if (existsSync(shared)) return shared;
  throw new Error(`test fixtures: tiny-sd-a not found at ${local} nor at ${shared}`);
}
