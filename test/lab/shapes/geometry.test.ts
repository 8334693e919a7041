import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  insideShape,
  rasterize,
  SHAPES,
  UNIT_EXTENT,
  unitMoments,
} from '../../../src/lab/shapes/geometry.js';

test('unit areas match the closed forms of each shape (600² midpoint grid: within 0.5%)', () => {
  const R = 1.15; // triangle circumradius
  const expected: Record<string, number> = {
    circle: Math.PI,
    square: (2 * 0.86) ** 2,
    triangle: ((3 * Math.sqrt(3)) / 4) * R * R,
    ring: Math.PI * (1 - 0.52 ** 2),
    cross: 2 * (2 * 0.72) - 0.72 ** 2,
    // 10 triangles (origin, outer tip, inner vertex), each ½·1.12·0.48·sin 36°
    star: 10 * 0.5 * 1.12 * 0.48 * Math.sin(Math.PI / 5),
    // a square of half-diagonal H (area 2H²) plus two half-discs of radius H/√2
    heart: 2 * 0.86 ** 2 + Math.PI * (0.86 * Math.SQRT1_2) ** 2,
  };
  for (const shape of SHAPES) {
    const { area } = unitMoments(shape);
    assert.ok(
      Math.abs(area - expected[shape]!) < 5e-3 * expected[shape]!,
      `${shape}: ${area} vs ${expected[shape]}`,
    );
  }
});

test('symmetric shapes have their centroid at the origin; all fit the unit extent', () => {
  for (const shape of ['circle', 'square', 'ring', 'cross', 'star'] as const) {
    const m = unitMoments(shape);
    assert.ok(Math.abs(m.cu) < 1e-3, `${shape} cu ${m.cu}`);
    if (shape !== 'star') assert.ok(Math.abs(m.cv) < 1e-3, `${shape} cv ${m.cv}`);
  }
  // the triangle's centroid lies a quarter circumradius below its bounding-box centre
  assert.ok(Math.abs(unitMoments('triangle').cv - 1.15 / 4) < 2e-3);
  for (const shape of SHAPES) {
    for (let k = 0; k < 360; k++) {
      const a = (k * Math.PI) / 180;
      const r = UNIT_EXTENT * Math.SQRT2 + 1e-6;
      assert.equal(insideShape(shape, r * Math.cos(a), r * Math.sin(a)), false, shape);
    }
    assert.ok(
      !insideShape(shape, UNIT_EXTENT + 1e-6, 0) && !insideShape(shape, 0, UNIT_EXTENT + 1e-6),
      shape,
    );
  }
  // the ring has a hole, the others are solid at their centre
  assert.equal(insideShape('ring', 0, 0), false);
  for (const shape of SHAPES) if (shape !== 'ring') assert.equal(insideShape(shape, 0, 0.05), true, shape);
});

test('rasterize: exact coverage of a pixel-aligned square, half coverage on a half-pixel edge', () => {
  // square of half-side 0.86·scale = 4 px centred at (8, 8): covers pixels 4..11 exactly
  const out = rasterize({ shape: 'square', cx: 8, cy: 8, scale: 4 / 0.86 }, 16, 16);
  for (let y = 0; y < 16; y++) {
    for (let x = 0; x < 16; x++) {
      const inside = x >= 4 && x < 12 && y >= 4 && y < 12;
      assert.ok(Math.abs(out[y * 16 + x]! - (inside ? 1 : 0)) < 1e-6, `(${x}, ${y}) = ${out[y * 16 + x]}`);
    }
  }
  // shifted by half a pixel: the edge pixels are half covered, corners a quarter
  const half = rasterize({ shape: 'square', cx: 8.5, cy: 8.5, scale: 4 / 0.86 }, 16, 16);
  assert.equal(half[4 * 16 + 4], 0.25);
  assert.equal(half[8 * 16 + 4], 0.5);
  assert.equal(half[8 * 16 + 8], 1);
  // supersampled area of a circle ≈ π r²
  const disc = rasterize({ shape: 'circle', cx: 20.3, cy: 19.7, scale: 9 }, 40, 40);
  const area = disc.reduce((s, v) => s + v, 0);
  assert.ok(Math.abs(area - Math.PI * 81) < 1.5, `disc area ${area}`);
  assert.ok(
    disc.some((v) => v > 0 && v < 1),
    'anti-aliased edge pixels',
  );
});
