import assert from 'node:assert/strict';
import { test } from 'node:test';
import { captionOf } from '../../../src/lab/shapes/caption.js';
import { detectObjects } from '../../../src/lab/shapes/detect.js';
import { evaluate } from '../../../src/lab/shapes/eval.js';
import { PALETTE } from '../../../src/lab/shapes/palette.js';
import { renderScene } from '../../../src/lab/shapes/render.js';
import { type Scene, type SceneObject, sampleScene } from '../../../src/lab/shapes/scene.js';
import { specOfScene } from '../../../src/lab/shapes/spec.js';
import { Generator } from '../../../src/tensor/random.js';
import { Tensor } from '../../../src/tensor/tensor.js';

/** SHAPES_EVAL_SCENES=1000 runs the full validation (≈ 20 s); CI runs 300. */
const SCENES = Number(process.env['SHAPES_EVAL_SCENES'] ?? 300);

test(`ShapesEval reads ${SCENES} rendered scenes: ≥ 99% of objects right in colour, shape, size and cell`, () => {
  let objects = 0;
  let correct = 0;
  let scenes = 0;
  for (let seed = 0; seed < SCENES; seed++) {
    const scene = sampleScene(seed);
    const report = evaluate(renderScene(scene).image, specOfScene(scene));
    objects += report.objects.length;
    correct += report.counts.correct;
    if (report.allCorrect && report.countCorrect) scenes++;
  }
  const accuracy = correct / objects;
  console.log(
    `ShapesEval on ${SCENES} rendered scenes: ${correct}/${objects} objects (${(100 * accuracy).toFixed(2)}%), ${scenes} scenes all correct`,
  );
  assert.ok(accuracy >= 0.99, `object accuracy ${accuracy}`);
  assert.ok(scenes / SCENES >= 0.98, `scene accuracy ${scenes / SCENES}`);
});

test('captions of rendered scenes score all correct (sizes, cells, relations, background as worded)', () => {
  for (let seed = 1000; seed < 1100; seed++) {
    const scene = sampleScene(seed);
    const report = evaluate(renderScene(scene).image, captionOf(scene).text);
    assert.ok(report.allCorrect, `seed ${seed}: ${report.caption}`);
  }
});

/** A scene of three objects with every attribute known, to change one thing at a time. */
function baseScene(): Scene {
  return {
    seed: 0,
    width: 64,
    height: 64,
    background: { tone: 'light', rgb: [200, 190, 160], texture: 'noise', textureSeed: 9 },
    objects: [
      { shape: 'star', color: 'red', size: 'large', cell: { row: 0, col: 0 }, cx: 11, cy: 12, scale: 9 },
      { shape: 'ring', color: 'blue', size: 'small', cell: { row: 1, col: 2 }, cx: 53, cy: 31, scale: 5.5 },
      { shape: 'heart', color: 'green', size: 'large', cell: { row: 2, col: 1 }, cx: 32, cy: 52, scale: 9 },
    ],
    wording: { sizes: [true, true, true], positions: [true, true, true], relation: null, background: true },
  };
}

/** The base scene with object `i` changed by `patch` (or removed, for null), rendered. */
function edited(i: number, patch: Partial<SceneObject> | null): Tensor {
  const s = structuredClone(baseScene());
  if (patch === null) s.objects.splice(i, 1);
  else Object.assign(s.objects[i]!, patch);
  return renderScene(s).image;
}

test('hand-made cases: the unchanged scene is all correct', () => {
  const report = evaluate(renderScene(baseScene()).image, specOfScene(baseScene()));
  assert.ok(report.allCorrect && report.countCorrect);
  assert.equal(report.background.detected, 'light');
});

test('hand-made cases: a missing object is absent', () => {
  const report = evaluate(edited(1, null), specOfScene(baseScene()));
  const [star, ring, heart] = report.objects;
  assert.ok(star!.correct && heart!.correct);
  assert.equal(ring!.present, false);
  assert.equal(ring!.correct, false);
  assert.equal(ring!.detected, null);
  assert.equal(report.allCorrect, false);
  assert.deepEqual(report.counts, { expected: 3, detected: 2, correct: 2 });
});

