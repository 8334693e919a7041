// attnkit compose (TF-ICON) and attnkit edit --method shape-variations on the tiny-sd-a model: they run and
// write PNGs of the expected sizes; bad boxes, empty masks and missing options are errors naming the option.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseBox } from '../../../src/cli/compose.js';
import { readPng, writePng } from '../../../src/io/png.js';
import { Tensor } from '../../../src/tensor/index.js';
import { attnkitTiny } from '../../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-compose-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const attnkit = attnkitTiny;

const S = 32; // tiny-sd-a's image size
const bg = join(dir, 'bg.png');
const obj = join(dir, 'obj.png');
const mask = join(dir, 'mask.png');
const empty = join(dir, 'empty.png');
writePng(bg, Tensor.full([1, 3, S, S], -0.6));
writePng(obj, Tensor.full([1, 3, S, S], 0.8));
const square = Float32Array.from({ length: 3 * S * S }, (_, i) => {
  const [x, y] = [i % S, Math.floor(i / S) % S];
  return x >= 8 && x < 16 && y >= 8 && y < 16 ? 1 : -1;
});
writePng(mask, new Tensor(square, [1, 3, S, S]));
writePng(empty, Tensor.full([1, 3, S, S], -1));

test('parseBox reads x0,y0,x1,y1 and names the form otherwise', () => {
  assert.deepEqual(parseBox('1,2,30,31'), [1, 2, 30, 31]);
  assert.throws(() => parseBox('1,2,3'), /--box expects four whole pixel numbers x0,y0,x1,y1/);
  assert.throws(() => parseBox('1,2,3,x'), /got '1,2,3,x'/);
});

test('compose writes the composite and the preview; bad boxes and empty masks are refused first', () => {
  const out = join(dir, 'c.png');
  const preview = join(dir, 'p.png');
  const base = ['--background', bg, '--object', obj, '--object-mask', mask, '--prompt', 'a red square'];
  attnkit('compose', ...base, '--box', '16,16,32,32', '--steps', '2', '--out', out, '--preview', preview);
  assert.deepEqual(readPng(out).shape, [1, 3, S, S]);
  assert.deepEqual(readPng(preview).shape, [1, 3, S + 4, 2 * S + 3 * 2]);
  const bad = join(dir, 'bad.png');
  assert.throws(() => attnkit('compose', ...base, '--box', '16,16,40,32', '--out', bad), /0 ≤ x0 < x1 ≤ 32/);
  const withEmpty = [...base.slice(0, 4), '--object-mask', empty, ...base.slice(6)];
  assert.throws(
    () => attnkit('compose', ...withEmpty, '--box', '0,0,8,8', '--out', bad),
    /object mask is empty/,
  );
  assert.ok(!existsSync(bad));
});

test('edit --method shape-variations: the source and one variation per proxy; --word and --proxies required', () => {
  const out = join(dir, 'sv.png');
  const args = ['--source', 'a red circle', '--method', 'shape-variations', '--steps', '2', '--out', out];
  attnkit('edit', ...args, '--word', 'circle', '--proxies', 'square', 'star');
  assert.deepEqual(readPng(join(dir, 'sv.target.png')).shape, [1, 3, S, S]);
  // the sweep: source, square, star
  assert.deepEqual(readPng(join(dir, 'sv.variations.png')).shape, [1, 3, S + 4, 3 * S + 4 * 2]);
  assert.throws(() => attnkit('edit', ...args, '--word', 'circle'), /needs --proxies <words\.\.\.>/);
  assert.throws(() => attnkit('edit', ...args, '--proxies', 'star'), /needs --word <word>/);
  // the object word's values only, the source's latents outside the object every step: same outputs
  const local = join(dir, 'sv-local.png');
  const opts = ['--proxy-tokens', 'word', '--local-steps', '1', '--mask-threshold', '0.3'];
  attnkit('edit', ...args.slice(0, -1), local, '--word', 'circle', '--proxies', 'square', ...opts);
  assert.deepEqual(readPng(join(dir, 'sv-local.variations.png')).shape, [1, 3, S + 4, 2 * S + 3 * 2]);
  assert.throws(() => attnkit('edit', ...args, '--word', 'circle', '--proxy-tokens', 'one'), /proxy-tokens/);
});
