// The lab's image metrics: PSNR, mean abs error, colour statistics (and the Shapes world's dilation they use).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { colourStats, dilate, meanAbsError, psnr } from '../../../src/lab/index.js';
import { Tensor } from '../../../src/tensor/index.js';

test('measure: image utilities (PSNR, mean abs error, colour statistics, dilation)', () => {
  const a = new Tensor(new Float32Array(3 * 4).fill(0), [1, 3, 2, 2]);
  const b = new Tensor(new Float32Array(3 * 4).fill(0.1), [1, 3, 2, 2]);
  assert.equal(psnr(a, a), Number.POSITIVE_INFINITY);
  assert.ok(Math.abs(psnr(a, b) - 10 * Math.log10(1 / (0.05 * 0.05))) < 0.01);
  assert.ok(Math.abs(meanAbsError(a, b) - 12.75) < 1e-3);
  assert.equal(meanAbsError(a, b, [0, 0, 0, 0]), 0);
  const red = new Tensor(Float32Array.from([1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1]), [1, 3, 2, 2]);
  const c = colourStats(red, [1, 0, 0, 0])!;
  assert.deepEqual(c.rgb, [255, 0, 0]);
  assert.equal(c.saturation, 1);
  assert.equal(colourStats(red, [0, 0, 0, 0]), null);
  assert.deepEqual([...dilate([0, 0, 0, 0, 1, 0, 0, 0, 0], 3, 3)], new Array(9).fill(1));
});
