// Text to video with a text-to-image model: the frames of a clip are one batch of latents through the image
// model, one row per frame, and attention methods tie them together (Text2Video-Zero's cross-frame attention
// and motion dynamics, methods/feature/cross-frame-attention.ts). Output: an animated GIF (gifenc, one global
// palette for the whole clip) and a strip of the frames side by side.

import gifenc from 'gifenc';
import type { BatchRoles } from '../attention/call.js';
import type { AttentionContext, Controller } from '../attention/hooks.js';
import {
  CrossFrameAttention,
  forwardNoise,
  MotionDynamics,
  motionWarpStep,
  T2V_ZERO_MOTION,
  T2V_ZERO_T0,
  type WarpSampling,
} from '../methods/feature/cross-frame-attention.js';
import type { CrossReplaceSteps, StepBounds } from '../methods/map/token-alignment.js';
import { VideoP2P } from '../methods/map/video-p2p.js';
import type { MotionAdapter } from '../models/motion-module.js';
import type { SchedulerName } from '../schedulers/index.js';
import { concat, formatShape, noGrad, Tensor } from '../tensor/index.js';
import { Generator } from '../tensor/random.js';
import { autoEditMethod, type PromptEditMethod, promptEditor } from './edit.js';
import type { SamplingOptions, StableDiffusion } from './stable-diffusion.js';

/** How the frames are tied together. */
export const VIDEO_METHODS = ['t2v-zero', 'independent', 'motion-only', 'motion'] as const;
/**
 * - `t2v-zero`: Text2Video-Zero (cross-frame attention + motion dynamics), every frame from frame 0's noise;
 * - `independent`: every frame its own noise (the seed's stream, frame after frame), nothing shared;
 * - `motion-only`: Text2Video-Zero's motion dynamics without cross-frame attention (the paper's ablation);
 * - `motion`: AnimateDiff — the UNet with a MotionAdapter's temporal layers, every frame its own noise, the
 *   prompt as written (motion words included: the motion modules read them through the image features).
 */
export type VideoMethod = (typeof VIDEO_METHODS)[number];

/** The directions the content of a generated video can move in. */
export const MOTION_DIRECTIONS = ['left', 'right', 'up', 'down'] as const;
/** One direction of motion of a generated video. */
export type MotionDirection = (typeof MOTION_DIRECTIONS)[number];

/** Most frames a clip may have. */
export const MAX_VIDEO_FRAMES = 64;

export interface VideoOptions extends SamplingOptions {
  /** The prompt of every frame (without motion words: the motion is `direction`). */
  prompt: string;
  /** Frames, 2–64 (default 8). */
  frames?: number;
  /** Default 't2v-zero'. */
  method?: VideoMethod;
  /** Which way the content moves (t2v-zero, motion-only); none: it stays. */
  direction?: MotionDirection;
  /** Motion per frame as a fraction of the image side (default the reference's 12/512). */
  strength?: number;
  /** Timestep of the motion warp (default the reference's t0, 881). */
  t0?: number;
  /** How the motion warp samples the latents (default the reference's nearest sample with reflection). */
  warp?: WarpSampling;
  /**
   * Re-noise the warped latents from t0 back to t1 ≥ t0 and denoise every frame again from t1, frame 0 from its
   * own latents at t1 (the reference's t1 = 941, `T2V_ZERO_T1`); default none: the warped latents go on from t0.
   */
  t1?: number;
  width?: number;
  height?: number;
  scheduler?: SchedulerName;
  /** The motion modules of method 'motion'. */
  motionAdapter?: MotionAdapter;
}

/** A generated clip: its frames and their final latents. */
export interface VideoResult {
  /** (F, 3, H, W) in [-1, 1]. */
  frames: Tensor;
  latents: Tensor;
}

const UNIT: Readonly<Record<MotionDirection, readonly [number, number]>> = {
  left: [-1, 0],
  right: [1, 0],
  up: [0, -1],
  down: [0, 1],
};

