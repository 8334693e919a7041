// Clip metrics of Moving Shapes: ShapesEval on every frame, then per clip
//
// - identity: every caption object is matched in every frame, with the same detected colour and shape in all
//   of them (ShapesEval's matching, per frame);
// - trajectory: for each object whose caption gives a direction, the path of its detected centre. Its
//   direction is the dominant axis and sign of the net displacement (last frame where present minus first),
//   "still" when that displacement is under `minDisplacement`; its straightness is net displacement over
//   path length (1: a straight line, as every ground-truth path);
// - background stability: the mean absolute change (8-bit levels, over R, G, B) between consecutive frames
//   of the pixels that lie outside every detected object's box (grown by one pixel) in both frames — 0 for
//   a rendered clip, whose background never moves.

import type { Tensor } from '../../index.js';
import {
  type DetectedObject,
  type Detection,
  type DetectOptions,
  detectObjects,
  type Rate,
  type SceneReport,
  scoreDetection,
} from '../shapes/index.js';
import type { MotionSpec } from './caption.js';
import { parseMotionCaption } from './caption.js';
import type { Direction } from './clip.js';

/**
 * One moving object's detected path across a clip: direction found against the caption's, and straightness.
 */
export interface TrajectoryReport {
  /** Detected centre per frame (null where the object was not matched). */
  path: ({ x: number; y: number } | null)[];
  expected: Direction;
  /** null: matched in fewer than two frames. */
  detected: Direction | 'still' | null;
  correct: boolean;
  /** Net displacement / path length, in [0, 1]; null when the object did not move or was not tracked. */
  straightness: number | null;
}

/** One caption object across a clip: identity kept, colour and shape per frame, its trajectory. */
export interface ClipObjectReport {
  /** Matched in every frame with one colour and one shape throughout. */
  identity: boolean;
  /** Per frame: matched, right colour and shape for the caption. */
  colorShape: boolean[];
  /** For objects whose caption gives a direction. */
  trajectory: TrajectoryReport | null;
}

/**
 * A clip scored against its caption: ShapesEval per frame, each object's identity and trajectory, background
 * stability.
 */
export interface ClipReport {
  caption: string | null;
  frames: SceneReport[];
  objects: ClipObjectReport[];
  /** Every caption object keeps its identity. */
  identity: boolean;
  /** Mean absolute change of the background between consecutive frames (8-bit levels). */
  background: number;
}

/** Options of the clip metrics: ShapesEval's detector and the smallest displacement that counts as motion. */
export interface ClipMetricOptions extends DetectOptions {
  /** Smallest net displacement that counts as motion, pixels at 64 × 64 (default 2). */
  minDisplacement?: number;
}

function directionOf(dx: number, dy: number, min: number): Direction | 'still' {
  if (Math.hypot(dx, dy) < min) return 'still';
  if (Math.abs(dx) >= Math.abs(dy)) return dx > 0 ? 'right' : 'left';
  return dy > 0 ? 'down' : 'up';
}

function trajectory(
  path: ({ x: number; y: number } | null)[],
  expected: Direction,
  min: number,
): TrajectoryReport {
  const seen = path.filter((p): p is { x: number; y: number } => p !== null);
  if (seen.length < 2) return { path, expected, detected: null, correct: false, straightness: null };
  const first = seen[0]!;
  const last = seen[seen.length - 1]!;
  const detected = directionOf(last.x - first.x, last.y - first.y, min);
  let length = 0;
  for (let i = 1; i < seen.length; i++)
    length += Math.hypot(seen[i]!.x - seen[i - 1]!.x, seen[i]!.y - seen[i - 1]!.y);
  const net = Math.hypot(last.x - first.x, last.y - first.y);
  return {
    path,
    expected,
    detected,
    correct: detected === expected,
    straightness: length > 0 ? net / length : null,
  };
}

/** 1 outside every detected object's box grown by one pixel. */
function backgroundMask(d: Detection): Uint8Array {
  const { width: w, height: h } = d;
  const mask = new Uint8Array(w * h).fill(1);
  for (const o of d.objects) {
    for (let y = Math.max(0, o.box.y0 - 1); y < Math.min(h, o.box.y1 + 1); y++)
      mask.fill(0, y * w + Math.max(0, o.box.x0 - 1), y * w + Math.min(w, o.box.x1 + 1));
  }
  return mask;
}

