// Colour maps at known points, the overlay's blend, and grid geometry with labels.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { textWidth } from '../../../src/io/font.js';
import { colorMap, imageGrid, overlayHeatMap } from '../../../src/io/render.js';
import { Tensor } from '../../../src/tensor/index.js';
import { assertClose } from '../../helpers/tolerance.js';

test('jet and viridis at their ends and middle (matplotlib values within 0.02)', () => {
  assertClose(colorMap(0, 'jet'), [0, 0, 0.5], { atol: 1e-9, rtol: 0 });
  assertClose(colorMap(0.5, 'jet'), [0.5, 1, 0.5], { atol: 1e-9, rtol: 0 });
  assertClose(colorMap(1, 'jet'), [0.5, 0, 0], { atol: 1e-9, rtol: 0 });
  assertClose(colorMap(0, 'viridis'), [0.267, 0.005, 0.329], { atol: 0.02, rtol: 0 });
  assertClose(colorMap(0.5, 'viridis'), [0.128, 0.567, 0.551], { atol: 0.02, rtol: 0 });
  assertClose(colorMap(1, 'viridis'), [0.993, 0.906, 0.144], { atol: 0.02, rtol: 0 });
  assertClose(colorMap(2, 'gray'), [1, 1, 1], { atol: 0, rtol: 0 });
});

test('overlay: cold pixels show the image, hot ones the colour map', () => {
  const image = Tensor.from([0.2, -0.4, 0, 0, 0.6, 0.8], [1, 3, 1, 2]);
  const out = overlayHeatMap(image, Tensor.from([0, 1], [1, 2])).toArray();
  // pixel 0: the image; pixel 1: jet(1) = (0.5, 0, 0) → (0, −1, −1) in [-1, 1]
  assertClose(out, [0.2, 0, 0, -1, 0.6, -1], { atol: 1e-6, rtol: 0 });
  assert.throws(() => overlayHeatMap(image, Tensor.from([0, 1, 0], [1, 3])), /same size/);
});

test('grid: tiles, gaps, zoom and a label strip', () => {
  const tile = (v: number) => Tensor.from(new Array(3 * 2 * 3).fill(v), [1, 3, 2, 3]);
  const g = imageGrid([tile(0.5), tile(-0.5), tile(1)], {
    cols: 2,
    zoom: 2,
    gap: 1,
    labels: ['a', 'b', 'c'],
  });
  // width: 2 tiles of 6 px + 3 gaps; height: 2 rows of (4 px + label 5 + 2) + 3 gaps
  assert.deepEqual(g.shape, [1, 3, 2 * (4 + 7) + 3, 2 * 6 + 3]);
  const W = 15;
  const at = (y: number, x: number) => g.toArray()[y * W + x];
  assert.equal(at(1 + 7, 1), 0.5); // first tile below its label strip
  assert.equal(at(1 + 7, 1 + 6 + 1), -0.5);
  assert.equal(at(0, 0), -1); // background
  assert.equal(at(2, 2), 1); // the 'a' glyph's top middle pixel (010 on its first row)
  assert.equal(textWidth('ab', 2), 14);
});
