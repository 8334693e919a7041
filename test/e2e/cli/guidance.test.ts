// attnkit generate / maps with --excite, --box (layout guidance, BoxDiff) and --paint on the built-in model: they
// run and write their PNGs; a bad box, a word not in the prompt or a mask of the wrong size is refused with a
// message naming it, before anything is generated (no output file).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseBoxSpec, parsePaintSpec } from '../../../src/cli/guidance-options.js';
import { readPng, writePng } from '../../../src/io/png.js';
import { Tensor } from '../../../src/tensor/index.js';
import { repoRoot } from '../../helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-guidance-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const prompt = 'a red circle on the left and a blue square on the right';

function attnkit(...args: string[]): string {
  return execFileSync(
    process.execPath,
    ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), ...args, '--threads', '1', '-q'],
    { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

/** The CLI's stderr when it fails (it must). */
function failure(...args: string[]): string {
  try {
    attnkit(...args);
  } catch (e) {
    return String((e as { stderr?: string }).stderr);
  }
  assert.fail(`attnkit ${args.join(' ')} succeeded`);
}

test('the option parsers', () => {
  assert.deepEqual(parseBoxSpec('circle=0,0.1,0.5,1'), { word: 'circle', box: [0, 0.1, 0.5, 1] });
  assert.deepEqual(parseBoxSpec('3=0,0,1,1'), { word: 3, box: [0, 0, 1, 1] });
  assert.throws(() => parseBoxSpec('circle=0,0,1'), /word=x0,y0,x1,y1/);
  assert.deepEqual(parsePaintSpec('circle=m.png:2'), { word: 'circle', region: 'm.png', weight: 2 });
  assert.deepEqual(parsePaintSpec('circle=0,0,0.5,0.5'), {
    word: 'circle',
    region: [0, 0, 0.5, 0.5],
    weight: 1,
  });
  assert.throws(() => parsePaintSpec('circle='), /word=mask.png/);
});

test('generate --excite, --box (both methods) and --paint write 64×64 images', () => {
  const runs: [string, string[]][] = [
    ['excite', ['--excite']],
    [
      'layout',
      [
        '--box',
        'circle=0,0.2,0.4,0.8',
        '--box',
        'square=0.6,0.2,1,0.8',
        '--box-scale',
        '100',
        '--box-sides',
        '16,8',
      ],
    ],
    ['boxdiff', ['--box', 'circle=0,0.2,0.4,0.8', '--box-method', 'boxdiff']],
    ['paint', ['--paint', 'circle=0,0.2,0.4,0.8:2']],
  ];
  for (const [name, flags] of runs) {
    const out = join(dir, `${name}.png`);
    attnkit('generate', prompt, '--out', out, '--steps', '3', ...flags);
    assert.deepEqual(readPng(out).shape, [1, 3, 64, 64], name);
  }
});

test('maps after guidance: the grid is written', () => {
  const out = join(dir, 'maps.png');
  attnkit('maps', prompt, '--out', out, '--sampling-steps', '3', '--excite', 'circle,square');
  assert.equal(readPng(out).shape[0], 1);
});

test('bad input is refused before anything is generated, naming the problem', () => {
  const out = join(dir, 'never.png');
  const cases: [string[], RegExp][] = [
    [['--box', 'circle=0,0,1.5,1'], /box of "circle" \[0, 0, 1.5, 1\] lies outside \[0, 1\]/],
    [['--box', 'circle=0.6,0,0.2,1'], /empty or inverted/],
    [['--box', 'heart=0,0,1,1'], /"heart" is not a word of the prompt/],
    [['--excite', 'star'], /Attend-and-Excite.*"star"/],
    [['--box', 'circle=0,0,1,1', '--box-method', 'gligen'], /--box-method must be layout or boxdiff/],
    [['--box', 'circle=0,0,1,1', '--box-sides', '16,x'], /--box-sides: map sides as integers/],
  ];
  const mask = join(dir, 'mask32.png');
  writePng(mask, Tensor.zeros([1, 3, 32, 32]));
  cases.push([['--paint', `circle=${mask}`], /mask of "circle" is 32×32, the image 64×64/]);
  cases.push([['--paint', `circle=${join(dir, 'nope.png')}`], /--paint .*nope.png does not exist/]);
  for (const [flags, message] of cases) {
    assert.match(failure('generate', prompt, '--out', out, '--steps', '2', ...flags), message);
    assert.ok(!existsSync(out), `${flags.join(' ')} wrote an image`);
  }
});
