import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rasterize, SHAPES } from '../../../src/lab/shapes/geometry.js';
import { cellAt, cellCenter } from '../../../src/lab/shapes/grid.js';
import {
  BACKGROUND_COLORS,
  BACKGROUND_TONES,
  COLORS,
  PALETTE,
  rgbDistance,
} from '../../../src/lab/shapes/palette.js';
import { SIZE_SCALE, sampleScene, TEXTURES } from '../../../src/lab/shapes/scene.js';

test('palette: object colours ≥ 95 apart, backgrounds ≥ 100 from every object colour', () => {
  for (const a of COLORS) {
    for (const b of COLORS) if (a < b) assert.ok(rgbDistance(PALETTE[a], PALETTE[b]) >= 95, `${a}–${b}`);
    for (const tone of BACKGROUND_TONES) {
      for (const bg of BACKGROUND_COLORS[tone]) assert.ok(rgbDistance(PALETTE[a], bg) >= 100, `${a}–${bg}`);
    }
  }
  assert.ok(COLORS.length >= 7 && SHAPES.length >= 6);
});

test('sampleScene is deterministic by seed and pinned for seed 7', () => {
  assert.deepEqual(sampleScene(123), sampleScene(123));
  assert.notDeepEqual(sampleScene(123).objects, sampleScene(124).objects);
  const s = sampleScene(7);
  // pinned: Philox and the sampler's draw order must not change silently (training data depend on them)
  assert.deepEqual(
    s.objects.map((o) => [o.color, o.shape, o.size, o.cell.row, o.cell.col]),
    [
      ['red', 'ring', 'small', 0, 2],
      ['yellow', 'cross', 'small', 1, 1],
      ['white', 'star', 'small', 2, 0],
    ],
  );
});

/** Pixels with any coverage, as a set of indices. */
function support(o: ReturnType<typeof sampleScene>['objects'][number], side: number): Set<number> {
  const cover = rasterize({ shape: o.shape, cx: o.cx, cy: o.cy, scale: o.scale }, side, side);
  const out = new Set<number>();
  cover.forEach((c, i) => {
    if (c > 0) out.add(i);
  });
  return out;
}

test('500 scenes: 1–3 objects in distinct cells, distinct kinds, apart, inside the image, all attributes used', () => {
  const seen = {
    shape: new Set(),
    color: new Set(),
    size: new Set(),
    tone: new Set(),
    texture: new Set(),
    n: new Set(),
  };
  for (let seed = 0; seed < 500; seed++) {
    const scene = sampleScene(seed);
    const { objects } = scene;
    assert.ok(objects.length >= 1 && objects.length <= 3);
    seen.n.add(objects.length);
    seen.tone.add(scene.background.tone);
    seen.texture.add(scene.background.texture);
    assert.ok(BACKGROUND_COLORS[scene.background.tone].includes(scene.background.rgb));
    const cells = new Set(objects.map((o) => `${o.cell.row},${o.cell.col}`));
    const kinds = new Set(objects.map((o) => `${o.color} ${o.shape}`));
    assert.equal(cells.size, objects.length, `seed ${seed}: cells`);
    assert.equal(kinds.size, objects.length, `seed ${seed}: kinds`);
    const supports = objects.map((o) => support(o, 64));
    objects.forEach((o, i) => {
      seen.shape.add(o.shape);
      seen.color.add(o.color);
      seen.size.add(o.size);
      const c = cellCenter(o.cell, 64, 64);
      assert.ok(Math.abs(o.cx - c.x) <= 2 && Math.abs(o.cy - c.y) <= 2, `seed ${seed}: jitter`);
      assert.deepEqual(cellAt(o.cx, o.cy, 64, 64), o.cell);
      assert.ok(Math.abs(o.scale / SIZE_SCALE[o.size] - 1) <= 0.04 + 1e-9);
      for (const p of supports[i]!) {
        const x = p % 64;
        const y = Math.floor(p / 64);
        assert.ok(x > 0 && y > 0 && x < 63 && y < 63, `seed ${seed}: object ${i} touches the border`);
        // no other object within one pixel (8-neighbourhood)
        for (let j = 0; j < objects.length; j++) {
          if (j === i) continue;
          for (let dy = -1; dy <= 1; dy++) {
            for (let dx = -1; dx <= 1; dx++) {
              assert.ok(!supports[j]!.has((y + dy) * 64 + x + dx), `seed ${seed}: objects ${i}, ${j} touch`);
            }
          }
        }
      }
    });
  }
  assert.equal(seen.shape.size, SHAPES.length);
  assert.equal(seen.color.size, COLORS.length);
  assert.equal(seen.size.size, 2);
  assert.equal(seen.tone.size, 2);
  assert.equal(seen.texture.size, TEXTURES.length);
  assert.equal(seen.n.size, 3);
});

test('sampleScene options: object count, shapes, colours, image size; errors', () => {
  for (let seed = 0; seed < 20; seed++) {
    const s = sampleScene(seed, {
      objects: 2,
      shapes: ['heart', 'ring'],
      colors: ['red', 'blue'],
      size: 128,
    });
    assert.equal(s.objects.length, 2);
    assert.equal(s.width, 128);
    assert.ok(
      s.objects.every((o) => ['heart', 'ring'].includes(o.shape) && ['red', 'blue'].includes(o.color)),
    );
    assert.ok(s.objects.every((o) => Math.abs(o.scale / (2 * SIZE_SCALE[o.size]) - 1) <= 0.04 + 1e-9));
  }
  assert.throws(() => sampleScene(-1), /seed must be a non-negative integer/);
  assert.throws(() => sampleScene(0, { objects: 4 }), /objects must be 1, 2 or 3/);
  assert.throws(() => sampleScene(0, { objects: 2, shapes: ['star'], colors: ['red'] }), /distinct/);
});
