// Scenes of the Shapes world and their sampler, deterministic by seed.
//
// A scene is plain data (JSON-serialisable): the background, 1–3 objects, each with a shape, colour, size,
// grid cell and exact placement, and the wording its caption uses (which attributes it mentions). All
// randomness comes from one Philox `Generator(seed)`, so a seed gives the same scene on every machine.
// Objects sit in distinct cells with a small jitter and are resampled until no two of them touch (at
// least one pixel of pure background between them) and none touches the image border.

import { Generator } from '../../index.js';
import { rasterize, SHAPES, type ShapeName } from './geometry.js';
import { type Cell, cellCenter, cellRelations, type Relation } from './grid.js';
import {
  BACKGROUND_COLORS,
  BACKGROUND_TONES,
  type BackgroundTone,
  COLORS,
  type ColorName,
  type Rgb,
} from './palette.js';

/** The object sizes of the Shapes world. */
export const SIZES = ['small', 'large'] as const;
/** One object size. */
export type SizeName = (typeof SIZES)[number];

/** Scale (pixels per unit shape, see geometry.ts) of each size in a 64 × 64 image; ±4% jitter. */
export const SIZE_SCALE: Readonly<Record<SizeName, number>> = { small: 5.5, large: 9 };

/** Whether a word names an object size. */
export function isSizeName(word: string): word is SizeName {
  return (SIZES as readonly string[]).includes(word);
}

/** Small/large boundary on the scale, for an image `width` pixels wide (geometric mean of the two). */
export function sizeThreshold(width: number): number {
  return Math.sqrt(SIZE_SCALE.small * SIZE_SCALE.large) * (width / 64);
}

/** The background textures of the Shapes world. */
export const TEXTURES = ['plain', 'noise', 'stripes', 'gradient'] as const;
/** One background texture. */
export type TextureName = (typeof TEXTURES)[number];

/** A scene's background: tone, colour, texture and the texture's seed. */
export interface Background {
  tone: BackgroundTone;
  rgb: Rgb;
  texture: TextureName;
  /** Seeds the texture's own generator (noise). */
  textureSeed: number;
}

/** An object of a scene: shape, colour, size, grid cell, centre and scale. */
export interface SceneObject {
  shape: ShapeName;
  color: ColorName;
  size: SizeName;
  cell: Cell;
  /** Centre of the shape's bounding box, pixels. */
  cx: number;
  cy: number;
  /** Pixels per unit shape. */
  scale: number;
}

/** What the caption says beyond colour and shape. */
export interface Wording {
  /** Per object: mention its size. */
  sizes: boolean[];
  /** Per object: mention its cell ("on the left"). */
  positions: boolean[];
  /** A relation between the first two objects ("above"), or null. */
  relation: Relation | null;
  /** End with "on a dark/light background". */
  background: boolean;
}

/**
 * A scene of the Shapes world, drawn from its seed: size, background, objects and how its caption words them.
 */
export interface Scene {
  seed: number;
  width: number;
  height: number;
  background: Background;
  objects: SceneObject[];
  wording: Wording;
}

/** How scenes are drawn: object count, image size, the shapes and colours allowed. */
export interface SceneOptions {
  /** Number of objects, or an inclusive [min, max] range drawn uniformly. Default [1, 3]. */
  objects?: number | readonly [number, number];
  /** Image side in pixels. Default 64. */
  size?: number;
  shapes?: readonly ShapeName[];
  colors?: readonly ColorName[];
}

/** Small typed draws on a Philox stream. */
class Draws {
  readonly #gen: Generator;
  constructor(seed: number) {
    this.#gen = new Generator(seed);
  }
  uniform(low = 0, high = 1): number {
    return low + (high - low) * (this.#gen.rand([1]).data[0] as number);
  }
  int(n: number): number {
    return this.#gen.randint([1], 0, n).data[0] as number;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.uniform() < p;
  }
  uint32(): number {
    return this.#gen.uint32(1)[0]!;
  }
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}

const ALL_CELLS: readonly Cell[] = Array.from({ length: 9 }, (_, k) => ({
  row: Math.floor(k / 3),
  col: k % 3,
}));

/** Pixels covered at all (coverage > 0) by the object; placement only. */
function support(o: SceneObject, width: number, height: number): Uint8Array {
  const cover = rasterize({ shape: o.shape, cx: o.cx, cy: o.cy, scale: o.scale }, width, height);
  return Uint8Array.from(cover, (c) => (c > 0 ? 1 : 0));
}

function touchesBorder(s: Uint8Array, width: number, height: number): boolean {
  for (let x = 0; x < width; x++) if (s[x] || s[(height - 1) * width + x]) return true;
  for (let y = 0; y < height; y++) if (s[y * width] || s[y * width + width - 1]) return true;
  return false;
}

/** Whether some pixel of `a` is equal or 8-adjacent to a pixel of `b`. */
function touches(a: Uint8Array, b: Uint8Array, width: number, height: number): boolean {
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!a[y * width + x]) continue;
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy >= 0 && yy < height && xx >= 0 && xx < width && b[yy * width + xx]) return true;
        }
      }
    }
  }
  return false;
}

