// attnkit maps / segment / edit / generate's efficiency options on the tiny-sd-a model: they run and write
// PNGs of the expected sizes; the options change the image where they must and only there.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { companionPaths, parseWeights } from '../../../src/cli/edit.js';
import { efficiencyControllers } from '../../../src/cli/efficiency.js';
import { parseIntList, parseStepRange, sidesAtHeight } from '../../../src/cli/maps.js';
import { BUILTIN_MODEL } from '../../../src/cli/models.js';
import { readPng, writePng } from '../../../src/io/png.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { randn } from '../../../src/tensor/random.js';
import { goldenDir, repoRoot } from '../../helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function attnkit(...args: string[]): string {
  return attnkitOn(goldenDir(), ...args);
}

function attnkitOn(model: string, ...args: string[]): string {
  return execFileSync(
    process.execPath,
    ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), ...args, '--model', model, '--threads', '1', '-q'],
    { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
}

test('maps writes a grid: the image, one overlay per word, then self-attention components', () => {
  const out = join(dir, 'maps.png');
  const args = ['--sampling-steps', '2', '--steps', '0:2', '--res', '8', '--self-components', '2'];
  attnkit('maps', 'a red circle', '--out', out, ...args);
  // 6 tiles of 32 px zoomed ×4 = 128 px in one row, gaps 2, label strip 5·2 + 4
  assert.deepEqual(readPng(out).shape, [1, 3, 128 + 14 + 4, 6 * 128 + 7 * 2]);
});

test('a prompt longer than the tokenizer: maps leaves the cut words out, segment names a cut word', () => {
  // tiny-sd-a's tokenizer keeps 16 tokens: "square" is cut off this prompt (bos, 14 ids, eos)
  const prompt = 'a crimson circle and a crimson square';
  const out = join(dir, 'maps-long.png');
  attnkit('maps', prompt, '--out', out, '--sampling-steps', '2', '--res', '8');
  // 7 tiles (the image and the 6 words the model saw; no NaN map from the cut word), 128 px each, six per
  // row: two rows of tile + label strip (14) with gaps 2
  assert.deepEqual(readPng(out).shape, [1, 3, 2 * (128 + 14) + 3 * 2, 6 * 128 + 7 * 2]);
  const mask = join(dir, 'mask-long.png');
  assert.throws(
    () => attnkit('segment', prompt, '--word', 'square', '--out', mask, '--sampling-steps', '2'),
    /"square" lies past the first 16 tokens of the prompt/,
  );
  assert.ok(!existsSync(mask));
});

test('sidesAtHeight: a default map side names a UNet level, found again at another image height', () => {
  // the built-in model: latent side 16, cross-attention maps 16, 8, 4 (levels 0, 1, 2)
  assert.deepEqual(sidesAtHeight([16, 8, 4], 16, 16), [16, 8, 4]);
  assert.deepEqual(sidesAtHeight([16, 8, 4], 16, 12), [12, 6, 3]);
  // odd heights round up at each stride-2 convolution: 25 → 13 → 7, 15 → 8 → 4
  assert.deepEqual(sidesAtHeight([16, 8, 4], 16, 25), [25, 13, 7]);
  assert.deepEqual(sidesAtHeight([8], 16, 15), [8]);
  assert.deepEqual(sidesAtHeight([5], 16, 12), [5], 'not a level of the model: kept');
});

test('segment --image on the built-in model at a size other than its own reads the same level of maps', () => {
  // 100 × 60: latent 25 × 15, whose largest maps are 15 high, not the default 16
  const image = join(dir, 'wide.png');
  writePng(image, randn([1, 3, 60, 100], 5).mul(0.3));
  const out = join(dir, 'wide-mask.png');
  const args = ['--word', 'circle', '--image', image, '--out', out, '--sampling-steps', '3'];
  attnkitOn(BUILTIN_MODEL, 'segment', 'a red circle', ...args);
  assert.deepEqual(readPng(out).shape, [1, 3, 60, 100]);
});

test('segment writes a binary mask at image size, and a preview', () => {
  const out = join(dir, 'mask.png');
  const preview = join(dir, 'preview.png');
  attnkit(
    'segment',
    'a red circle',
    '--word',
    'circle',
    '--out',
    out,
    '--preview',
    preview,
    '--sampling-steps',
    '2',
  );
  const mask = readPng(out);
  assert.deepEqual(mask.shape, [1, 3, 32, 32]);
  assert.ok(
    mask.toArray().every((v) => v === -1 || v === 1),
    'mask pixels are 0 or 255',
  );
  assert.ok(existsSync(preview));
});

test("segment and maps --image read a given image (its size, not the model's); a bad size is named", () => {
  const image = join(dir, 'given.png');
  const side = 48; // the model's default is 32
  writePng(image, randn([1, 3, side, side], 3).mul(0.3));
  const out = join(dir, 'given-mask.png');
  attnkit(
    'segment',
    'a red circle',
    '--word',
    'circle',
    '--image',
    image,
    '--out',
    out,
    '--sampling-steps',
    '2',
  );
  assert.deepEqual(readPng(out).shape, [1, 3, side, side]);
  const maps = join(dir, 'given-maps.png');
  attnkit('maps', 'a red circle', '--image', image, '--out', maps, '--sampling-steps', '2');
  // image + 3 words, 48 px tiles zoomed ×3 = 144 px, gaps 2, label strip 5·2 + 4
  assert.deepEqual(readPng(maps).shape, [1, 3, 144 + 14 + 4, 4 * 144 + 5 * 2]);
  const odd = join(dir, 'odd.png');
  writePng(odd, randn([1, 3, 33, 33], 4).mul(0.3));
  assert.throws(
    () => attnkit('segment', 'a red circle', '--word', 'circle', '--image', odd, '--sampling-steps', '2'),
    /image size 33×33 must be a multiple of/,
  );
});

