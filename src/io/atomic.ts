// Outputs that must appear whole or not at all, and the temporary files they leave when a process is killed.
//
// A file: written to `<path>.<random>.tmp` beside it, flushed (fsync), renamed over `path`, and the folder
// flushed, so a crash leaves the old file or the new one. A folder of several files (a model): built in
// `.<name>.<random>.partial` beside it, every file and folder flushed, then switched in by two renames
// (`<name>` → `.<name>.<random>.old`, the new one → `<name>`) and the old one removed. A crash while building
// leaves the old folder untouched; one between the two renames leaves no `<name>` but the whole old folder
// as `.<name>.….old`, which the next write to `<name>` puts back before it starts. Every write removes the
// temporaries a killed one left beside its target (they can be as large as the output).

import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

/** Flushes a file or folder to disk (a folder: the names in it, e.g. after a rename). */
export function fsyncPath(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    // Windows cannot open a folder; its renames are not made durable this way
    if (process.platform === 'win32' && (e as NodeJS.ErrnoException).code === 'EISDIR') return;
    throw e;
  }
  try {
    fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EPERM' && code !== 'EISDIR') throw e;
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a file through `<path>.<random>.tmp` beside it: `write` fills the open temporary, which is flushed
 * and renamed over `path`; on any failure the temporary is removed. A crash leaves the old file or the new one.
 */
export function writeThroughTemp(path: string, write: (fd: number) => void): void {
  const tmp = `${path}.${randomUUID()}.tmp`;
  try {
    const fd = openSync(tmp, 'wx');
    try {
      write(fd);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes `data` to `path` through a flushed temporary file renamed over it, then flushes the folder. */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  writeThroughTemp(path, (fd) => writeFileSync(fd, data));
  fsyncPath(dirname(resolve(path)));
}

/**
 * Removes the entries of `dir` named `<prefix>.<anything>.tmp` (and `<prefix>.tmp`): what a killed
 * `writeFileAtomic(join(dir, prefix))` or `writeSafetensors` left. Returns the names removed.
 */
export function removeStaleTemps(dir: string, prefix: string): string[] {
  if (!existsSync(dir)) return [];
  const stale = readdirSync(dir).filter(
    (f) => f === `${prefix}.tmp` || (f.startsWith(`${prefix}.`) && f.endsWith('.tmp')),
  );
  for (const f of stale) rmSync(join(dir, f), { recursive: true, force: true });
  return stale;
}

function fsyncTree(path: string): void {
  if (statSync(path).isDirectory()) for (const f of readdirSync(path)) fsyncTree(join(path, f));
  fsyncPath(path);
}

/**
 * Builds the folder `out` as one unit: `build` writes into an empty temporary folder beside it, which then
 * replaces `out` (see the top of this file). When `build` throws, `out` is left as it was and the
 * temporary folder removed.
 */
export function writeFolderAtomic(out: string, build: (dir: string) => void): void {
  const target = resolve(out);
  const parent = dirname(target);
  const name = basename(target);
  mkdirSync(parent, { recursive: true });
  // what a killed write left: an old folder that was moved aside (put back when the new one never came)
  // and partial folders
  const leftovers = readdirSync(parent).filter(
    (f) => f.startsWith(`.${name}.`) && (f.endsWith('.partial') || f.endsWith('.old')),
  );
  const moved = leftovers.find((f) => f.endsWith('.old'));
  if (moved && !existsSync(target)) renameSync(join(parent, moved), target);
  for (const f of leftovers) rmSync(join(parent, f), { recursive: true, force: true });
  if (existsSync(target) && !statSync(target).isDirectory()) {
    throw new Error(`${out} exists and is not a folder`);
  }

  const id = randomUUID();
  const tmp = join(parent, `.${name}.${id}.partial`);
  mkdirSync(tmp);
  try {
    build(tmp);
    fsyncTree(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  if (existsSync(target)) {
    const old = join(parent, `.${name}.${id}.old`);
    renameSync(target, old);
    renameSync(tmp, target);
    fsyncPath(parent);
    rmSync(old, { recursive: true, force: true });
  } else {
    renameSync(tmp, target);
    fsyncPath(parent);
  }
}
