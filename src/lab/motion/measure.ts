// Video methods on Moving Shapes clips: each clip's caption without its motion phrases prompts every frame,
// the first moving object's direction is the motion asked of the method (Text2Video-Zero moves the whole
// frame one way), and the clip metrics score the frames against the full caption. Clip i is the clip of
// held-out scene seed i (seeds.ts), its noise seeded by that seed alone.

import {
  generateVideo,
  type StableDiffusion,
  T2V_ZERO_MOTION,
  T2V_ZERO_T0,
  type Tensor,
  type VideoMethod,
} from '../../index.js';
import { heldOutSeed } from '../seeds.js';
import { captionOfClip } from './caption.js';
import { type ClipOptions, sampleClip } from './clip.js';
import { type ClipReport, type ClipSummary, scoreClip, summarizeClips } from './metrics.js';

export interface VideoMeasureOptions extends ClipOptions {
  /** Clips (default 40). */
  clips?: number;
  /** First held-out index (default 0). */
  start?: number;
  methods?: readonly VideoMethod[];
  /** Denoising steps (default 25). */
  steps?: number;
  /** Classifier-free guidance (default 5, as ShapesEval). */
  guidanceScale?: number;
  /** Motion per frame as a fraction of the image side (default the reference's). */
  strength?: number;
  /** Timestep of the motion warp (default the reference's t0, 881). */
  t0?: number;
  /** Called after each clip of each method. */
  onClip?: (done: number, total: number) => void;
}

export interface VideoMeasureRow {
  seed: number;
  caption: string;
  method: VideoMethod;
  report: ClipReport;
  frames?: Tensor;
}

export interface VideoMeasurement {
  settings: Required<Omit<VideoMeasureOptions, 'onClip' | 'objects'>>;
  rows: VideoMeasureRow[];
  summary: Partial<Record<VideoMethod, ClipSummary>>;
}

/** Runs every method on the same clips; `keepFrames` keeps the first clips' frames (for pictures). */
export function measureVideo(
  sd: StableDiffusion,
  options: VideoMeasureOptions = {},
  keepFrames = 0,
): VideoMeasurement {
  const settings = {
    clips: options.clips ?? 40,
    start: options.start ?? 0,
    methods: options.methods ?? (['independent', 'motion-only', 't2v-zero'] as const),
    steps: options.steps ?? 25,
    guidanceScale: options.guidanceScale ?? 5,
    strength: options.strength ?? T2V_ZERO_MOTION,
    t0: options.t0 ?? T2V_ZERO_T0,
    frames: options.frames ?? 8,
    speed: options.speed ?? 1.5,
    stillChance: options.stillChance ?? 0.2,
    sharedDirection: options.sharedDirection ?? false,
  };
  const rows: VideoMeasureRow[] = [];
  const total = settings.clips * settings.methods.length;
  for (let i = 0; i < settings.clips; i++) {
    const seed = heldOutSeed(settings.start + i);
    const clip = sampleClip(seed, { ...settings, ...(options.objects ? { objects: options.objects } : {}) });
    const caption = captionOfClip(clip);
    const direction = clip.motions.find((m) => m !== null) ?? undefined;
    for (const method of settings.methods) {
      const { frames } = generateVideo(sd, {
        prompt: caption.still.text,
        frames: settings.frames,
        method,
        direction,
        strength: settings.strength,
        t0: settings.t0,
        seed,
        steps: settings.steps,
        guidanceScale: settings.guidanceScale,
      });
      const list = (frames.split(settings.frames, 0) as Tensor[]).map((f) => f);
      const report = scoreClip(list, caption.text);
      rows.push({ seed, caption: caption.text, method, report, ...(i < keepFrames ? { frames } : {}) });
      options.onClip?.(rows.length, total);
    }
  }
  const summary: VideoMeasurement['summary'] = {};
  for (const m of settings.methods)
    summary[m] = summarizeClips(rows.filter((r) => r.method === m).map((r) => r.report));
  return { settings, rows, summary };
}