test('hand-made cases: a wrong colour, a swapped shape, a wrong size, a wrong cell are caught', () => {
  const spec = specOfScene(baseScene());
  const colour = evaluate(edited(0, { color: 'orange' }), spec).objects[0]!;
  assert.deepEqual([colour.present, colour.color, colour.shape, colour.correct], [true, false, true, false]);
  assert.equal(colour.detected!.color, 'orange');
  for (const shape of ['circle', 'triangle', 'square', 'cross', 'heart'] as const) {
    const swapped = evaluate(edited(0, { shape: shape }), spec).objects[0]!;
    assert.deepEqual(
      [swapped.present, swapped.color, swapped.shape, swapped.correct],
      [true, true, false, false],
    );
    assert.equal(swapped.detected!.shape, shape);
  }
  const ring = evaluate(edited(1, { shape: 'circle' }), spec).objects[1]!;
  assert.equal(ring.shape, false, 'a ring with its hole filled is a circle');
  const size = evaluate(edited(2, { scale: 5.5 }), spec).objects[2]!;
  assert.deepEqual([size.color, size.shape, size.size, size.correct], [true, true, false, false]);
  const moved = evaluate(edited(1, { cx: 53, cy: 53 }), spec).objects[1]!;
  assert.deepEqual([moved.position, moved.correct], [false, false]);
  assert.deepEqual(moved.detected!.cell, { row: 2, col: 2 });
});

test('hand-made cases: attribute binding, relations, background', () => {
  // a blue star and a red ring
  const image = renderScene({
    ...baseScene(),
    objects: baseScene().objects.map((o, i) =>
      i === 0 ? { ...o, color: 'blue' } : i === 1 ? { ...o, color: 'red' } : o,
    ),
  }).image;
  const swapped = evaluate(image, 'a red star and a blue ring');
  assert.ok(
    swapped.objects.every((o) => o.present && !o.correct),
    'colours bound to the wrong shapes',
  );
  assert.ok(evaluate(image, 'a blue star and a red ring').allCorrect);
  const base = renderScene(baseScene()).image;
  assert.ok(evaluate(base, 'a red star above a green heart').allCorrect);
  const below = evaluate(base, 'a red star below a green heart');
  assert.ok(below.objects.every((o) => o.correct));
  assert.deepEqual(
    below.relations.map((r) => r.holds),
    [false],
  );
  assert.equal(below.allCorrect, false);
  assert.ok(evaluate(base, 'a blue ring to the right of a red star on a light background').allCorrect);
  const dark = evaluate(base, 'a blue ring on a dark background');
  assert.deepEqual([dark.background.correct, dark.allCorrect], [false, false]);
});

/** Pixels of a (1, 3, 64, 64) image drawn by hand: hard-edged shapes, no supersampling, no renderer. */
function handDrawn(): Tensor {
  const x = new Float32Array(3 * 4096);
  const noise = new Generator(42).randn([4096]).data as Float32Array;
  for (let p = 0; p < 4096; p++) {
    const px = (p % 64) + 0.5;
    const py = Math.floor(p / 64) + 0.5;
    let rgb: readonly number[] = [30, 30, 40];
    if ((px - 12) ** 2 + (py - 32) ** 2 <= 8.5 ** 2) rgb = PALETTE.red; // large circle, left
    if (Math.abs(px - 52) <= 4.5 && Math.abs(py - 52) <= 4.5) rgb = PALETTE.yellow; // small square, bottom right
    for (let c = 0; c < 3; c++)
      x[c * 4096 + p] = Math.min(1, Math.max(-1, (rgb[c]! + 4 * noise[p]!) / 127.5 - 1));
  }
  return new Tensor(x, [1, 3, 64, 64]);
}

test('an image drawn without the renderer scores as its caption says', () => {
  const report = evaluate(
    handDrawn(),
    'a large red circle on the left and a small yellow square in the bottom right on a dark background',
  );
  assert.ok(report.allCorrect, JSON.stringify(report.objects.map((o) => o.detected)));
  assert.equal(evaluate(handDrawn(), 'a yellow circle').objects[0]!.correct, false);
});

test('a blank image has no objects; a 128 × 128 scene and an 8-bit noisy scene still read right', () => {
  const blank = evaluate(new Tensor(new Float32Array(3 * 4096).fill(-0.8), [1, 3, 64, 64]), 'a red circle');
  assert.deepEqual([blank.objects[0]!.present, blank.counts.detected], [false, 0]);
  for (let seed = 0; seed < 20; seed++) {
    const big = sampleScene(seed, { size: 128 });
    assert.ok(evaluate(renderScene(big).image, specOfScene(big)).allCorrect, `128 px seed ${seed}`);
    // quantised to 8 bits with Gaussian noise of σ = 5 levels
    const scene = sampleScene(seed);
    const x = renderScene(scene).image.data as Float32Array;
    const n = new Generator(seed).randn([x.length]).data as Float32Array;
    const noisy = Float32Array.from(
      x,
      (v, i) => Math.round(Math.min(255, Math.max(0, (v + 1) * 127.5 + 5 * n[i]!))) / 127.5 - 1,
    );
    const report = evaluate(new Tensor(noisy, [1, 3, 64, 64]), specOfScene(scene));
    assert.ok(report.allCorrect, `noisy seed ${seed}`);
  }
  assert.throws(
    () => detectObjects(new Tensor(new Float32Array(64), [1, 1, 8, 8])),
    /expected a float32 image of shape/,
  );
});
