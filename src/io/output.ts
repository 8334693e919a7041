// Writing an output file: its folder is made first, so a long run never ends in "no such file or directory".

import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Writes `data` to `path`, making the folders above it as needed. */
export function writeOutput(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
}
