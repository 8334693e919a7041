// Joint attention (kind 'joint') as hooks see it, on the tiny SD3 transformer of test/fixtures/tiny-sd3: a map
// hook reads the image→text block of each joint map as cross-attention maps (one h × w map per text token,
// checked against diffusers 0.30.0's recorded maps), the identity and a neutral edit leave the output as it is,
// an edit of that block reaches the output, and the function level runs on joint calls (chunked attention
// equals the default; the grid-based functions leave joint calls alone).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { type AttentionCall, plainBatch } from '../../../src/attention/call.js';
import type { AttentionContext, Controller } from '../../../src/attention/hooks.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { chunkedAttention } from '../../../src/methods/function/chunked-attention.js';
import { linearAttention } from '../../../src/methods/function/linear-attention.js';
import { queryGrid, useAttention } from '../../../src/methods/function/use-attention.js';
import { SD3Transformer2DModel } from '../../../src/models/sd3-transformer.js';
import { concat, type Tensor } from '../../../src/tensor/index.js';
import { assertMaxAbs, maxAbsError } from '../schedulers/helpers.js';

const dir = join(import.meta.dirname, '../../fixtures/tiny-sd3');
const goldens = readSafetensors(join(dir, 'goldens.safetensors')).tensors;
const golden = (key: string): Tensor => goldens.get(key) as Tensor;
const model = SD3Transformer2DModel.fromPretrained(dir, { subfolder: 'transformer' });

function run(...controllers: Controller[]): Tensor {
  const ctx: AttentionContext = { controllers, step: 0, numSteps: 1, timestep: 0, batch: plainBatch(2) };
  return model.forward(
    golden('in.sample'),
    golden('in.timestep').toArray(),
    golden('in.context'),
    golden('in.pooled'),
    { ctx },
  );
}

/** The image→text block of a joint map p (B, H, Tq, Tk) as (B, H, h, w, textTokens) cross-attention maps. */
function crossMaps(call: AttentionCall, p: Tensor): Tensor {
  const { image, text } = call.joint as NonNullable<AttentionCall['joint']>;
  const [h, w] = call.size as readonly [number, number];
  const block = p.slice(2, image[0], image[1]).slice(3, text[0], text[1]); // (B, H, N, M)
  return block.reshape([p.shape[0] as number, call.heads, h, w, text[1] - text[0]]);
}

test('a map hook reads the image→text block as one h × w cross-attention map per text token', () => {
  const read = new Map<string, Tensor>();
  run({
    name: 'read cross maps',
    map(call, p) {
      read.set(call.path, crossMaps(call, p));
      return p;
    },
  });
  assert.deepEqual([...read.keys()], ['transformer_blocks.0.attn', 'transformer_blocks.1.attn']);
  for (const [path, maps] of read) {
    assert.deepEqual(maps.shape, [2, 2, 4, 3, 5]); // batch, heads, 4 × 3 patches, 5 text tokens
    // diffusers' map, sliced by hand: image queries are tokens 0..11 (raster order), text keys 12..16
    const expected = golden(`map.${path}`).slice(2, 0, 12).slice(3, 12, 17).reshape([2, 2, 4, 3, 5]);
    assertMaxAbs(maps, expected, 1e-4, path);
  }
});

test('the identity map hook and a neutral edit of the image→text block give the default output', () => {
  const plain = run();
  const identity = run({ name: 'identity', map: (_c, p) => p });
  assert.ok(maxAbsError(identity, plain) <= 1e-5, `explicit vs fused ${maxAbsError(identity, plain)}`);
  const neutral = run({ name: 'scale text by 1', map: (call, p) => scaleText(call, p, 1) });
  assert.deepEqual(neutral.toArray(), identity.toArray());
});

/** Multiplies the image queries' attention to every text token by `factor` (P2P-style reweighting, unnormalised). */
function scaleText(call: AttentionCall, p: Tensor, factor: number): Tensor {
  const { image, text } = call.joint as NonNullable<AttentionCall['joint']>;
  const imageRows = p.slice(2, image[0], image[1]);
  const edited = concat(
    [imageRows.slice(3, 0, text[0]), imageRows.slice(3, text[0], text[1]).mul(factor)],
    3,
  );
  return concat([edited, p.slice(2, text[0], text[1])], 2);
}

test('an edit of the image→text block (cutting the image queries off the text) moves the output', () => {
  const identity = run({ name: 'identity', map: (_c, p) => p });
  const cut = run({ name: 'no text', map: (call, p) => scaleText(call, p, 0) });
  assert.ok(maxAbsError(cut, identity) > 1e-2, 'cutting the image→text block must move the output');
});

test('function level on joint calls: chunked attention equals the default; grid functions skip them', () => {
  const plain = run();
  const chunked = run(useAttention(chunkedAttention({ queryChunkSize: 5, keyChunkSize: 7 })));
  assert.ok(maxAbsError(chunked, plain) <= 1e-5, `chunked ${maxAbsError(chunked, plain)}`);
  const linear = run(useAttention(linearAttention({ featureMap: 'elu' })));
  assert.deepEqual(linear.shape, plain.shape);
  assert.ok(maxAbsError(linear, plain) > 1e-3, 'linear attention is a different function');
  const calls: AttentionCall[] = [];
  run({
    name: 'calls',
    appliesTo(c) {
      calls.push(c);
      return false;
    },
  });
  // window / agent attention need the queries to be exactly the image grid: a joint call also has text queries
  assert.ok(calls.length === 2 && calls.every((c) => queryGrid(c) === undefined));
});
