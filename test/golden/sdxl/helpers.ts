// The tiny-sdxl fixture (test/fixtures/tiny-sdxl, made by its make_goldens.py with diffusers 0.21.4).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readSafetensors } from '../../../src/io/safetensors.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { repoRoot } from '../../helpers/fixtures.js';

export function sdxlDir(): string {
  return join(repoRoot, 'test', 'fixtures', 'tiny-sdxl');
}

let goldens: Map<string, Tensor> | undefined;

function all(): Map<string, Tensor> {
  goldens ??= readSafetensors(join(sdxlDir(), 'goldens.safetensors')).tensors;
  return goldens;
}

export function sdxlGolden(key: string): Tensor {
  const t = all().get(key);
  if (!t) throw new Error(`tiny-sdxl golden tensor '${key}' not found`);
  return t;
}

export function sdxlGoldenKeys(prefix: string): string[] {
  return [...all().keys()].filter((k) => k.startsWith(prefix));
}

/** The largest |a − b| over two tensors of the same shape (for the reports the tests print). */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  let worst = 0;
  for (let i = 0; i < a.size; i++)
    worst = Math.max(worst, Math.abs((a.data[i] as number) - (b.data[i] as number)));
  return worst;
}