test('edit writes source, target and the side-by-side', () => {
  const out = join(dir, 'edit.png');
  attnkit(
    'edit',
    '--source',
    'a red circle',
    '--target',
    'a green circle',
    '--blend',
    'red',
    'green',
    '--reweight',
    'green=2',
    '--steps',
    '2',
    '--out',
    out,
  );
  const paths = companionPaths(out);
  assert.deepEqual(readPng(paths.source).shape, [1, 3, 32, 32]);
  assert.deepEqual(readPng(paths.target).shape, [1, 3, 32, 32]);
  assert.deepEqual(readPng(out).shape, [1, 3, 36, 70]);
  assert.throws(() => attnkit('edit', '--source', 'a circle', '--method', 'nope'), /Allowed choices are p2p/);
  assert.throws(
    () => attnkit('edit', '--source', 'a circle', '--null-text'),
    /--null-text inverts the image/,
  );
  assert.throws(
    () => attnkit('edit', '--source', 'a circle', '--null-text-source-only'),
    /--null-text-source-only sets null-text inversion/,
  );
  // another method's option would be read by nobody: refused, naming the method it belongs to
  const other = join(dir, 'other-method.png');
  assert.throws(
    () => attnkit('edit', '--source', 'a circle', '--method', 'masactrl', '--null-text', '--out', other),
    /--null-text is an option of --method p2p; it does nothing with --method masactrl/,
  );
  assert.throws(
    () => attnkit('edit', '--source', 'a circle', '--mask-words', 'circle', '--out', other),
    /--mask-words is an option of --method masactrl; it does nothing with --method p2p/,
  );
  assert.ok(!existsSync(other));
  // threshold 1: nothing passes it (maps normalised by their maximum), so with the blend from the first step the
  // target keeps the source's latents throughout and is the source image
  const kept = join(dir, 'kept.png');
  const flags = [
    '--source',
    'a red circle',
    '--target',
    'a green circle',
    '--steps',
    '2',
    '--blend',
    'red',
    'green',
  ];
  attnkit('edit', ...flags, '--blend-threshold', '1', '--out', kept);
  const keptPaths = companionPaths(kept);
  assert.deepEqual(readPng(keptPaths.target).toArray(), readPng(keptPaths.source).toArray());
  assert.notDeepEqual(readPng(paths.target).toArray(), readPng(paths.source).toArray());
  assert.throws(() => attnkit('edit', ...flags, '--blend-threshold', '1.5'), /normalised to \[0, 1\]/);
  assert.throws(
    () => attnkit('edit', '--source', 'a circle', '--blend-threshold', '0.6'),
    /--blend-threshold sets LocalBlend/,
  );
});

test('option parsers', () => {
  assert.deepEqual(parseStepRange('5:', 10), [5, 10]);
  assert.deepEqual(parseStepRange(':3', 10), [0, 3]);
  assert.throws(() => parseStepRange('4:2', 10), /empty/);
  assert.deepEqual(parseIntList('16, 8', '--res'), [16, 8]);
  assert.deepEqual(parseWeights(['circle=2', 'a=b=-1']), { circle: 2, 'a=b': -1 });
  assert.throws(() => parseWeights(['circle']), /word=weight/);
  assert.deepEqual(companionPaths('out/x.png'), { source: 'out/x.source.png', target: 'out/x.target.png' });
});

test('generate: --attention, --tome and --block-cache run; exact functions keep the image, caching changes it', () => {
  const png = (name: string, ...flags: string[]) => {
    const out = join(dir, `${name}.png`);
    attnkit('generate', 'a red circle', '--steps', '4', '--out', out, ...flags);
    return readPng(out);
  };
  const plain = png('plain');
  const maxDiff = (a: Tensor, b: Tensor) => Math.max(...a.sub(b).abs().toArray());
  // chunked attention is exact: at most one 8-bit level apart (PNG in [−1, 1]: 2/255 per level)
  assert.ok(maxDiff(png('chunked', '--attention', 'chunked'), plain) <= 2 / 255 + 1e-6);
  assert.ok(maxDiff(png('cached', '--block-cache', '2'), plain) > 4 / 255, 'block caching changed nothing');
  assert.deepEqual(
    png('all', '--attention', 'agent', '--tome', '0.5', '--block-cache', '3').shape,
    [1, 3, 32, 32],
  );
  assert.throws(
    () => attnkit('generate', 'a circle', '--attention', 'fast'),
    /unknown function 'fast'; known: softmax/,
  );
});

test('efficiency options: the controllers they make, and bad values refused', () => {
  assert.deepEqual(efficiencyControllers({}), []);
  assert.deepEqual(
    efficiencyControllers({ attention: 'window', tome: 0.5, blockCache: 2 }).map((c) => c.name),
    ['useAttention(window)', 'TokenMerging', 'BlockCaching'],
  );
  assert.deepEqual(efficiencyControllers({ blockCache: 1 }), [], '--block-cache 1 is off');
  assert.throws(() => efficiencyControllers({ tome: 1 }), /--tome: the ratio must be in \[0, 1\), got 1/);
  assert.throws(
    () => efficiencyControllers({ blockCache: 0 }),
    /--block-cache: expected a step interval ≥ 1/,
  );
});
