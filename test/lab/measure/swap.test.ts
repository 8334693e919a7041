// The scoring of the word-swap measurements (colour swap, shape swap) on rendered scenes where the answer is
// known, and the swapped captions they edit towards.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  captionOf,
  detectedMask,
  evaluate,
  heldOutSeed,
  maskIoU,
  renderScene,
  samePlaceMask,
  sampleScene,
  scoreSwap,
  swappedCaption,
} from '../../../src/lab/index.js';

test('measure: a rendered colour swap scores as changed, same mask, nothing changed outside', () => {
  const scene = sampleScene(heldOutSeed(7), { objects: 2 });
  const swapped = {
    ...scene,
    objects: scene.objects.map((o, i) => (i === 0 ? { ...o, color: 'cyan' as const } : o)),
  };
  if (scene.objects.some((o) => o.color === 'cyan')) swapped.objects[0]!.color = 'white';
  const source = renderScene(scene).image;
  const edited = renderScene(swapped).image;
  const caption = captionOf(scene).text;
  const s = scoreSwap(source, evaluate(source, caption), edited, captionOf(swapped).text, 'color');
  assert.equal(s.changed, true);
  assert.ok(s.iou > 0.95, `iou ${s.iou}`);
  assert.ok(s.maeOutside < 1e-3, `outside error ${s.maeOutside}`);
  assert.equal(s.othersIoU.length, 1);
  assert.ok(s.othersIoU[0]! > 0.95);
  assert.ok(s.iouCopies > 0.95 && s.othersIoUCopies[0]! > 0.95, `copies ${s.iouCopies} ${s.othersIoUCopies}`);
  // the unedited source is not "changed", and a different scene moves the object
  assert.equal(
    scoreSwap(source, evaluate(source, caption), source, captionOf(swapped).text, 'color').changed,
    false,
  );
  const other = renderScene(sampleScene(heldOutSeed(8), { objects: 2 })).image;
  assert.ok(
    scoreSwap(source, evaluate(source, caption), other, captionOf(swapped).text, 'color').maeOutside > 1,
  );
});

test('measure: with every copy of an object, a model that draws it twice is scored on both copies', () => {
  // one object, drawn twice: the second a copy of the first in another cell (the caption names one)
  const scene = sampleScene(heldOutSeed(7), { objects: 1 });
  const first = scene.objects[0]!;
  const copy = { ...first, cx: 63 - first.cx, cy: 63 - first.cy };
  const twice = { ...scene, objects: [first, copy] };
  const colour = first.color === 'cyan' ? ('white' as const) : ('cyan' as const);
  const recolour = (o: typeof first) => ({ ...o, color: colour });
  const caption = captionOf(scene);
  const target = caption.words.map((w, i) => (i === caption.objects[0]!.color.index ? colour : w)).join(' ');
  const source = renderScene(twice).image;
  const report = evaluate(source, caption.text);
  // both copies recoloured: every copy keeps its mask, nothing else changes
  const both = scoreSwap(
    source,
    report,
    renderScene({ ...twice, objects: twice.objects.map(recolour) }).image,
    target,
    'color',
  );
  assert.ok(both.iouCopies > 0.95, `iou of copies ${both.iouCopies}`);
  assert.ok(both.maeOutsideCopies < 1e-3, `outside every copy ${both.maeOutsideCopies}`);
  // one copy recoloured and the other gone: two equal masks against one, IoU 1/2
  const one = scoreSwap(
    source,
    report,
    renderScene({ ...twice, objects: [recolour(first)] }).image,
    target,
    'color',
  );
  assert.ok(Math.abs(one.iouCopies - 0.5) < 0.03, `iou of copies ${one.iouCopies}`);
  assert.ok(one.maeOutsideCopies < 1e-3, "the vanished copy is inside the copies' region");
});

test("measure: the copy in the source object's place is found whichever copy ShapesEval matched", () => {
  // an object drawn twice, far apart (bottom right and top left)
  const scene = sampleScene(heldOutSeed(7), { objects: 1 });
  const first = scene.objects[0]!;
  assert.ok(first.cx > 40 && first.cy > 40, 'the scene this test was written for');
  const copy = { ...first, cx: 63 - first.cx, cy: 63 - first.cy };
  const image = renderScene({ ...scene, objects: [first, copy] }).image;
  const report = evaluate(image, captionOf(scene).text);
  const near = (x: number, y: number) =>
    report.detection.objects.find((d) => Math.hypot(d.cx - x, d.cy - y) < 3)!;
  const [atFirst, atCopy] = [near(first.cx, first.cy), near(copy.cx, copy.cy)];
  assert.ok(atFirst && atCopy, 'both copies detected');
  const source = detectedMask(atFirst, 64, 64);
  // whichever copy is the match, the mask found is the one in the source object's place
  for (const matched of [atFirst, atCopy]) {
    const flipped = { ...report, objects: [{ ...report.objects[0]!, detected: matched }] };
    assert.ok(maskIoU(source, samePlaceMask(source, flipped, 0, 64, 64)!) > 0.99);
  }
  assert.equal(maskIoU(source, detectedMask(atCopy, 64, 64)), 0, 'the other copy does not overlap');
  const none = { ...report, objects: [{ ...report.objects[0]!, detected: null }] };
  assert.equal(samePlaceMask(source, none, 0, 64, 64), null);
});

test('measure: swapped captions keep the grammar (the article follows the new colour) and the word count', () => {
  // first held-out scenes whose object 0 is orange, with and without a size word
  const find = (sized: boolean) => {
    for (let i = 0; i < 10_000; i++) {
      const scene = sampleScene(heldOutSeed(i), { objects: [1, 2] });
      if (scene.objects[0]!.color === 'orange' && Boolean(captionOf(scene).objects[0]!.size) === sized)
        return scene;
    }
    throw new Error('no such scene');
  };
  const bare = find(false);
  const src = captionOf(bare);
  const [c, a] = [src.objects[0]!.color.index, src.objects[0]!.start];
  assert.equal(src.words[a], 'an');
  const blue = swappedCaption(bare, 'color', 'blue').split(' ');
  assert.equal(blue.length, src.words.length);
  assert.deepEqual(
    blue.map((w, i) => (i === a || i === c ? null : w)),
    src.words.map((w, i) => (i === a || i === c ? null : w)),
  );
  assert.equal(blue[a], 'a');
  assert.equal(blue[c], 'blue');
  // with a size word the article is the size's: only the colour changes
  const sized = find(true);
  const srcSized = captionOf(sized);
  const blueSized = swappedCaption(sized, 'color', 'blue').split(' ');
  assert.deepEqual(
    blueSized.map((w, i) => (i === srcSized.objects[0]!.color.index ? 'orange' : w)),
    srcSized.words,
  );
  // a shape swap changes the shape word only
  const square = swappedCaption(bare, 'shape', bare.objects[0]!.shape === 'square' ? 'ring' : 'square').split(
    ' ',
  );
  assert.equal(square.filter((w, i) => w !== src.words[i]).length, 1);
  assert.notEqual(square[src.objects[0]!.shape.index], src.words[src.objects[0]!.shape.index]);
});
