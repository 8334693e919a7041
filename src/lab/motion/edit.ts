// Video word swap on Moving Shapes clips (Video-P2P's setting): object 0's colour swapped to a colour no object
// of the clip has, the source and target clips from the same noise with the same motion, the target clip's
// maps taken frame by frame from the source clip's (`editVideo`). Scored per frame as the image colour swap
// (measure/swap.ts): the edited object has the new colour and its shape, its detected mask's IoU with the
// source frame's; per clip, the share of frames with the new colour and the edited clip's identity.

import {
  editVideo,
  type StableDiffusion,
  T2V_ZERO_MOTION,
  T2V_ZERO_T0,
  type Tensor,
  type VideoMethod,
  type WarpSampling,
} from '../../index.js';
import { scoreSwap } from '../measure/swap.js';
import { rightObject } from '../metrics.js';
import { heldOutSeed } from '../seeds.js';
import { COLORS, evaluate } from '../shapes/index.js';
import { captionOfClip, parseMotionCaption } from './caption.js';
import { type Clip, type ClipOptions, sampleClip } from './clip.js';
import { scoreClip } from './metrics.js';

/** Options of the video word-swap measurement: clips, methods, sampling, the motion warp and the edit steps. */
export interface VideoEditMeasureOptions extends ClipOptions {
  /** Clips (default 20). */
  clips?: number;
  /** First held-out index (default 0; development clips from 100 000). */
  start?: number;
  /** How the frames are tied (default t2v-zero: Video-P2P with cross-frame attention, and motion-only). */
  methods?: readonly VideoMethod[];
  /** Denoising steps (default 25). */
  steps?: number;
  /** Classifier-free guidance (default 5, as ShapesEval). */
  guidanceScale?: number;
  /** Motion per frame as a fraction of the image side (default the reference's 12/512). */
  strength?: number;
  /** Timestep of the motion warp (default the reference's t0, 881; the measured runs use 150). */
  t0?: number;
  /** How the motion warp samples the latents (default the reference's nearest sample with reflection). */
  warp?: WarpSampling;
  /** Prompt-to-Prompt's cross- and self-attention replacement (default 0.8, 0.4: the reference's). */
  crossReplaceSteps?: number;
  selfReplaceSteps?: number;
  /** Share of a clip's frames that must show the new colour (default 0.8). */
  frameShare?: number;
  /** Called after each clip of each method. */
  onClip?: (done: number, total: number) => void;
}

/** One clip's edit by one method: per-frame scores and the clip's. */
export interface VideoEditRow {
  seed: number;
  source: string;
  target: string;
  method: VideoMethod;
  /** Per frame: the edited object has the new colour (and its shape). */
  changed: boolean[];
  /** Per frame: the source frame's object is right (colour and shape), so its mask is the object's. */
  sourceValid: boolean[];
  /** Per frame: IoU of the object's detected masks, source frame vs edited frame (0 when either is missing). */
  iou: number[];
  /**
   * Per frame: IoU with the edited frame's copy in the source object's place (`SwapScore.iouSamePlace`): where
   * the model draws the object twice, the matched masks can be two different copies although nothing moved.
   */
  iouSamePlace: number[];
  /** The source and edited clips keep their objects' identity (clip metrics against their captions). */
  sourceIdentity: boolean;
  editedIdentity: boolean;
  frames?: { source: Tensor; edited: Tensor };
}

/** One method's video word-swap summary. */
export interface VideoEditSummary {
  clips: number;
  /** Clips with the new colour in at least `frameShare` of their frames. */
  clipsChanged: number;
  clipsChangedRate: number | null;
  /** Frames with the new colour, over all frames. */
  framesChangedRate: number | null;
  /** Mean per-frame object IoU over frames whose source object is right. */
  meanIoU: number | null;
  /** The same with the copy in the source object's place. */
  meanIoUSamePlace: number | null;
  /** Mean object IoU at each frame index (over clips whose source object is right in that frame). */
  meanIoUByFrame: (number | null)[];
  validFrames: number;
  sourceIdentityRate: number | null;
  editedIdentityRate: number | null;
}

/** The video word-swap measurement's result: settings, rows and one summary per method. */
export interface VideoEditMeasurement {
  settings: Required<Omit<VideoEditMeasureOptions, 'onClip' | 'objects'>>;
  rows: VideoEditRow[];
  summary: Partial<Record<VideoMethod, VideoEditSummary>>;
}

/** The clip with object 0 in another colour (its motion and everything else kept). */
export function recolouredClip(clip: Clip, colour: string): Clip {
  const objects = clip.scene.objects.map((o, i) => (i === 0 ? { ...o, color: colour } : o));
  return { ...clip, scene: { ...clip.scene, objects } as Clip['scene'] };
}

