// attnkit video on the built-in model: it writes a GIF that a GIF reader (written here from the GIF89a
// specification, not gifenc's) reads back as the asked number of frames of the model's size, looping, and a
// frame strip PNG F frames wide; bad input (fewer than 2 frames, a motion word on no object or an unknown one,
// an unknown direction or method) is an error naming it, and writes nothing.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readPng } from '../../../src/io/png.js';
import { repoRoot } from '../../helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-video-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function attnkit(...args: string[]) {
  return spawnSync(
    process.execPath,
    ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), 'video', ...args, '--threads', '1', '-q'],
    { cwd: repoRoot, encoding: 'utf8' },
  );
}

interface GifInfo {
  width: number;
  height: number;
  frames: { width: number; height: number; delayCs: number }[];
  loops: boolean;
}

/** Walks a GIF's blocks (GIF89a spec): screen descriptor, extensions, image descriptors, trailer. */
function readGif(b: Uint8Array): GifInfo {
  const text = (i: number, n: number) => String.fromCharCode(...b.subarray(i, i + n));
  assert.match(text(0, 6), /^GIF8[79]a$/);
  const u16 = (i: number) => b[i]! | (b[i + 1]! << 8);
  const info: GifInfo = { width: u16(6), height: u16(8), frames: [], loops: false };
  let at = 13;
  if (b[10]! & 0x80) at += 3 * 2 ** ((b[10]! & 7) + 1); // global colour table
  const skipSubBlocks = () => {
    while (b[at] !== 0) at += b[at]! + 1;
    at++;
  };
  let delayCs = 0;
  for (;;) {
    const kind = b[at++];
    if (kind === 0x3b) break; // trailer
    if (kind === 0x21) {
      const label = b[at++];
      if (label === 0xf9) delayCs = u16(at + 2); // graphic control: size, flags, delay
      if (label === 0xff && text(at + 1, 11) === 'NETSCAPE2.0') info.loops = true;
      skipSubBlocks();
    } else if (kind === 0x2c) {
      const flags = b[at + 8]!;
      info.frames.push({ width: u16(at + 4), height: u16(at + 6), delayCs });
      at += 9;
      if (flags & 0x80) at += 3 * 2 ** ((flags & 7) + 1); // local colour table
      at++; // LZW minimum code size
      skipSubBlocks();
    } else {
      assert.fail(`readGif: unexpected block 0x${kind?.toString(16)} at byte ${at - 1}`);
    }
  }
  return info;
}

test('attnkit video: a playable GIF of the asked frames and a frame strip', () => {
  const gif = join(dir, 'clip.gif');
  const strip = join(dir, 'strip.png');
  const r = attnkit(
    'a red circle moving right',
    '--frames',
    '3',
    '--steps',
    '3',
    '--out',
    gif,
    '--strip',
    strip,
  );
  assert.equal(r.status, 0, r.stderr);
  const info = readGif(readFileSync(gif));
  assert.equal(info.width, 64);
  assert.equal(info.height, 64);
  assert.equal(info.frames.length, 3);
  assert.ok(info.loops);
  for (const f of info.frames) assert.deepEqual(f, { width: 64, height: 64, delayCs: 13 });
  assert.deepEqual(readPng(strip).shape, [1, 3, 64, 3 * 64]);
});

test('attnkit video --edit: the edited clip, the source clip and a strip of both (Video-P2P)', () => {
  const [gif, source, strip] = ['edit.gif', 'source.gif', 'edit.png'].map((n) => join(dir, n)) as [
    string,
    string,
    string,
  ];
  const r = attnkit(
    'a red circle moving right',
    '--frames',
    '2',
    '--steps',
    '2',
    '--edit',
    'a blue circle moving right',
    '--out',
    gif,
    '--source',
    source,
    '--strip',
    strip,
  );
  assert.equal(r.status, 0, r.stderr);
  for (const file of [gif, source]) {
    const info = readGif(readFileSync(file));
    assert.equal(info.frames.length, 2, file);
    assert.deepEqual([info.width, info.height], [64, 64]);
  }
  assert.notDeepEqual(readFileSync(gif), readFileSync(source));
  assert.deepEqual(readPng(strip).shape, [1, 3, 2 * 64, 2 * 64]); // source frames above the edited ones
});

test('attnkit video: bad input is an error naming it, and nothing is written', () => {
  const cases: [string[], RegExp][] = [
    [['a red circle', '--frames', '1'], /--frames must be an integer from 2 to 64, got '1'/],
    [['a red blob moving right'], /"moving" \(word 3\) must follow an object's shape word.*"blob"/],
    [['moving right'], /must follow an object's shape word/],
    [
      ['a red circle moving sideways'],
      /must be followed by a direction \(left, right, up, down\), found "sideways"/,
    ],
    [['a red circle moving left and a blue square moving up'], /several directions \(left, up\)/],
    [
      ['a red circle', '--method', 'warp'],
      /--method must be one of t2v-zero, independent, motion-only, motion, got 'warp'/,
    ],
    [
      ['a red circle moving right', '--edit', 'a blue circle moving left'],
      /--edit asks for motion "left" but the prompt for "right"/,
    ],
    [['a red circle moving right', '--edit', 'a red circle'], /is the prompt itself; change a word/],
    [['a red circle', '--source', join(dir, 'src.gif')], /--source writes the source clip of an edit/],
    [
      ['a red circle', '--warp', 'cubic'],
      /--warp must be one of nearest-reflection, bilinear-border, bilinear-zeros, got 'cubic'/,
    ],
  ];
  for (const [args, message] of cases) {
    const out = join(dir, 'bad.gif');
    const r = attnkit(...args, '--out', out);
    assert.notEqual(r.status, 0, args.join(' '));
    assert.match(r.stderr, message);
    assert.ok(!existsSync(out));
  }
});