function backgroundChange(frames: readonly Tensor[], detections: readonly Detection[]): number {
  let sum = 0;
  let count = 0;
  for (let k = 1; k < frames.length; k++) {
    const a = frames[k - 1]!.data as Float32Array;
    const b = frames[k]!.data as Float32Array;
    const ma = backgroundMask(detections[k - 1]!);
    const mb = backgroundMask(detections[k]!);
    const plane = ma.length;
    for (let p = 0; p < plane; p++) {
      if (!ma[p] || !mb[p]) continue;
      for (let c = 0; c < 3; c++) sum += Math.abs(b[c * plane + p]! - a[c * plane + p]!) * 127.5;
      count += 3;
    }
  }
  return count > 0 ? sum / count : 0;
}

/** Scores a clip — frames (1, 3, H, W) in [-1, 1] — against a motion caption (or its parsed MotionSpec). */
export function scoreClip(
  frames: readonly Tensor[],
  caption: string | MotionSpec,
  options: ClipMetricOptions = {},
): ClipReport {
  if (frames.length < 2) throw new Error(`scoreClip: a clip needs at least 2 frames, got ${frames.length}`);
  const motion = typeof caption === 'string' ? parseMotionCaption(caption) : caption;
  const detections = frames.map((f) => detectObjects(f, options));
  const reports = detections.map((d) => scoreDetection(d, motion.spec));
  const width = detections[0]!.width;
  const min = ((options.minDisplacement ?? 2) * width) / 64;
  const objects = motion.spec.objects.map((_, i): ClipObjectReport => {
    const matched = reports.map((r) => r.objects[i]!.detected);
    const first = matched[0];
    const same = (d: DetectedObject | null) =>
      d !== null && first != null && d.color === first.color && d.shape === first.shape;
    const expected = motion.motions[i] ?? null;
    return {
      identity: matched.every(same),
      colorShape: reports.map((r) => r.objects[i]!.color && r.objects[i]!.shape),
      trajectory:
        expected === null
          ? null
          : trajectory(
              matched.map((d) => (d ? { x: d.cx, y: d.cy } : null)),
              expected,
              min,
            ),
    };
  });
  return {
    caption: typeof caption === 'string' ? caption : null,
    frames: reports,
    objects,
    identity: objects.every((o) => o.identity),
    background: backgroundChange(frames, detections),
  };
}

/** Clip metrics over many clips: identity, direction and straightness of trajectories, background change. */
export interface ClipSummary {
  clips: number;
  /** Clips whose every object keeps its identity. */
  identity: Rate;
  /** Objects whose caption gives a direction, detected moving that way. */
  direction: Rate;
  /** The same, over 1-object clips only. */
  directionOneObject: Rate;
  /** Mean straightness of the tracked moving objects' paths. */
  straightness: number | null;
  /** Frames of 1-object clips whose object has the caption's colour and shape (ShapesEval per frame). */
  colorShapeOneObject: Rate;
  /** Mean background change between consecutive frames (8-bit levels). */
  background: number | null;
}

function rateOf(flags: readonly boolean[]): Rate {
  const correct = flags.filter(Boolean).length;
  return { correct, total: flags.length, rate: flags.length > 0 ? correct / flags.length : null };
}

const meanOf = (xs: readonly number[]) => (xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/** The rates of many clip reports. */
export function summarizeClips(reports: readonly ClipReport[]): ClipSummary {
  const trajectories = reports.flatMap((r) => r.objects.flatMap((o) => (o.trajectory ? [o.trajectory] : [])));
  const single = reports.filter((r) => r.objects.length === 1);
  return {
    clips: reports.length,
    identity: rateOf(reports.map((r) => r.identity)),
    direction: rateOf(trajectories.map((t) => t.correct)),
    directionOneObject: rateOf(
      single.flatMap((r) => (r.objects[0]!.trajectory ? [r.objects[0]!.trajectory.correct] : [])),
    ),
    straightness: meanOf(trajectories.flatMap((t) => (t.straightness === null ? [] : [t.straightness]))),
    colorShapeOneObject: rateOf(single.flatMap((r) => r.objects[0]!.colorShape)),
    background: meanOf(reports.map((r) => r.background)),
  };
}
