// Moving Shapes: clips of the Shapes world in which every object keeps its colour, shape and size and moves
// in a straight line at constant velocity (or stays), with captions that say how each one moves.
//
// A clip is frame 0's scene — `sampleScene(seed)`, unchanged — plus one motion per object: a direction
// (left, right, up, down) at `speed` pixels per frame (at 64 × 64, scaled with the image), or none. Motions
// come from the same seed's Philox key on a block range scenes never reach (counter 2⁹⁶), so adding motion
// changes no scene. A direction is kept only when the object stays off the border and apart from every other
// object (at least one background pixel between them) in every frame; otherwise the next direction is tried,
// and an object no direction fits stays still.

import { Generator } from '../../index.js';
import {
  cellAt,
  placementWindow,
  type Rendering,
  rasterize,
  renderScene,
  type Scene,
  type SceneObject,
  type SceneOptions,
  sampleScene,
} from '../shapes/index.js';

/** The directions an object of a Moving Shapes clip can move in. */
export const DIRECTIONS = ['left', 'right', 'up', 'down'] as const;
/** One direction of motion. */
export type Direction = (typeof DIRECTIONS)[number];

/** Whether a word names a direction of motion. */
export function isDirection(word: string): word is Direction {
  return (DIRECTIONS as readonly string[]).includes(word);
}

/** Unit step of each direction in image coordinates (y points down). */
export const DIRECTION_VECTORS: Readonly<Record<Direction, readonly [number, number]>> = {
  left: [-1, 0],
  right: [1, 0],
  up: [0, -1],
  down: [0, 1],
};

/** Default clip length (frames). */
export const CLIP_FRAMES = 8;

/** Default speed: pixels per frame at 64 × 64 (10.5 px over 8 frames, a sixth of the image). */
export const CLIP_SPEED = 1.5;

/** Most frames a clip may have. */
export const MAX_CLIP_FRAMES = 64;

/** A Moving Shapes clip: frame 0's scene and each object's motion (direction or none) at a speed. */
export interface Clip {
  seed: number;
  frames: number;
  /** Pixels per frame of every moving object (already scaled to the image). */
  speed: number;
  /** Frame 0. */
  scene: Scene;
  /** Per object of the scene: its direction, or null when it stays. */
  motions: (Direction | null)[];
}

/** How a clip is drawn: frames, speed and the scene options. */
export interface ClipOptions {
  /** Frames per clip, 2–64 (default 8). */
  frames?: number;
  /** Pixels per frame at 64 × 64 (default 1.5). */
  speed?: number;
  /** Objects per scene (sampleScene's option; default [1, 2]). */
  objects?: SceneOptions['objects'];
  /** Chance that an object stays still (default 0.2). */
  stillChance?: number;
  /**
   * Every moving object goes the first moving object's way (default false): the clips a global translation
   * such as Text2Video-Zero's motion dynamics can follow.
   */
  sharedDirection?: boolean;
}

/** First Philox block of the motion draws: far past anything sampleScene uses. */
const MOTION_COUNTER = 1n << 96n;

/** Frame `k` of the clip as a scene: every object moved k steps (its cell follows its centre). */
export function sceneAt(clip: Clip, k: number): Scene {
  if (!Number.isInteger(k) || k < 0 || k >= clip.frames)
    throw new Error(`sceneAt: frame must be an integer in [0, ${clip.frames}), got ${k}`);
  const { scene } = clip;
  return {
    ...scene,
    objects: scene.objects.map((o, i) => movedObject(o, clip.motions[i] ?? null, clip.speed * k, scene)),
  };
}

function movedObject(o: SceneObject, motion: Direction | null, distance: number, scene: Scene): SceneObject {
  if (motion === null || distance === 0) return o;
  const [vx, vy] = DIRECTION_VECTORS[motion];
  const cx = o.cx + vx * distance;
  const cy = o.cy + vy * distance;
  return { ...o, cx, cy, cell: cellAt(cx, cy, scene.width, scene.height) };
}