/** Runs the word swap with every method on the same clips; `keepFrames` keeps the first clips' frames. */
export function measureVideoEdit(
  sd: StableDiffusion,
  options: VideoEditMeasureOptions = {},
  keepFrames = 0,
): VideoEditMeasurement {
  const settings = {
    clips: options.clips ?? 20,
    start: options.start ?? 0,
    methods: options.methods ?? (['t2v-zero', 'motion-only'] as const),
    steps: options.steps ?? 25,
    guidanceScale: options.guidanceScale ?? 5,
    strength: options.strength ?? T2V_ZERO_MOTION,
    t0: options.t0 ?? T2V_ZERO_T0,
    warp: options.warp ?? 'nearest-reflection',
    crossReplaceSteps: options.crossReplaceSteps ?? 0.8,
    selfReplaceSteps: options.selfReplaceSteps ?? 0.4,
    frameShare: options.frameShare ?? 0.8,
    frames: options.frames ?? 8,
    speed: options.speed ?? 1.5,
    stillChance: options.stillChance ?? 0.2,
    sharedDirection: options.sharedDirection ?? false,
  };
  const rows: VideoEditRow[] = [];
  const total = settings.clips * settings.methods.length;
  for (let i = 0; i < settings.clips; i++) {
    const seed = heldOutSeed(settings.start + i);
    const clip = sampleClip(seed, { ...settings, ...(options.objects ? { objects: options.objects } : {}) });
    const free = COLORS.filter((c) => !clip.scene.objects.some((o) => o.color === c));
    const colour = free[seed % free.length]!;
    const [source, target] = [captionOfClip(clip), captionOfClip(recolouredClip(clip, colour))];
    const direction = clip.motions.find((m) => m !== null) ?? undefined;
    for (const method of settings.methods) {
      const r = editVideo(sd, {
        prompt: source.still.text,
        target: target.still.text,
        editMethod: 'replace',
        crossReplaceSteps: settings.crossReplaceSteps,
        selfReplaceSteps: settings.selfReplaceSteps,
        frames: settings.frames,
        method,
        direction,
        strength: settings.strength,
        t0: settings.t0,
        warp: settings.warp,
        seed,
        steps: settings.steps,
        guidanceScale: settings.guidanceScale,
      });
      const scores = scoreVideoEdit(
        r.source.split(settings.frames, 0),
        r.edited.split(settings.frames, 0),
        source.text,
        target.text,
      );
      rows.push({
        seed,
        source: source.text,
        target: target.text,
        method,
        ...scores,
        ...(i < keepFrames ? { frames: { source: r.source, edited: r.edited } } : {}),
      });
      options.onClip?.(rows.length, total);
    }
  }
  const summary: VideoEditMeasurement['summary'] = {};
  for (const m of settings.methods)
    summary[m] = summarizeVideoEdit(
      rows.filter((r) => r.method === m),
      settings.frameShare,
    );
  return { settings, rows, summary };
}

/**
 * A colour swap of object 0 scored frame by frame — frames (1, 3, H, W), captions with motion phrases — as the
 * image colour swap (`scoreSwap`), and the identity of both clips.
 */
export function scoreVideoEdit(
  source: readonly Tensor[],
  edited: readonly Tensor[],
  sourceCaption: string,
  targetCaption: string,
): Pick<
  VideoEditRow,
  'changed' | 'sourceValid' | 'iou' | 'iouSamePlace' | 'sourceIdentity' | 'editedIdentity'
> {
  if (source.length !== edited.length)
    throw new Error(`scoreVideoEdit: ${source.length} source frames but ${edited.length} edited ones`);
  const [from, to] = [parseMotionCaption(sourceCaption), parseMotionCaption(targetCaption)];
  const scores = source.map((s, k) => {
    const report = evaluate(s, from.stillText);
    const score = scoreSwap(s, report, edited[k]!, to.stillText, 'color');
    const valid = rightObject(report.objects[0]);
    return { valid, changed: score.changed, iou: score.iou, iouSamePlace: score.iouSamePlace };
  });
  return {
    changed: scores.map((s) => s.changed),
    sourceValid: scores.map((s) => s.valid),
    iou: scores.map((s) => s.iou),
    iouSamePlace: scores.map((s) => s.iouSamePlace),
    sourceIdentity: scoreClip(source, from).identity,
    editedIdentity: scoreClip(edited, to).identity,
  };
}

/** A method's rows summarised: clips with the new colour in ≥ `frameShare` of their frames, IoU, identity. */
export function summarizeVideoEdit(rows: readonly VideoEditRow[], frameShare: number): VideoEditSummary {
  const share = (xs: readonly boolean[]) => xs.filter(Boolean).length / xs.length;
  const rate = (xs: readonly boolean[]) => (xs.length > 0 ? share(xs) : null);
  const changedClips = rows.filter((r) => share(r.changed) >= frameShare).length;
  const valid = (xs: readonly number[], r: VideoEditRow) => xs.filter((_, k) => r.sourceValid[k]);
  const mean = (xs: readonly number[]) => (xs.length > 0 ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
  const ious = rows.flatMap((r) => valid(r.iou, r));
  return {
    clips: rows.length,
    clipsChanged: changedClips,
    clipsChangedRate: rows.length > 0 ? changedClips / rows.length : null,
    framesChangedRate: rate(rows.flatMap((r) => r.changed)),
    meanIoU: mean(ious),
    meanIoUSamePlace: mean(rows.flatMap((r) => valid(r.iouSamePlace ?? [], r))),
    meanIoUByFrame: Array.from({ length: Math.max(0, ...rows.map((r) => r.iou.length)) }, (_, k) =>
      mean(rows.flatMap((r) => (r.sourceValid[k] && r.iou[k] !== undefined ? [r.iou[k]] : []))),
    ),
    validFrames: ious.length,
    sourceIdentityRate: rate(rows.map((r) => r.sourceIdentity)),
    editedIdentityRate: rate(rows.map((r) => r.editedIdentity)),
  };
}