/** The frames, method, steps, the clip's starting noise and the method's controllers, checked. */
function videoPlan(sd: StableDiffusion, opts: VideoOptions, what: string) {
  const frames = opts.frames ?? 8;
  if (!Number.isInteger(frames) || frames < 2 || frames > MAX_VIDEO_FRAMES)
    throw new Error(`${what}: frames must be an integer in [2, ${MAX_VIDEO_FRAMES}], got ${frames}`);
  const method = opts.method ?? 't2v-zero';
  if (!VIDEO_METHODS.includes(method))
    throw new Error(`${what}: method must be one of ${VIDEO_METHODS.join(', ')}, got '${method}'`);
  if (opts.direction !== undefined && !MOTION_DIRECTIONS.includes(opts.direction))
    throw new Error(
      `${what}: direction must be one of ${MOTION_DIRECTIONS.join(', ')}, got '${opts.direction}'`,
    );
  const strength = opts.strength ?? T2V_ZERO_MOTION;
  if (!(Number.isFinite(strength) && strength >= 0 && strength <= 0.5))
    throw new Error(`${what}: strength must be in [0, 0.5] of the image side per frame, got ${strength}`);
  const f = sd.vae.scaleFactor;
  const width = opts.width ?? sd.defaultSize;
  const height = opts.height ?? sd.defaultSize;
  if (width % f !== 0 || height % f !== 0)
    throw new Error(`${what}: width and height must be multiples of ${f}, got ${width}×${height}`);
  const shape = [1, sd.unet.config.inChannels, height / f, width / f];
  const steps = opts.steps ?? 25;

  const gen = new Generator(opts.seed ?? 0);
  const noise =
    method === 'independent' || method === 'motion'
      ? concat(
          Array.from({ length: frames }, () => gen.randn(shape)),
          0,
        )
      : concat(new Array<Tensor>(frames).fill(gen.randn(shape)), 0);

  const controllers: Controller[] = [];
  if (method === 't2v-zero') controllers.push(new CrossFrameAttention());
  let rewind: Rewind | undefined;
  if (method !== 'independent' && method !== 'motion' && opts.direction) {
    const scheduler = sd.scheduler(opts.scheduler);
    scheduler.setTimesteps(steps);
    const [ux, uy] = UNIT[opts.direction];
    const t0 = opts.t0 ?? T2V_ZERO_T0;
    const warp = new MotionDynamics({
      dx: (ux * strength * width) / f,
      dy: (uy * strength * height) / f,
      step: motionWarpStep([...scheduler.timesteps], t0),
      ...(opts.warp ? { sampling: opts.warp } : {}),
    });
    controllers.push(warp);
    if (opts.t1 !== undefined) {
      if (!(Number.isInteger(opts.t1) && opts.t1 >= t0))
        throw new Error(`${what}: t1 must be ≥ t0 (${t0}), an integer timestep; got ${opts.t1}`);
      // going back in the schedule needs a sampler without memory of earlier steps
      if (scheduler.className !== 'DDIMScheduler')
        throw new Error(`${what}: t1 re-noises and samples again from t1, which needs scheduler 'ddim'`);
      // the first step at a level ≤ t1: the loop goes back to it after the warp
      const step = scheduler.timesteps.findIndex((t) => t <= (opts.t1 as number));
      if (step <= warp.step) rewind = { step, warp, gen };
    }
  } else if (opts.t1 !== undefined) {
    throw new Error(
      `${what}: t1: only with methods t2v-zero and motion-only and a direction (it re-noises the warp)`,
    );
  }
  if (method === 'motion' && !opts.motionAdapter)
    throw new Error(`${what}: method 'motion' needs a MotionAdapter (motionAdapter; --adapter <dir>)`);
  return { frames, method, steps, noise, controllers, rewind };
}