/** Binary support (coverage > 0) of an object, and whether it touches the border. */
function support(o: SceneObject, w: number, h: number): { mask: Uint8Array; border: boolean } {
  const placement = { shape: o.shape, cx: o.cx, cy: o.cy, scale: o.scale };
  const win = placementWindow(placement, w, h);
  const cover = rasterize(placement, w, h, new Float32Array(w * h), win);
  const mask = Uint8Array.from(cover, (c) => (c > 0 ? 1 : 0));
  let border = false;
  for (let x = 0; x < w && !border; x++) border = !!(mask[x] || mask[(h - 1) * w + x]);
  for (let y = 0; y < h && !border; y++) border = !!(mask[y * w] || mask[y * w + w - 1]);
  return { mask, border };
}

/** Whether a pixel of `a` equals or 8-neighbours a pixel of `b`. */
function touches(a: Uint8Array, b: Uint8Array, w: number, h: number): boolean {
  for (let p = 0; p < a.length; p++) {
    if (!a[p]) continue;
    const x = p % w;
    const y = (p - x) / w;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const xx = x + dx;
        const yy = y + dy;
        if (xx >= 0 && yy >= 0 && xx < w && yy < h && b[yy * w + xx]) return true;
      }
    }
  }
  return false;
}

/** The clip of `seed`: frame 0 is `sampleScene(seed, { objects })`; same seed and options, same clip. */
export function sampleClip(seed: number, options: ClipOptions = {}): Clip {
  const frames = options.frames ?? CLIP_FRAMES;
  if (!Number.isInteger(frames) || frames < 2 || frames > MAX_CLIP_FRAMES)
    throw new Error(`sampleClip: frames must be an integer in [2, ${MAX_CLIP_FRAMES}], got ${frames}`);
  const speed64 = options.speed ?? CLIP_SPEED;
  if (!(Number.isFinite(speed64) && speed64 > 0 && speed64 <= 8))
    throw new Error(`sampleClip: speed must be in (0, 8] pixels per frame at 64 px, got ${speed64}`);
  const stillChance = options.stillChance ?? 0.2;
  if (!(stillChance >= 0 && stillChance <= 1))
    throw new Error(`sampleClip: stillChance must be in [0, 1], got ${stillChance}`);
  const scene = sampleScene(seed, { objects: options.objects ?? [1, 2] });
  const speed = (speed64 * scene.width) / 64;
  const { width: w, height: h } = scene;

  const gen = new Generator(seed);
  gen.counter = MOTION_COUNTER;
  const uniform = () => gen.rand([1]).data[0] as number;
  // supports[i][k]: object i's support in frame k, for the objects already given a motion
  const supports: Uint8Array[][] = [];
  const motions: (Direction | null)[] = [];
  scene.objects.forEach((o) => {
    const still = uniform() < stillChance;
    const order = [...DIRECTIONS];
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(uniform() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const shared = options.sharedDirection ? motions.find((m) => m !== null) : undefined;
    const candidates: (Direction | null)[] = still ? [null] : shared ? [shared, null] : [...order, null];
    // a candidate must keep the object off the border and apart from the earlier objects in every frame
    for (const motion of candidates) {
      const path: Uint8Array[] = [];
      let ok = true;
      for (let k = 0; k < frames && ok; k++) {
        const s = support(movedObject(o, motion, speed * k, scene), w, h);
        ok = !s.border && supports.every((other) => !touches(s.mask, other[k]!, w, h));
        path.push(s.mask);
      }
      if (ok) {
        motions.push(motion);
        supports.push(path);
        return;
      }
    }
    // even staying still, an earlier object's path crosses this one: every object stays (frame 0 is apart)
    motions.fill(null);
    motions.push(null);
    const stay = (x: SceneObject) => new Array<Uint8Array>(frames).fill(support(x, w, h).mask);
    supports.splice(0, supports.length, ...scene.objects.slice(0, motions.length).map(stay));
  });
  return { seed, frames, speed, scene, motions };
}

/** Every frame's image and ground-truth masks (renderScene of each frame's scene). */
export function renderClip(clip: Clip): Rendering[] {
  return Array.from({ length: clip.frames }, (_, k) => renderScene(sceneAt(clip, k)));
}
