// Outputs written whole or not at all (src/io/atomic.ts): a file through a temporary one, a folder built
// beside its target and switched in; the leftovers of killed writes removed at the next write.

import assert from 'node:assert/strict';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { removeStaleTemps, writeFileAtomic, writeFolderAtomic } from '../../../src/io/atomic.js';

const root = mkdtempSync(join(tmpdir(), 'attnkit-atomic-io-'));
after(() => rmSync(root, { recursive: true, force: true }));

const place = (name: string) => {
  const dir = join(root, name);
  mkdirSync(dir);
  return dir;
};

test('writeFileAtomic replaces a file and leaves no temporary file', () => {
  const dir = place('file');
  const path = join(dir, 'a.json');
  writeFileAtomic(path, 'one\n');
  writeFileAtomic(path, new TextEncoder().encode('two\n'));
  assert.equal(readFileSync(path, 'utf8'), 'two\n');
  assert.deepEqual(readdirSync(dir), ['a.json']);
});

test('removeStaleTemps removes the temporary files of one target and nothing else', () => {
  const dir = place('stale');
  for (const f of ['w.safetensors', 'w.safetensors.123.tmp', 'w.safetensors.tmp', 'w.json.1.tmp', 'x.tmp'])
    writeFileSync(join(dir, f), 'x');
  assert.deepEqual(removeStaleTemps(dir, 'w.safetensors').sort(), [
    'w.safetensors.123.tmp',
    'w.safetensors.tmp',
  ]);
  assert.deepEqual(readdirSync(dir).sort(), ['w.json.1.tmp', 'w.safetensors', 'x.tmp']);
  assert.deepEqual(removeStaleTemps(join(dir, 'absent'), 'w'), []);
});

function folder(dir: string, files: Record<string, string>): void {
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(join(dir, f, '..'), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
}

const contents = (dir: string) =>
  Object.fromEntries(
    (readdirSync(dir, { recursive: true }) as string[])
      .filter((f) => f.includes('.'))
      .sort()
      .map((f) => [f, readFileSync(join(dir, f), 'utf8')]),
  );

test('writeFolderAtomic makes a new folder and replaces an old one whole', () => {
  const parent = place('folder');
  const out = join(parent, 'model');
  writeFolderAtomic(out, (d) => folder(d, { 'a/x.txt': 'old', 'b/y.txt': 'old' }));
  writeFolderAtomic(out, (d) => folder(d, { 'a/x.txt': 'new' }));
  assert.deepEqual(contents(out), { 'a/x.txt': 'new' });
  assert.deepEqual(readdirSync(parent), ['model']);
});

test('writeFolderAtomic: a build that fails leaves the old folder as it was and nothing beside it', () => {
  const parent = place('failed');
  const out = join(parent, 'model');
  writeFolderAtomic(out, (d) => folder(d, { 'a/x.txt': 'old', 'b/y.txt': 'old' }));
  assert.throws(
    () =>
      writeFolderAtomic(out, (d) => {
        folder(d, { 'a/x.txt': 'new' });
        throw new Error('stopped halfway');
      }),
    /stopped halfway/,
  );
  assert.deepEqual(contents(out), { 'a/x.txt': 'old', 'b/y.txt': 'old' });
  assert.deepEqual(readdirSync(parent), ['model']);
});

test('writeFolderAtomic: after a kill between its renames the old folder comes back; partial folders go', () => {
  const parent = place('killed');
  const out = join(parent, 'model');
  // a kill between the two renames: the old folder moved aside, the new one still partial
  folder(join(parent, '.model.1.old'), { 'a/x.txt': 'old' });
  folder(join(parent, '.model.1.partial'), { 'a/x.txt': 'new' });
  folder(join(parent, '.model.2.partial'), { 'a/x.txt': 'newer' });
  writeFileSync(join(parent, '.other.1.partial'), 'not ours');
  assert.throws(() => writeFolderAtomic(out, () => assert.fail('stopped again')), /stopped again/);
  assert.deepEqual(contents(out), { 'a/x.txt': 'old' });
  assert.deepEqual(readdirSync(parent).sort(), ['.other.1.partial', 'model']);
  // a kill after the switch, before the old folder was removed: the old one goes
  folder(join(parent, '.model.3.old'), { 'a/x.txt': 'older' });
  writeFolderAtomic(out, (d) => folder(d, { 'a/x.txt': 'new' }));
  assert.deepEqual(contents(out), { 'a/x.txt': 'new' });
  assert.deepEqual(readdirSync(parent).sort(), ['.other.1.partial', 'model']);
});

test('writeFolderAtomic refuses a target that is a file', () => {
  const parent = place('file-target');
  writeFileSync(join(parent, 'model'), 'a file');
  assert.throws(() => writeFolderAtomic(join(parent, 'model'), () => {}), /model exists and is not a folder/);
  assert.equal(existsSync(join(parent, 'model')), true);
  assert.deepEqual(readdirSync(parent), ['model']);
});