/**
 * Text2Video-Zero's rewind: after `warp` (at t0) the moved frames are re-noised to the level of `step` (t1) and
 * denoised again from there, frame 0 from its own latents at that step; `gen` draws the re-noising.
 */
interface Rewind {
  step: number;
  warp: MotionDynamics;
  gen: Generator;
}

/** Generates a clip: `frames` images of one prompt, tied together by `method`. */
export function generateVideo(sd: StableDiffusion, opts: VideoOptions): VideoResult {
  const { frames, method, steps, noise, controllers, rewind } = videoPlan(sd, opts, 'video');
  if (method === 'motion' || rewind) {
    const all = [...controllers, ...(opts.controllers ?? [])];
    const clips = sampleClips(sd, opts, [opts.prompt], frames, noise, steps, all, rewind);
    return { frames: clips.images, latents: clips.latents };
  }
  const { images, latents } = sd.generate({
    seed: opts.seed,
    guidanceScale: opts.guidanceScale,
    onStep: opts.onStep,
    scheduler: opts.scheduler,
    prompt: new Array<string>(frames).fill(opts.prompt),
    latents: noise,
    steps,
    controllers: [...controllers, ...(opts.controllers ?? [])],
  });
  return { frames: images, latents };
}

/**
 * Options of `editVideo` (Video-P2P): the clip's options, the target prompt of the edit (without motion
 * words, like `prompt`) and Prompt-to-Prompt's edit settings.
 */
export interface VideoEditOptions extends VideoOptions {
  /** The edited prompt, e.g. the prompt with one word swapped. */
  target: string;
  /** Default 'auto': a word swap (replace) when the prompts have as many words, else refine. */
  editMethod?: Exclude<PromptEditMethod, 'reweight'> | 'auto';
  /** Default 0.8 (the Prompt-to-Prompt reference's). */
  crossReplaceSteps?: CrossReplaceSteps;
  /** Default 0.4 (the Prompt-to-Prompt reference's). */
  selfReplaceSteps?: StepBounds;
}

/** A clip and its edit: the source prompt's frames and the target prompt's, from the same noise. */
export interface VideoEditResult {
  /** (F, 3, H, W) in [-1, 1]. */
  source: Tensor;
  edited: Tensor;
  /** Final latents, the source clip's F rows then the edited clip's. */
  latents: Tensor;
}

/**
 * Video-P2P's word swap on a generated clip (Liu et al. 2023): the source and target prompts' clips sampled
 * as one batch from the same noise, tied together by `method` as in `generateVideo` (cross-frame attention and
 * motion dynamics act within each clip), the target clip's frame k taking Prompt-to-Prompt's maps from the
 * source clip's frame k (`VideoP2P`).
 */
export function editVideo(sd: StableDiffusion, opts: VideoEditOptions): VideoEditResult {
  if (opts.t1 !== undefined)
    throw new Error('editVideo: t1 (re-noising after the warp) is not built for edits');
  const { frames, steps, noise, controllers } = videoPlan(sd, opts, 'editVideo');
  if (typeof opts.target !== 'string' || opts.target.trim() === '')
    throw new Error('editVideo: give the target prompt (target), e.g. the prompt with one word swapped');
  const method =
    !opts.editMethod || opts.editMethod === 'auto'
      ? autoEditMethod(sd, opts.prompt, opts.target)
      : opts.editMethod;
  if (method === 'reweight')
    throw new Error('editVideo: the target prompt equals the source; give a target with a word changed');
  const editor = promptEditor(sd, method, {
    prompts: [opts.prompt, opts.target],
    crossReplaceSteps: opts.crossReplaceSteps ?? 0.8,
    selfReplaceSteps: opts.selfReplaceSteps ?? 0.4,
  });
  const edit = editor ? [new VideoP2P(editor)] : [];
  const clips = sampleClips(sd, opts, [opts.prompt, opts.target], frames, concat([noise, noise], 0), steps, [
    ...controllers,
    ...edit,
    ...(opts.controllers ?? []),
  ]);
  const [source, edited] = clips.images.split(2, 0) as [Tensor, Tensor];
  return { source, edited, latents: clips.latents };
}

