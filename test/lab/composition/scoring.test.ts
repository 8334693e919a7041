// The scoring of the issue-33 measurements on the Shapes world's ground truth (no model): a rendered scene with
// object 0's shape swapped is a changed variation that keeps the other objects and the background; the source
// itself is not a change. A rendered composite scene has the pasted object in its box, the scene's objects kept
// and nothing changed outside the box; the bare background has no pasted object.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { swappedCaption } from '../../../src/lab/measure/common.js';
import { scoreVariation, shapeVariationScene } from '../../../src/lab/measure/shape-variations.js';
import { scoreComposite, tfIconCase } from '../../../src/lab/measure/tf-icon.js';
import { captionOf, renderScene } from '../../../src/lab/shapes/index.js';

test('shape variations: a rendered shape swap changes, keeps the others and the background', () => {
  let checked = 0;
  for (let i = 0; checked < 4 && i < 40; i++) {
    const item = shapeVariationScene(900_000 + i, 2);
    if (!item || item.scene.objects.length < 2) continue;
    const src = renderScene(item.scene);
    const caption = captionOf(item.scene).text;
    const truth = src.masks.map((m) => m.mask.data as Float32Array);
    const proxy = item.proxies[0]!;
    const swapped = renderScene({
      ...item.scene,
      objects: item.scene.objects.map((o, j) => (j === 0 ? { ...o, shape: proxy as typeof o.shape } : o)),
    });
    const v = scoreVariation(
      src.image,
      truth,
      src.image,
      caption,
      src.image,
      src.image,
      swapped.image,
      swappedCaption(item.scene, 'shape', proxy),
    );
    assert.equal(v.changed, true, `${caption} → ${proxy}`);
    assert.deepEqual(v.othersKept, [true]);
    assert.ok(v.backgroundError < 1e-6, `background error ${v.backgroundError}`);
    const same = scoreVariation(
      src.image,
      truth,
      src.image,
      caption,
      src.image,
      src.image,
      src.image,
      swappedCaption(item.scene, 'shape', proxy),
    );
    assert.equal(same.changed, false);
    checked++;
  }
  assert.equal(checked, 4);
});

test('TF-ICON: the rendered composite places the object in its box; the bare background does not', () => {
  let checked = 0;
  for (let i = 900_000; checked < 4 && i < 900_200; i++) {
    const c = tfIconCase(i);
    if (!c) continue;
    const composite = renderScene(c.composite).image;
    const s = scoreComposite(c, composite);
    assert.equal(s.placed, true, c.caption);
    assert.ok(
      s.othersKept.every((k) => k),
      `${c.caption}: others ${s.othersIoU.join(', ')}`,
    );
    assert.ok(s.outsideError < 1e-6, `outside error ${s.outsideError}`);
    assert.equal(scoreComposite(c, c.bgRender.image).placed, false);
    checked++;
  }
  assert.equal(checked, 4);
});
