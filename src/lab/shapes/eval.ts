// ShapesEval: scores an image against a prompt (a caption of the Shapes grammar or a SceneSpec) — a
// GenEval for the Shapes world, with no learned model.
//
// The detector (detect.ts) lists the objects in the image. Each prompt object is then matched to at most
// one detected object, maximising over all one-to-one matchings the sum of: 4 for the same colour, 4 for
// the same shape (a pair with neither is never matched), 1 for the same size and 1 for the same cell where
// the prompt gives them. A prompt object is *present* when it is matched, and *correct* when it is
// present with the right colour and shape and, where the prompt gives them, size and cell. A relation holds
// when both its objects are present and their detected centres are so arranged. The scene is all correct
// when every object is correct, every relation holds and the background tone, where given, is right;
// extra detected objects do not count against it (`countCorrect` reports them).

import type { Tensor } from '../../index.js';
import { parseCaption } from './caption.js';
import { type DetectedObject, type Detection, type DetectOptions, detectObjects } from './detect.js';
import { type Relation, relationHolds, sameCell } from './grid.js';
import type { BackgroundTone } from './palette.js';
import type { ObjectSpec, SceneSpec } from './spec.js';

/** One prompt object scored: the detected object matched to it and whether each attribute is right. */
export interface ObjectReport {
  spec: ObjectSpec;
  /** The detected object matched to it, or null. */
  detected: DetectedObject | null;
  present: boolean;
  color: boolean;
  shape: boolean;
  /** null where the prompt gives no size. */
  size: boolean | null;
  /** null where the prompt gives no cell. */
  position: boolean | null;
  correct: boolean;
}

/** One spatial relation of the prompt and whether the detected objects hold it. */
export interface RelationReport {
  relation: Relation;
  holds: boolean;
}

/** An image scored against its prompt: objects, relations, background and object count. */
export interface SceneReport {
  /** The prompt text, when a caption was given. */
  caption: string | null;
  spec: SceneSpec;
  objects: ObjectReport[];
  relations: RelationReport[];
  background: { expected: BackgroundTone | null; detected: BackgroundTone; correct: boolean | null };
  counts: { expected: number; detected: number; correct: number };
  /** As many objects detected as the prompt names. */
  countCorrect: boolean;
  allCorrect: boolean;
  detection: Detection;
}

/** Largest number of detected objects (by area) considered for matching. */
const MAX_CANDIDATES = 8;

function pairScore(spec: ObjectSpec, d: DetectedObject): number {
  const color = spec.color === d.color;
  const shape = spec.shape === d.shape;
  if (!color && !shape) return Number.NEGATIVE_INFINITY;
  let score = (color ? 4 : 0) + (shape ? 4 : 0);
  if (spec.size && spec.size === d.size) score += 1;
  if (spec.cell && sameCell(spec.cell, d.cell)) score += 1;
  return score;
}

/** Best one-to-one matching of prompt objects to detected ones (index or -1), by exhaustive search. */
export function matchObjects(specs: readonly ObjectSpec[], detected: readonly DetectedObject[]): number[] {
  const candidates = detected.slice(0, MAX_CANDIDATES);
  const best = { score: Number.NEGATIVE_INFINITY, assignment: specs.map(() => -1) };
  const current: number[] = [];
  const used = new Set<number>();
  const search = (i: number, score: number) => {
    if (i === specs.length) {
      if (score > best.score) {
        best.score = score;
        best.assignment = [...current];
      }
      return;
    }
    for (let j = 0; j < candidates.length; j++) {
      if (used.has(j)) continue;
      const s = pairScore(specs[i]!, candidates[j]!);
      if (s === Number.NEGATIVE_INFINITY) continue;
      used.add(j);
      current.push(j);
      search(i + 1, score + s);
      current.pop();
      used.delete(j);
    }
    current.push(-1);
    search(i + 1, score);
    current.pop();
  };
  search(0, 0);
  return best.assignment;
}

function objectReport(spec: ObjectSpec, d: DetectedObject | null): ObjectReport {
  if (d === null) {
    return {
      spec,
      detected: null,
      present: false,
      color: false,
      shape: false,
      size: spec.size ? false : null,
      position: spec.cell ? false : null,
      correct: false,
    };
  }
  const color = spec.color === d.color;
  const shape = spec.shape === d.shape;
  const size = spec.size ? spec.size === d.size : null;
  const position = spec.cell ? sameCell(spec.cell, d.cell) : null;
  return {
    spec,
    detected: d,
    present: true,
    color,
    shape,
    size,
    position,
    correct: color && shape && size !== false && position !== false,
  };
}

/** Scores a detection (from detectObjects) against a prompt. */
export function scoreDetection(detection: Detection, prompt: SceneSpec | string): SceneReport {
  const spec = typeof prompt === 'string' ? parseCaption(prompt) : prompt;
  const assignment = matchObjects(spec.objects, detection.objects);
  const objects = spec.objects.map((o, i) => objectReport(o, detection.objects[assignment[i]!] ?? null));
  const relations = spec.relations.map((relation): RelationReport => {
    const a = objects[relation.subject]?.detected;
    const b = objects[relation.object]?.detected;
    if (a === undefined || b === undefined) {
      throw new Error(
        `evaluate: relation ${JSON.stringify(relation)} names an object the spec does not have ` +
          `(it has ${spec.objects.length})`,
      );
    }
    const holds =
      a !== null &&
      b !== null &&
      relationHolds(relation.relation, { x: a.cx, y: a.cy }, { x: b.cx, y: b.cy });
    return { relation, holds };
  });
  const expected = spec.background ?? null;
  const background = {
    expected,
    detected: detection.background.tone,
    correct: expected === null ? null : expected === detection.background.tone,
  };
  const correct = objects.filter((o) => o.correct).length;
  return {
    caption: typeof prompt === 'string' ? prompt : null,
    spec,
    objects,
    relations,
    background,
    counts: { expected: spec.objects.length, detected: detection.objects.length, correct },
    countCorrect: detection.objects.length === spec.objects.length,
    allCorrect: correct === objects.length && relations.every((r) => r.holds) && background.correct !== false,
    detection,
  };
}

/** ShapesEval of one image — (1, 3, H, W) in [-1, 1] — against a caption or a SceneSpec. */
export function evaluate(
  image: Tensor,
  prompt: SceneSpec | string,
  options: DetectOptions = {},
): SceneReport {
  return scoreDetection(detectObjects(image, options), prompt);
}
