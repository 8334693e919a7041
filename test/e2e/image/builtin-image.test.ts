// One fixed-seed image of the built-in Shapes model (models/shapes-v1) against a checked-in PNG: the README's
// first command, `attnkit generate "a red circle above a blue square"`, with the CLI's defaults (25 steps,
// guidance 7.5, the folder's DDIM scheduler, the model's 64×64) and seed 0, on one onnxruntime thread.
//
// The reference test/fixtures/builtin/red-circle-blue-square-seed0.png is a regression reference, not a
// ground truth: it was made by
//   attnkit generate "a red circle above a blue square" --seed 0 --threads 1 --out red-circle-blue-square-seed0.png
// on commit abccd5c (a clean `git archive` of it; the source is that of 51b117d). The same command with
// --threads 2 wrote the same bytes on that machine, but the docs promise no cross-thread identity, so the test
// pins threads to 1.
//
// Tolerance: normalised MSE = mean((x − ref)²) / var(ref) < 1e-3 over the [-1, 1] pixel values, x being the
// generated image put through the same 8-bit PNG encoding as the CLI's output. The reference is dark
// (var(ref) = 0.071), so 1e-3 is an RMS error of about one 8-bit level: every value one level off (2/255)
// gives (2/255)² / 0.071 = 8.7e-4. That leaves room for kernel rounding differences between machines and
// rejects a different image: the same prompt with seed 1 is checked to be more than 100× the tolerance away
// (measured on the reference's machine: seed 0 NMSE 0, the same bytes; seed 1 NMSE 2.34).
//
// If a deliberate change to the model, pipeline or scheduler moves the image, regenerate the PNG with the
// command above and update the commit named here.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { readPng, StableDiffusion, setThreads, Tensor } from '../../../src/index.js';
import { decodePng, encodePng } from '../../../src/io/png.js';
import { repoRoot } from '../../helpers/fixtures.js';

const PROMPT = 'a red circle above a blue square';
const SEED = 0;
const OTHER_SEED = 1;
const REFERENCE = join(repoRoot, 'test', 'fixtures', 'builtin', 'red-circle-blue-square-seed0.png');
/** NMSE below which the image counts as the reference's. */
const NMSE_TOLERANCE = 1e-3;

/** Normalised MSE: mean((x − ref)²) / var(ref), the population variance of the reference's values. */
function nmse(x: Tensor, ref: Tensor): number {
  assert.deepEqual(
    x.shape,
    ref.shape,
    `nmse: shapes ${JSON.stringify(x.shape)} and ${JSON.stringify(ref.shape)}`,
  );
  const n = ref.size;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += ref.data[i] as number;
  mean /= n;
  let se = 0;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const r = ref.data[i] as number;
    se += ((x.data[i] as number) - r) ** 2;
    ss += (r - mean) ** 2;
  }
  assert.ok(ss > 0, 'nmse: the reference is constant');
  return se / ss;
}

test('nmse: hand-worked values (the tolerance helper itself)', () => {
  const ref = Tensor.from([-1, 1, -1, 1]); // mean 0, variance 1
  assert.equal(nmse(ref, ref), 0);
  assert.equal(nmse(Tensor.from([-1, 0, -1, 0]), ref), 0.5); // (0 + 1 + 0 + 1) / 4 / 1
  assert.equal(nmse(Tensor.from([0, 0, 0, 0]), ref), 1); // a flat image at the mean scores 1
  assert.equal(nmse(Tensor.from([1, 1, 1, 1]), Tensor.from([0, 2, 0, 2])), 1); // scale-free
  assert.throws(() => nmse(Tensor.from([1, 1]), Tensor.from([1, 1])), /constant/);
  assert.throws(() => nmse(Tensor.from([1, 2]), ref), /nmse: shapes/);
});

test('built-in model: the README prompt at seed 0 matches the checked-in PNG (NMSE < 1e-3); seed 1 does not', (t) => {
  setThreads(1);
  const sd = StableDiffusion.fromPretrained(join(repoRoot, 'models', 'shapes-v1'));
  // the CLI's `generate` defaults (src/cli/generate.ts); the image goes through the PNG bytes it would write
  const generate = (seed: number): Tensor =>
    decodePng(encodePng(sd.generate({ prompt: PROMPT, steps: 25, guidanceScale: 7.5, seed }).images));
  const ref = readPng(REFERENCE);
  assert.deepEqual(ref.shape, [1, 3, 64, 64]);

  const same = nmse(generate(SEED), ref);
  assert.ok(same < NMSE_TOLERANCE, `seed ${SEED}: NMSE ${same} ≥ ${NMSE_TOLERANCE} against ${REFERENCE}`);
  // not trivially passing: another seed's image of the same prompt is far outside the tolerance
  const other = nmse(generate(OTHER_SEED), ref);
  assert.ok(
    other > 100 * NMSE_TOLERANCE,
    `seed ${OTHER_SEED}: NMSE ${other} is within 100× the tolerance; the check cannot tell images apart`,
  );
  t.diagnostic(`NMSE seed ${SEED}: ${same}, seed ${OTHER_SEED}: ${other}`);
});
