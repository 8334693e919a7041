// The shapes of the Shapes world as point-in-shape tests in unit coordinates, and their anti-aliased
// rasterisation by supersampling.
//
// A shape of scale s centred at (cx, cy) covers the image point (x, y) when its unit shape contains
// ((x − cx) / s, (y − cy) / s). Unit shapes fit the square [−1.15, 1.15]² around the origin, with the
// origin at the centre of their bounding box; y points down, as in the image. Each shape is upright
// (never rotated), so a shape is told apart from another by its outline alone.

/** The shapes of the Shapes world. */
export const SHAPES = ['circle', 'square', 'triangle', 'star', 'heart', 'ring', 'cross'] as const;
/** One shape of the Shapes world. */
export type ShapeName = (typeof SHAPES)[number];

/** Whether a word names a shape. */
export function isShapeName(word: string): word is ShapeName {
  return (SHAPES as readonly string[]).includes(word);
}

/** Samples per pixel side when rasterising: 4 × 4 = 16 samples per pixel. */
export const SUPERSAMPLING = 4;

type Point = readonly [number, number];

/** Even–odd rule: does the closed polygon contain (u, v)? */
function inPolygon(poly: readonly Point[], u: number, v: number): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [ui, vi] = poly[i]!;
    const [uj, vj] = poly[j]!;
    if (vi > v !== vj > v && u < ((uj - ui) * (v - vi)) / (vj - vi) + ui) inside = !inside;
  }
  return inside;
}

// equilateral triangle pointing up, circumradius 1.15, its bounding box centred on the origin
const TRIANGLE_R = 1.15;
const TRIANGLE: readonly Point[] = (() => {
  const shift = TRIANGLE_R / 4; // centroid sits R/4 below the bounding-box centre
  const half = TRIANGLE_R * Math.sin(Math.PI / 3);
  return [
    [0, -TRIANGLE_R + shift],
    [half, TRIANGLE_R / 2 + shift],
    [-half, TRIANGLE_R / 2 + shift],
  ];
})();

// five-pointed star pointing up: outer radius 1.12, inner radius 0.48
const STAR: readonly Point[] = (() => {
  const points: Point[] = [];
  const outer = 1.12;
  const inner = 0.48;
  const top = -outer;
  const bottom = outer * Math.cos(Math.PI / 5); // lowest tips
  const shift = -(top + bottom) / 2;
  for (let k = 0; k < 10; k++) {
    const angle = -Math.PI / 2 + (k * Math.PI) / 5;
    const r = k % 2 === 0 ? outer : inner;
    points.push([r * Math.cos(angle), r * Math.sin(angle) + shift]);
  }
  return points;
})();

// heart: a square turned 45° (half-diagonal H, centre (0, HEART_C)) with a half-disc on each upper edge
const HEART_H = 0.86;
const HEART_C = HEART_H * (0.5 + Math.SQRT1_2 - 1) * 0.5; // centres the bounding box vertically
const HEART_R = HEART_H * Math.SQRT1_2;

function inHeart(u: number, v: number): boolean {
  const dv = v - HEART_C;
  if (Math.abs(u) + Math.abs(dv) <= HEART_H) return true;
  const cu = Math.abs(u) - HEART_H / 2;
  const cv = dv + HEART_H / 2;
  return cu * cu + cv * cv <= HEART_R * HEART_R;
}

const RING_INNER = 0.52;
const SQUARE_HALF = 0.86;
const CROSS_ARM = 0.36;

/** Does the unit shape contain the point (u, v)? */
export function insideShape(shape: ShapeName, u: number, v: number): boolean {
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'square':
      return Math.abs(u) <= SQUARE_HALF && Math.abs(v) <= SQUARE_HALF;
    case 'triangle':
      return inPolygon(TRIANGLE, u, v);
    case 'star':
      return inPolygon(STAR, u, v);
    case 'heart':
      return inHeart(u, v);
    case 'ring': {
      const r2 = u * u + v * v;
      return r2 <= 1 && r2 >= RING_INNER * RING_INNER;
    }
    case 'cross': {
      const au = Math.abs(u);
      const av = Math.abs(v);
      return (au <= CROSS_ARM && av <= 1) || (av <= CROSS_ARM && au <= 1);
    }
  }
}

/** Half-extent of every unit shape's bounding box is at most this. */
export const UNIT_EXTENT = 1.15;

/** Where an object sits in the image: its shape, centre (pixels) and scale (pixels per unit). */
export interface Placement {
  shape: ShapeName;
  cx: number;
  cy: number;
  scale: number;
}

/** Integer pixel window [x0, x1) × [y0, y1) that contains the placed shape, clipped to the image. */
export function placementWindow(
  p: Placement,
  width: number,
  height: number,
  margin = 1,
): { x0: number; y0: number; x1: number; y1: number } {
  const r = UNIT_EXTENT * p.scale + margin;
  return {
    x0: Math.max(0, Math.floor(p.cx - r)),
    y0: Math.max(0, Math.floor(p.cy - r)),
    x1: Math.min(width, Math.ceil(p.cx + r)),
    y1: Math.min(height, Math.ceil(p.cy + r)),
  };
}

/**
 * Coverage of each pixel by the placed shape, in [0, 1]: the fraction of SUPERSAMPLING² sample points
 * (pixel (i, j) spans [i, i + 1) × [j, j + 1)) inside it. Writes into `out` (row-major, width × height)
 * within `window` (default: the shape's window) only and returns `out`.
 */
export function rasterize(
  p: Placement,
  width: number,
  height: number,
  out: Float32Array = new Float32Array(width * height),
  window = placementWindow(p, width, height),
  samples = SUPERSAMPLING,
): Float32Array {
  const { x0, y0, x1, y1 } = window;
  const inv = 1 / p.scale;
  const weight = 1 / (samples * samples);
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      let hits = 0;
      for (let sy = 0; sy < samples; sy++) {
        const v = (y + (sy + 0.5) / samples - p.cy) * inv;
        for (let sx = 0; sx < samples; sx++) {
          const u = (x + (sx + 0.5) / samples - p.cx) * inv;
          if (insideShape(p.shape, u, v)) hits++;
        }
      }
      out[y * width + x] = hits * weight;
    }
  }
  return out;
}

/** Area (in unit² — pixels² at scale 1) and area centroid of a unit shape. */
export interface UnitMoments {
  area: number;
  cu: number;
  cv: number;
}

const MOMENTS = new Map<ShapeName, UnitMoments>();

/** Area and centroid of the unit shape, by a 600 × 600 midpoint grid over its bounding square (cached). */
export function unitMoments(shape: ShapeName): UnitMoments {
  const cached = MOMENTS.get(shape);
  if (cached) return cached;
  const n = 600;
  const step = (2 * UNIT_EXTENT) / n;
  let count = 0;
  let su = 0;
  let sv = 0;
  for (let j = 0; j < n; j++) {
    const v = -UNIT_EXTENT + (j + 0.5) * step;
    for (let i = 0; i < n; i++) {
      const u = -UNIT_EXTENT + (i + 0.5) * step;
      if (insideShape(shape, u, v)) {
        count++;
        su += u;
        sv += v;
      }
    }
  }
  const moments = { area: count * step * step, cu: su / count, cv: sv / count };
  MOMENTS.set(shape, moments);
  return moments;
}
