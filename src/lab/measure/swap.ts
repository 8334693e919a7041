// Scoring of a word swap of object 0 (colour or shape), shared by the colour-swap and shape-swap measurements:
// is the edited object there with the new word, did it keep its mask, did anything change outside it, and
// did the other objects stay where they were.

import type { Tensor } from '../../index.js';
import {
  copiesMask,
  maskOf,
  mean,
  meanAbsError,
  outsideOf,
  rate,
  rightObject,
  samePlaceMask,
  sizeOf,
} from '../metrics.js';
import { evaluate, maskIoU, type SceneReport } from '../shapes/index.js';

/** One scene of a word swap: its prompts and the scores of each method's edit. */
export interface SwapRow {
  seed: number;
  source: string;
  target: string;
  /** The source object is there with its colour and shape. */
  sourceValid: boolean;
  perMethod: Record<string, SwapScore>;
}

/** One edited image against its source. */
export interface SwapScore {
  changed: boolean;
  /** IoU of the matched object's detected masks (source vs edited). */
  iou: number;
  maeOutside: number;
  othersIoU: number[];
  /**
   * The same three with every detected copy of each object (`copiesMask`) instead of the matched one: a model
   * that draws an object twice matches either copy, so the matched masks can be different copies.
   */
  iouCopies: number;
  maeOutsideCopies: number;
  othersIoUCopies: number[];
  /**
   * IoU with the edited image's copy in the source object's place: of the detected objects with the matched
   * one's colour and shape, the one that overlaps the source object's mask most (`samePlaceMask`). Where the
   * model draws an object twice and the edit keeps both copies, the matched masks can be the two different
   * copies (IoU 0) although nothing moved; this reads the copy that stands where the source object stood.
   */
  iouSamePlace: number;
  othersIoUSamePlace: number[];
}

/**
 * One method's word-swap scores over the scenes: the edited object right, its mask kept, the change outside
 * it, the other objects in place.
 */
export interface SwapMethodSummary {
  /** Over scenes whose source object is right. */
  scenes: number;
  /** Edited object with the new attribute (and the old other one). */
  changedRate: number | null;
  meanIoU: number | null;
  /** Fraction of scenes with object IoU ≥ the target IoU. */
  iouAtLeast: number | null;
  meanMaeOutside: number | null;
  /** Other objects (shape swap): mean IoU with the source, fraction ≥ 0.9. */
  othersMeanIoU: number | null;
  othersAtLeast: number | null;
  othersCount: number;
  /** With every copy of each object (`SwapScore.iouCopies`). */
  meanIoUCopies?: number | null;
  iouCopiesAtLeast?: number | null;
  meanMaeOutsideCopies?: number | null;
  othersMeanIoUCopies?: number | null;
  othersCopiesAtLeast?: number | null;
  /** With the copy in the source object's place (`SwapScore.iouSamePlace`). */
  meanIoUSamePlace?: number | null;
  iouSamePlaceAtLeast?: number | null;
  othersMeanIoUSamePlace?: number | null;
  othersSamePlaceAtLeast?: number | null;
}

/** A word-swap measurement's result (colour or shape): settings, per-method summaries and the rows. */
export interface SwapResult {
  kind: 'colour' | 'shape';
  seeds: number;
  methods: Record<string, SwapMethodSummary>;
  rows: SwapRow[];
}

/** One method's scores over the scenes whose source object is right. */
export function summarizeSwap(
  rows: readonly SwapRow[],
  method: string,
  iouTarget: number,
): SwapMethodSummary {
  const valid = rows.filter((r) => r.sourceValid);
  const m = valid.map((r) => r.perMethod[method]!);
  const others = m.flatMap((x) => x.othersIoU);
  const othersCopies = m.flatMap((x) => x.othersIoUCopies);
  const copies = m.map((x) => x.iouCopies);
  const samePlace = m.map((x) => x.iouSamePlace);
  const othersSamePlace = m.flatMap((x) => x.othersIoUSamePlace);
  return {
    scenes: valid.length,
    changedRate: rate(m.map((x) => x.changed)),
    meanIoU: mean(m.map((x) => x.iou)),
    iouAtLeast: rate(m.map((x) => x.iou >= iouTarget)),
    meanMaeOutside: mean(m.map((x) => x.maeOutside)),
    othersMeanIoU: mean(others),
    othersAtLeast: rate(others.map((v) => v >= 0.9)),
    othersCount: others.length,
    meanIoUCopies: mean(copies),
    iouCopiesAtLeast: rate(copies.map((v) => v >= iouTarget)),
    meanMaeOutsideCopies: mean(m.map((x) => x.maeOutsideCopies)),
    othersMeanIoUCopies: mean(othersCopies),
    othersCopiesAtLeast: rate(othersCopies.map((v) => v >= 0.9)),
    meanIoUSamePlace: mean(samePlace),
    iouSamePlaceAtLeast: rate(samePlace.map((v) => v >= iouTarget)),
    othersMeanIoUSamePlace: mean(othersSamePlace),
    othersSamePlaceAtLeast: rate(othersSamePlace.map((v) => v >= 0.9)),
  };
}

/** Scores an edited image against the source for a swap of object 0 (colour or shape). */
export function scoreSwap(
  source: Tensor,
  sourceReport: SceneReport,
  edited: Tensor,
  target: string,
  attribute: 'color' | 'shape',
): SwapScore {
  const report = evaluate(edited, target);
  const obj = report.objects[0]!;
  const srcMask = maskOf(sourceReport.objects[0], source);
  const tgtMask = maskOf(obj, edited);
  const [w, h] = sizeOf(source);
  const iou = srcMask && tgtMask ? maskIoU(srcMask, tgtMask) : 0;
  const copiesOf = (r: SceneReport, j: number) => copiesMask(r.detection, r.objects[j]!.spec, w, h);
  const [srcCopies, tgtCopies] = [copiesOf(sourceReport, 0), copiesOf(report, 0)];
  const othersIoU: number[] = [];
  const othersIoUCopies: number[] = [];
  const othersIoUSamePlace: number[] = [];
  const samePlaceIoU = (a: Float32Array, j: number) => {
    const b = samePlaceMask(a, report, j, w, h);
    return b ? maskIoU(a, b) : 0;
  };
  sourceReport.objects.forEach((s, j) => {
    if (j === 0 || !rightObject(s)) return;
    const a = maskOf(s, source)!;
    const b = maskOf(report.objects[j], edited);
    othersIoU.push(b ? maskIoU(a, b) : 0);
    othersIoUSamePlace.push(samePlaceIoU(a, j));
    const [ca, cb] = [copiesOf(sourceReport, j), copiesOf(report, j)];
    othersIoUCopies.push(ca && cb ? maskIoU(ca, cb) : 0);
  });
  const other = attribute === 'color' ? obj.shape : obj.color;
  return {
    changed: obj.present && obj[attribute] && other,
    iou,
    maeOutside: meanAbsError(source, edited, outsideOf([srcMask, tgtMask], w, h)),
    othersIoU,
    iouCopies: srcCopies && tgtCopies ? maskIoU(srcCopies, tgtCopies) : 0,
    maeOutsideCopies: meanAbsError(source, edited, outsideOf([srcCopies, tgtCopies], w, h)),
    othersIoUCopies,
    iouSamePlace: srcMask ? samePlaceIoU(srcMask, 0) : 0,
    othersIoUSamePlace,
  };
}