function objectCount(option: SceneOptions['objects'], draws: Draws): number {
  const [lo, hi] = typeof option === 'number' ? [option, option] : (option ?? [1, 3]);
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 3 || lo > hi) {
    throw new Error(`sampleScene: objects must be 1, 2 or 3 or a range within [1, 3], got ${String(option)}`);
  }
  return lo + draws.int(hi - lo + 1);
}

/** The scene of `seed`: same seed and options, same scene, on every machine. */
export function sampleScene(seed: number, options: SceneOptions = {}): Scene {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`sampleScene: seed must be a non-negative integer, got ${seed}`);
  }
  const side = options.size ?? 64;
  if (!Number.isInteger(side) || side < 32)
    throw new Error(`sampleScene: size must be an integer ≥ 32, got ${side}`);
  const shapes = options.shapes ?? SHAPES;
  const colors = options.colors ?? COLORS;
  if (shapes.length === 0 || colors.length === 0)
    throw new Error('sampleScene: shapes and colors must not be empty');
  const draws = new Draws(seed);
  const n = objectCount(options.objects, draws);

  // attributes: (colour, shape) pairs are distinct so that every caption names each object unambiguously
  if (new Set(shapes).size * new Set(colors).size < n) {
    throw new Error(`sampleScene: ${n} distinct (colour, shape) pairs need more shapes × colours`);
  }
  const kinds: { shape: ShapeName; color: ColorName; size: SizeName }[] = [];
  while (kinds.length < n) {
    const kind = { shape: draws.pick(shapes), color: draws.pick(colors), size: draws.pick(SIZES) };
    if (!kinds.some((k) => k.shape === kind.shape && k.color === kind.color)) kinds.push(kind);
  }

  // placement: distinct cells, jittered, no contact
  const unit = side / 64;
  let objects: SceneObject[] | null = null;
  for (let attempt = 0; attempt < 200 && objects === null; attempt++) {
    const cells = draws.shuffle(ALL_CELLS).slice(0, n);
    const placed = kinds.map((k, i): SceneObject => {
      const cell = cells[i]!;
      const centre = cellCenter(cell, side, side);
      return {
        ...k,
        cell,
        cx: centre.x + draws.uniform(-2, 2) * unit,
        cy: centre.y + draws.uniform(-2, 2) * unit,
        scale: SIZE_SCALE[k.size] * unit * draws.uniform(0.96, 1.04),
      };
    });
    const supports = placed.map((o) => support(o, side, side));
    const ok =
      supports.every((s) => !touchesBorder(s, side, side)) &&
      supports.every((a, i) => supports.every((b, j) => j <= i || !touches(a, b, side, side)));
    if (ok) objects = placed;
  }
  if (objects === null) throw new Error(`sampleScene: could not place ${n} objects apart for seed ${seed}`);

  const tone = draws.pick(BACKGROUND_TONES);
  const background: Background = {
    tone,
    rgb: draws.pick(BACKGROUND_COLORS[tone]),
    texture: draws.pick(TEXTURES),
    textureSeed: draws.uint32(),
  };
  return { seed, width: side, height: side, background, objects, wording: sampleWording(objects, draws) };
}

/** Caption style: nothing but colours and shapes, every object's cell, or a relation of the first two. */
function sampleWording(objects: readonly SceneObject[], draws: Draws): Wording {
  const n = objects.length;
  const sizes = objects.map(() => draws.chance(0.5));
  const r = draws.uniform();
  const style = n === 1 ? (r < 0.5 ? 'plain' : 'cells') : r < 0.3 ? 'plain' : r < 0.65 ? 'cells' : 'relation';
  let relation: Relation | null = null;
  if (style === 'relation') {
    relation = {
      subject: 0,
      relation: draws.pick(cellRelations(objects[0]!.cell, objects[1]!.cell)),
      object: 1,
    };
  }
  const positions = objects.map(() => style === 'cells');
  return { sizes, positions, relation, background: draws.chance(0.35) };
}
