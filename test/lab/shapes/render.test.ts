import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readPng, writePng } from '../../../src/io/png.js';
import { unitMoments } from '../../../src/lab/shapes/geometry.js';
import { PALETTE } from '../../../src/lab/shapes/palette.js';
import { renderScene, textureOffsets } from '../../../src/lab/shapes/render.js';
import { type Scene, sampleScene } from '../../../src/lab/shapes/scene.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-shapes-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A hand-built scene: one large red circle in the centre, one small blue square top left, plain dark. */
const HAND: Scene = {
  seed: 0,
  width: 64,
  height: 64,
  background: { tone: 'dark', rgb: [22, 22, 28], texture: 'plain', textureSeed: 0 },
  objects: [
    { shape: 'circle', color: 'red', size: 'large', cell: { row: 1, col: 1 }, cx: 32, cy: 32, scale: 9 },
    { shape: 'square', color: 'blue', size: 'small', cell: { row: 0, col: 0 }, cx: 10, cy: 11, scale: 5.5 },
  ],
  wording: { sizes: [false, false], positions: [false, false], relation: null, background: false },
};

const level = (v: number) => Math.round((v + 1) * 127.5);

test('renderScene: colours, background and anti-aliased edges of a hand-built scene', () => {
  const { image, masks } = renderScene(HAND);
  assert.deepEqual(image.shape, [1, 3, 64, 64]);
  const x = image.data as Float32Array;
  const rgb = (px: number, py: number) => [0, 1, 2].map((c) => level(x[c * 4096 + py * 64 + px]!));
  assert.deepEqual(rgb(32, 32), [...PALETTE.red]);
  assert.deepEqual(rgb(10, 11), [...PALETTE.blue]);
  assert.deepEqual(rgb(60, 60), [22, 22, 28]);
  // a circle of radius 9 at (32, 32), 4 × 4 samples at offsets 1/8, 3/8, 5/8, 7/8: pixel (40, 32) is inside
  // (farthest sample 8.875² + 0.875² < 81), pixel (41, 32) outside (9.125² > 81), and in pixel (38, 38)
  // only the samples with (dx², dy²) ∈ {(6.125², 6.125²), (6.125², 6.375²), (6.375², 6.125²)} are ≤ 81
  const cov = masks[0]!.coverage.data as Float32Array;
  assert.equal(cov[32 * 64 + 40], 1);
  assert.equal(cov[32 * 64 + 41], 0);
  assert.equal(cov[38 * 64 + 38], 3 / 16);
  // edge pixels blend: a half-covered pixel is halfway between red and the background
  for (let p = 0; p < 4096; p++) {
    const a = cov[p]!;
    if (a === 0 || a === 1) continue;
    const r = level(x[p]!);
    assert.ok(Math.abs(r - ((1 - a) * 22 + a * 215)) <= 1, `pixel ${p}: α ${a}, red ${r}`);
  }
  // coverage integrates to the circle's area; the binary mask is coverage ≥ 0.5; the box bounds the mask
  const area = cov.reduce((s, v) => s + v, 0);
  assert.ok(Math.abs(area - Math.PI * 81) < 1.5, `area ${area}`);
  const mask = masks[0]!.mask.data as Float32Array;
  assert.ok(mask.every((m, p) => m === (cov[p]! >= 0.5 ? 1 : 0)));
  assert.deepEqual(masks[0]!.box, { x0: 23, y0: 23, x1: 41, y1: 41 });
  // the square: half-side 0.86·5.5 = 4.73 around (10, 11) → x ∈ [5.27, 14.73], y ∈ [6.27, 15.73]
  assert.deepEqual(masks[1]!.box, { x0: 5, y0: 6, x1: 15, y1: 16 });
});

test('renderScene: coverage sums to scale² × unit area (± 1/8 px × perimeter) for every object of 200 scenes', () => {
  for (let seed = 0; seed < 200; seed++) {
    const scene = sampleScene(seed);
    const { image, masks } = renderScene(scene);
    const x = image.data as Float32Array;
    assert.ok(x.every((v) => v >= -1 && v <= 1));
    scene.objects.forEach((o, i) => {
      const area = (masks[i]!.coverage.data as Float32Array).reduce((s, v) => s + v, 0);
      const expected = unitMoments(o.shape).area * o.scale * o.scale;
      // 4 × 4 midpoint samples misplace an edge by ≤ 1/8 px; perimeters are ≤ 8 · scale
      assert.ok(Math.abs(area - expected) <= o.scale, `seed ${seed} ${o.shape}: ${area} vs ${expected}`);
    });
  }
});

test('textures stay light: at most ±12 levels around the background colour', () => {
  for (const texture of ['plain', 'noise', 'stripes', 'gradient'] as const) {
    const t = textureOffsets({ tone: 'dark', rgb: [0, 0, 0], texture, textureSeed: 5 }, 64, 64);
    const max = t.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(max <= 12, `${texture}: ${max}`);
    if (texture !== 'plain') assert.ok(max >= 6, `${texture} is visible: ${max}`);
  }
});

test('a rendered scene survives a PNG round trip within one 8-bit level', () => {
  const { image } = renderScene(sampleScene(3));
  const path = join(dir, 'scene.png');
  writePng(path, image);
  const back = readPng(path).data as Float32Array;
  const x = image.data as Float32Array;
  assert.ok(back.every((v, i) => Math.abs(v - x[i]!) <= 1 / 127.5 + 1e-6));
});
