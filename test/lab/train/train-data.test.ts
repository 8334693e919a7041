// The Shapes world as training data (src/lab/train-data.ts): it is a source training accepts, example k of a
// data seed is always the same scene, the object region and the object words the stages weight and ground.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { heldOutSeed } from '../../../src/lab/seeds.js';
import { captionOf } from '../../../src/lab/shapes/caption.js';
import { renderScene } from '../../../src/lab/shapes/render.js';
import { sampleScene } from '../../../src/lab/shapes/scene.js';
import {
  exampleSeed,
  objectWords,
  shapesBatch,
  shapesExamples,
  shapesTrainingData,
} from '../../../src/lab/train-data.js';
import { type TrainingData, trainingBatch } from '../../../src/train/index.js';

test('train data: the Shapes source is a TrainingData, its parts agree, and batch i is examples [iB, (i+1)B)', () => {
  const data: TrainingData = shapesTrainingData;
  const five = data.examples(2, 0, 5);
  assert.deepEqual(five.images.shape, [5, 3, data.imageSize, data.imageSize]);
  assert.deepEqual(five.objects.shape, [5, 1, data.imageSize, data.imageSize]);
  assert.equal(five.words.length, 5);
  assert.deepEqual(data.captions(2, 5), five.captions);
  // example k is the scene of exampleSeed(s, k), whatever the batch starts at: a resumed run draws the same
  const later = trainingBatch(data, 2, 1, 2);
  assert.deepEqual(later.captions, five.captions.slice(2, 4));
  assert.deepEqual(later.images.data, five.images.slice(0, 2, 4).data);
  assert.deepEqual(later.objects.data, five.objects.slice(0, 2, 4).data);
  assert.deepEqual(shapesBatch(2, 1, 2).images.data, later.images.data);
  assert.deepEqual(five.images.slice(0, 3, 4).data, renderScene(sampleScene(exampleSeed(2, 3))).image.data);
  assert.equal(five.captions[3], captionOf(sampleScene(exampleSeed(2, 3))).text);
  // held-out images are the held-out prompts' scenes
  const held = data.heldOut(2);
  assert.deepEqual(held.shape, [2, 3, 64, 64]);
  assert.deepEqual(held.slice(0, 1, 2).data, renderScene(sampleScene(heldOutSeed(1))).image.data);
});

test('train data: the object region covers every object pixel plus one', () => {
  const batch = shapesBatch(7, 0, 2);
  for (let i = 0; i < 2; i++) {
    const r = renderScene(sampleScene(exampleSeed(7, i)));
    const region = batch.objects.slice(0, i, i + 1).data;
    const size = 64;
    for (let p = 0; p < size * size; p++) {
      const covered = r.masks.some((m) => (m.coverage.data[p] as number) > 0);
      if (covered) assert.equal(region[p], 1, `object pixel ${p} outside the region`);
      // a region pixel is an object pixel or touches one
      if (region[p] === 1 && !covered) {
        const [y, x] = [Math.floor(p / size), p % size];
        let touches = false;
        for (let dy = -1; dy <= 1; dy++)
          for (let dx = -1; dx <= 1; dx++) {
            const q = (y + dy) * size + x + dx;
            if (y + dy >= 0 && y + dy < size && x + dx >= 0 && x + dx < size)
              touches ||= r.masks.some((m) => (m.coverage.data[q] as number) > 0);
          }
        assert.ok(touches, `region pixel ${p} is neither an object pixel nor next to one`);
      }
    }
  }
});

test('objectWords: size, colour, shape and place words of each object, with its coverage; no relation words', () => {
  let sawPlace = false;
  let sawRelation = false;
  for (let seed = 0; seed < 60; seed++) {
    const scene = sampleScene(seed);
    const caption = captionOf(scene);
    const covers = scene.objects.map((_, i) => new Float32Array([i]));
    const words = objectWords(caption, covers);
    const named = new Set(words.map((w) => w.word));
    for (const o of caption.objects) {
      for (const r of [o.color, o.shape, ...(o.size ? [o.size] : [])]) {
        const w = words.find((x) => x.word === r.index);
        assert.equal(w?.coverage, covers[o.object], `${caption.text}: '${r.word}' grounded on its object`);
        assert.equal(w?.place, undefined, `${caption.text}: '${r.word}' is not a place word`);
      }
      for (const r of o.position ?? []) {
        assert.equal(
          named.has(r.index),
          !['in', 'on', 'at', 'the'].includes(r.word),
          `${caption.text}: '${r.word}'`,
        );
        if (named.has(r.index)) assert.equal(words.find((x) => x.word === r.index)?.place, true);
        sawPlace ||= named.has(r.index);
      }
    }
    for (const r of caption.relation ?? []) {
      sawRelation = true;
      assert.ok(!named.has(r.index), `${caption.text}: relation word '${r.word}' is not grounded`);
    }
    for (const w of words) assert.ok((caption.words[w.word] ?? '') !== '');
  }
  assert.ok(sawPlace && sawRelation, 'the 60 scenes include location phrases and relations');
  assert.throws(() => objectWords(captionOf(sampleScene(1)), []), /names object 0/);
  // the training data carries them, one list per row
  const batch = shapesExamples(3, 0, 4);
  assert.equal(batch.words.length, 4);
  for (const row of batch.words)
    assert.ok(row.length >= 2 && row.every((w) => w.coverage.length === 64 * 64));
});