/**
 * Several clips of `frames` frames, one prompt each, sampled as one batch (uncond rows, then cond rows; clip
 * after clip, frame after frame), the batch roles giving each row's clip (`prompt`) and `frame`; with method
 * 'motion', AnimateDiff's sampling: the UNet with the MotionAdapter's temporal layers over each clip.
 */
function sampleClips(
  sd: StableDiffusion,
  opts: VideoOptions,
  prompts: readonly string[],
  frames: number,
  noise: Tensor,
  steps: number,
  controllers: readonly Controller[],
  rewind?: Rewind,
): { images: Tensor; latents: Tensor } {
  const adapter = opts.method === 'motion' ? opts.motionAdapter : undefined;
  const guidance = opts.guidanceScale ?? 7.5;
  const guided = guidance > 1;
  const rep = (x: Tensor) => concat(new Array<Tensor>(frames).fill(x), 0);
  const cond = concat(
    prompts.map((p) => rep(sd.encodePrompt([p]))),
    0,
  );
  const context = guided
    ? concat([rep(concat(new Array<Tensor>(prompts.length).fill(sd.encodePrompt([''])), 0)), cond], 0)
    : cond;
  const clip = prompts.flatMap((_, c) => new Array<number>(frames).fill(c));
  const frame = prompts.flatMap(() => Array.from({ length: frames }, (_, k) => k));
  const batch: BatchRoles = guided
    ? {
        guidance: [...clip.map(() => 'uncond' as const), ...clip.map(() => 'cond' as const)],
        prompt: [...clip, ...clip],
        frame: [...frame, ...frame],
      }
    : { guidance: clip.map(() => 'cond' as const), prompt: clip, frame };
  const scheduler = sd.scheduler(opts.scheduler);
  scheduler.setTimesteps(steps);
  let latents = noise.mul(scheduler.initNoiseSigma);
  // the steps in the order they run: with a rewind, 0 … warp, then t1's step … last again, without the warp
  const all = [...scheduler.timesteps.keys()];
  const order = rewind ? [...all.slice(0, rewind.warp.step + 1), ...all.slice(rewind.step)] : all;
  let atT1: Tensor | undefined;
  return noGrad(() => {
    order.forEach((step, i) => {
      const t = scheduler.timesteps[step] as number;
      const second = rewind !== undefined && i > rewind.warp.step;
      const ctrls = second ? controllers.filter((c) => c !== rewind?.warp) : controllers;
      if (rewind && !second && step === rewind.step) atT1 = latents;
      const info = { step, numSteps: scheduler.timesteps.length, timestep: t, batch };
      for (const c of ctrls) c.beforeStep?.({ ...info, latents });
      const ctx: AttentionContext = { ...info, controllers: ctrls };
      const input = scheduler.scaleModelInput(guided ? concat([latents, latents], 0) : latents, t);
      const motion = adapter ? { motion: { adapter, frames } } : {};
      let out = sd.unet.forward(input, t, context, { ctx, ...motion });
      if (guided) {
        // ε̂ = ε(∅) + w · (ε(c) − ε(∅))
        const [u, c] = out.split(2, 0) as [Tensor, Tensor];
        out = u.add(c.sub(u).mul(guidance));
      }
      latents = scheduler.step(out, t, latents).prevSample;
      for (const c of ctrls) latents = c.afterStep?.({ ...info, latents }) ?? latents;
      if (rewind && atT1 && !second && step === rewind.warp.step)
        latents = renoised(latents, atT1, scheduler, rewind, batch.frame ?? []);
      opts.onStep?.({ step, numSteps: info.numSteps, timestep: t, latents });
    });
    return { images: sd.decodeLatents(latents), latents };
  });
}

