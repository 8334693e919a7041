// The Shapes world's ground-truth layout for the layout methods: each caption object's shape word, box and mask
// agree with the rendering, and box IoU on hand-worked boxes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { heldOutPrompts } from '../../../src/lab/seeds.js';
import { boxIoU, groundTruthLayout } from '../../../src/lab/shapes/layout.js';
import { renderScene } from '../../../src/lab/shapes/render.js';

test('boxIoU on hand-worked boxes', () => {
  assert.equal(boxIoU({ x0: 0, y0: 0, x1: 2, y1: 2 }, { x0: 1, y0: 1, x1: 3, y1: 3 }), 1 / 7);
  assert.equal(boxIoU({ x0: 0, y0: 0, x1: 2, y1: 2 }, { x0: 2, y0: 0, x1: 4, y1: 2 }), 0);
  assert.equal(boxIoU({ x0: 0, y0: 0, x1: 4, y1: 4 }, { x0: 1, y0: 1, x1: 3, y1: 3 }), 0.25);
});

test('groundTruthLayout: the shape word, the box of the mask, the mask of the rendering', () => {
  for (const p of heldOutPrompts(20, 100_000)) {
    const layout = groundTruthLayout(p.scene, p.caption);
    assert.equal(layout.length, p.caption.objects.length);
    const { masks } = renderScene(p.scene);
    layout.forEach((o, i) => {
      const phrase = p.caption.objects[i]!;
      assert.equal(p.caption.words[o.shapeWord], p.scene.objects[phrase.object]!.shape);
      assert.deepEqual([...o.mask], masks[phrase.object]!.mask.toArray());
      // every mask pixel inside the box, and the box tight around them
      const { width: w, height: h } = p.scene;
      let [x0, y0, x1, y1] = [w, h, 0, 0];
      o.mask.forEach((v, k) => {
        if (v === 0) return;
        const [x, y] = [k % w, Math.floor(k / w)];
        [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x + 1), Math.max(y1, y + 1)];
      });
      assert.deepEqual(o.box, [x0 / w, y0 / h, x1 / w, y1 / h]);
    });
  }
});
