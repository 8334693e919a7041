// The new concept of issue 27's experiment (lab/shapes/new-concept.ts): the diamond's scenes and captions, and
// ShapesEval's detector on rendered ground truth — the diamond found when opted in (≥ 99 %), and the
// detector's objects on the Shapes world's own scenes the same as before the opt-in hook existed, with and
// without the diamond (test/fixtures/new-concept/detector-before.json, made by the old detector).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { HELD_OUT_SEED_BASE, heldOutPrompts } from '../../../src/lab/seeds.js';
import { detectObjects, parseCaption, renderScene } from '../../../src/lab/shapes/index.js';
import {
  DIAMOND_TEMPLATE,
  insideDiamond,
  NEW_CONCEPT_SEEDS,
  newConceptScene,
  renderNewConcept,
} from '../../../src/lab/shapes/new-concept.js';
import { repoRoot } from '../../helpers/fixtures.js';

test('diamond: the rhombus |u|/0.8 + |v|/1.12 ≤ 1, worked by hand', () => {
  assert.ok(insideDiamond(0, 0));
  assert.ok(insideDiamond(0, 1.11) && !insideDiamond(0, 1.13));
  assert.ok(insideDiamond(0.79, 0) && !insideDiamond(0.81, 0));
  assert.ok(insideDiamond(0.4, 0.55) && !insideDiamond(0.4, 0.57)); // 0.5 + 0.56/1.12 = 1 at v = 0.56
});

test('new-concept scenes: deterministic, captions in the Shapes grammar with "diamond", one pixel of border', () => {
  const a = newConceptScene(NEW_CONCEPT_SEEDS.training + 7);
  assert.deepEqual(newConceptScene(NEW_CONCEPT_SEEDS.training + 7), a);
  assert.ok(NEW_CONCEPT_SEEDS.training > HELD_OUT_SEED_BASE + 1e8, 'apart from the Shapes held-out seeds');
  for (let k = 0; k < 40; k++) {
    const s = newConceptScene(NEW_CONCEPT_SEEDS.heldOut + k);
    const words = s.caption.split(' ');
    assert.ok(words.includes('diamond') && words.includes(s.color), s.caption);
    // with a known shape word in its place the caption parses as the Shapes grammar, colour kept
    const spec = parseCaption(s.caption.replace('diamond', 'square'));
    assert.equal(spec.objects.length, 1);
    assert.equal(spec.objects[0]!.color, s.color);
    const img = renderNewConcept(s).data as Float32Array;
    const bg = renderNewConcept({ ...s, scale: 1e-6 }).data as Float32Array; // no diamond
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 64; i++) {
        for (const p of [i, 63 * 64 + i, i * 64, i * 64 + 63]) {
          assert.equal(img[c * 4096 + p], bg[c * 4096 + p], `seed ${s.seed}: the border stays background`);
        }
      }
    }
  }
});

test('detector, diamond opted in: ≥ 99 % of 150 rendered diamonds found as diamonds of their colour', () => {
  let right = 0;
  for (let k = 0; k < 150; k++) {
    const s = newConceptScene(NEW_CONCEPT_SEEDS.development + k);
    const found = detectObjects(renderNewConcept(s), { extraShapes: [DIAMOND_TEMPLATE] }).objects;
    if (found.length === 1 && found[0]!.extraShape?.name === 'diamond' && found[0]!.color === s.color)
      right++;
  }
  assert.ok(right / 150 >= 0.99, `${right}/150`);
  // without the opt-in nothing is a diamond
  const s = newConceptScene(NEW_CONCEPT_SEEDS.development);
  assert.equal(detectObjects(renderNewConcept(s)).objects[0]!.extraShape, undefined);
});

test('detector on the Shapes world: the same objects as before the hook, with and without the diamond', () => {
  const before = JSON.parse(
    readFileSync(join(repoRoot, 'test/fixtures/new-concept/detector-before.json'), 'utf8'),
  ) as { seed: number; objects: Record<string, unknown>[] }[];
  const prompts = heldOutPrompts(before.length);
  let objects = 0;
  prompts.forEach((p, i) => {
    assert.equal(p.seed, before[i]!.seed);
    const image = renderScene(p.scene).image;
    for (const options of [{}, { extraShapes: [DIAMOND_TEMPLATE] }]) {
      const now = detectObjects(image, options).objects.map(
        ({ color, shape, size, cell, cx, cy, scale, fit, runnerUp, extraShape }) => {
          assert.equal(extraShape, undefined, `seed ${p.seed}: a ${color} ${shape} taken for a diamond`);
          return { color, shape, size, cell, cx, cy, scale, fit, runnerUp };
        },
      );
      assert.deepEqual(now, before[i]!.objects, `seed ${p.seed}`);
    }
    objects += before[i]!.objects.length;
  });
  assert.ok(objects > 100, `${objects} objects compared`);
});