/**
 * The warped latents (at the level after the warp step) re-noised to the rewind step's level, rows of frame 0
 * replaced by their latents saved at that step (the reference's x_t1 of the first frame).
 */
function renoised(
  warped: Tensor,
  atT1: Tensor,
  scheduler: ReturnType<StableDiffusion['scheduler']>,
  rewind: Rewind,
  frame: readonly number[],
): Tensor {
  const abar = (step: number) => scheduler.alphasCumprod[scheduler.timesteps[step] as number] as number;
  const noisy = forwardNoise(
    warped,
    abar(rewind.warp.step + 1),
    abar(rewind.step),
    rewind.gen.randn(warped.shape),
  );
  const n = warped.shape[0] as number;
  const rows = (x: Tensor) => x.split(n, 0) as Tensor[];
  const [a, b] = [rows(noisy), rows(atT1)];
  // latent rows are the conditional rows: the batch roles' frames of their first n entries' clip layout
  const frameOf = (r: number) => frame[frame.length - n + r] ?? r;
  return concat(
    a.map((x, r) => (frameOf(r) === 0 ? (b[r] as Tensor) : x)),
    0,
  );
}

/** 8-bit RGBA of frame k of (F, 3, H, W) in [-1, 1]. */
function rgbaOf(frames: Tensor, k: number): Uint8Array {
  const [, , h, w] = frames.shape as [number, number, number, number];
  const plane = h * w;
  const x = frames.data as Float32Array;
  const out = new Uint8Array(4 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const v = x[(k * 3 + c) * plane + p]!;
      out[4 * p + c] = Math.round(Math.min(255, Math.max(0, (v + 1) * 127.5)));
    }
    out[4 * p + 3] = 255;
  }
  return out;
}

function checkFrames(frames: Tensor, what: string): [number, number, number] {
  const s = frames.shape;
  if (frames.rank !== 4 || s[1] !== 3 || frames.dtype !== 'float32' || (s[0] as number) < 1)
    throw new Error(`${what}: expected float32 frames (F, 3, H, W), got ${formatShape(s)}`);
  return [s[0] as number, s[2] as number, s[3] as number];
}

/**
 * An animated GIF of frames (F, 3, H, W) in [-1, 1], looping, `delayMs` per frame (default 125: 8 frames a
 * second), all frames on one 256-colour palette quantised from the whole clip.
 */
export function encodeGif(frames: Tensor, delayMs = 125): Uint8Array {
  const [n, h, w] = checkFrames(frames, 'encodeGif');
  if (!(Number.isInteger(delayMs) && delayMs >= 0 && delayMs <= 65_530))
    throw new Error(`encodeGif: delayMs must be an integer in [0, 65530], got ${delayMs}`);
  const rgba = Array.from({ length: n }, (_, k) => rgbaOf(frames, k));
  const all = new Uint8Array(4 * n * h * w);
  for (const [k, r] of rgba.entries()) all.set(r, k * r.length);
  const palette = gifenc.quantize(all, 256);
  const gif = gifenc.GIFEncoder();
  rgba.forEach((r, k) => {
    gif.writeFrame(gifenc.applyPalette(r, palette), w, h, {
      ...(k === 0 ? { palette, repeat: 0 } : {}),
      delay: delayMs,
    });
  });
  gif.finish();
  return gif.bytes();
}

/** The frames side by side, (1, 3, H, F·W). */
export function frameStrip(frames: Tensor): Tensor {
  const [n, h, w] = checkFrames(frames, 'frameStrip');
  const x = frames.data as Float32Array;
  const out = new Float32Array(3 * h * n * w);
  for (let k = 0; k < n; k++) {
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < h; y++) {
        const from = ((k * 3 + c) * h + y) * w;
        out.set(x.subarray(from, from + w), (c * h + y) * n * w + k * w);
      }
    }
  }
  return new Tensor(out, [1, 3, h, n * w]);
}
