import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  maskIoU,
  normalizeMap,
  otsuMask,
  otsuThreshold,
  resizeMap,
  softIoU,
  thresholdMask,
} from '../../../src/lab/shapes/masks.js';
import { Tensor } from '../../../src/tensor/tensor.js';

test('maskIoU on hand-worked masks', () => {
  // a: 4 pixels, b: 3 pixels, 2 shared → 2 / 5
  assert.equal(maskIoU([1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 0]), 2 / 5);
  assert.equal(maskIoU([0, 0], [0, 0]), 1);
  assert.equal(maskIoU([1, 0], [0, 1]), 0);
  // values > 0.5 count as in; tensors and typed arrays mix
  assert.equal(
    maskIoU(new Tensor(Float32Array.from([0.6, 0.5, 0.9]), [1, 3]), Uint8Array.from([1, 1, 0])),
    1 / 3,
  );
  assert.throws(() => maskIoU([1, 0], [1]), /maskIoU: masks have 2 and 1 pixels/);
});

test('softIoU = Σ min / Σ max', () => {
  assert.ok(Math.abs(softIoU([0.5, 1, 0], [1, 0.5, 0.25]) - (0.5 + 0.5 + 0) / (1 + 1 + 0.25)) < 1e-12);
  assert.equal(softIoU([0.3, 0.7], [0.3, 0.7]), 1);
});

test('thresholds: fixed, normalised and Otsu', () => {
  assert.deepEqual([...thresholdMask([0.1, 0.5, 0.7], 0.5)], [0, 0, 1]);
  assert.deepEqual([...normalizeMap([2, 4, 3])], [0, 1, 0.5]);
  assert.deepEqual([...normalizeMap([3, 3])], [0, 0]);
  // two clusters, around 0.1 and 0.8: Otsu's threshold separates them
  const values = [0.08, 0.1, 0.12, 0.09, 0.11, 0.79, 0.8, 0.82];
  const t = otsuThreshold(values);
  assert.ok(t > 0.12 && t < 0.79, `threshold ${t}`);
  assert.deepEqual([...otsuMask(values)], [0, 0, 0, 0, 0, 1, 1, 1]);
  assert.deepEqual([...otsuMask([0, 1])], [0, 1]);
  assert.equal(otsuThreshold([0.4, 0.4]), 0.4);
});

test('resizeMap: bilinear with aligned pixel centres', () => {
  // 1×2 → 1×4: centres at 0.25, 0.75, 1.25, 1.75 of the source pixels' scale (x − 0.5 clamped)
  assert.deepEqual([...resizeMap([0, 1], 1, 2, 1, 4)], [0, 0.25, 0.75, 1]);
  const up = resizeMap([1, 2, 3, 4], 2, 2, 4, 4);
  assert.equal(up[0], 1);
  assert.equal(up[15], 4);
  assert.equal(up[5], 1 + 0.25 * 1 + 0.25 * 2); // (1,1): tx = ty = 0.25
  assert.throws(() => resizeMap([1, 2, 3], 2, 2, 4, 4), /resizeMap: map has 3 values, not 2×2/);
});
