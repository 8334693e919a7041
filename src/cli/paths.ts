// The files a command reads and writes, checked before the work starts: an output whose location cannot take it
// would otherwise fail only after a whole generation, and an input image that is a folder would fail without
// its path (EISDIR).

import { closeSync, existsSync, mkdirSync, openSync, statSync, unlinkSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * Checks that `path` (given with `flag`) can be written: it is not a folder, no folder above it is a file, its
 * folder exists (made here) and a file can be created there (one is written and removed).
 */
export function checkOutputPath(path: string, flag: string): void {
  const full = resolve(path);
  if (existsSync(full) && statSync(full).isDirectory())
    throw new Error(`${flag} ${path} is a folder; give a file path, e.g. ${join(path, 'out.png')}`);
  for (let dir = dirname(full); ; dir = dirname(dir)) {
    if (existsSync(dir)) {
      if (!statSync(dir).isDirectory())
        throw new Error(`${flag} ${path}: ${dir} is a file, not a folder; choose another path`);
      break;
    }
    if (dirname(dir) === dir) break;
  }
  const folder = dirname(full);
  try {
    mkdirSync(folder, { recursive: true });
    const probe = join(folder, `.attnkit-write-test-${process.pid}`);
    closeSync(openSync(probe, 'wx'));
    unlinkSync(probe);
  } catch (e) {
    throw new Error(
      `${flag} ${path}: cannot write in ${folder} (${(e as Error).message}); choose a writable location`,
    );
  }
}

/** Each output that was given (undefined: not asked for). */
export function checkOutputPaths(outputs: Record<string, string | undefined>): void {
  for (const [flag, path] of Object.entries(outputs)) if (path !== undefined) checkOutputPath(path, flag);
}

/** Checks that the input file `path` (given with `flag`, e.g. a PNG) exists and is a file. */
export function checkInputFile(path: string, flag: string, what = 'PNG file'): void {
  if (!existsSync(path)) throw new Error(`${flag} ${path} does not exist`);
  if (statSync(path).isDirectory()) throw new Error(`${flag} ${path} is a folder, not a ${what}`);
}
