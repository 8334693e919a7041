// Text2Video-Zero: Khachatryan et al. 2023, "Text2Video-Zero: Text-to-Image Diffusion Models are Zero-Shot
// Video Generators" — a text-to-image model made to draw a clip, with no training, by two changes.
//
// Cross-frame attention (`CrossFrameAttention`, feature level): every frame's self-attention reads the first
// frame's keys and values, Attention(Q_k, K_1, V_1), in every self-attention layer of the denoiser and at every
// step (reference: Picsart-AI-Research/Text2Video-Zero, `CrossFrameAttnProcessor`, `former_frame_index = [0]·f`),
// the unconditional rows the first frame's unconditional row, the conditional rows the conditional one.
//
// Motion dynamics (`MotionDynamics`, a step hook): all frames start from the first frame's noise x_T; at the
// reference's timestep t0 (881 of 1000: `t0 = 44` of its 50 DDPM timesteps) frame k's latents become frame 1's
// translated by k·δ, sampled nearest with reflection at the borders as the reference's `grid_sample`. The
// reference's δ is 12 pixels per frame of a 512-pixel image (`motion_field_strength_x/y`), and it then re-noises
// the translated latents from t0 to t1 = 941 (`DDPM_forward`, here `forwardNoise`) and denoises all frames again
// from t1. A step hook cannot rewind the sampler, so `MotionDynamics` alone goes on from t0; the video pipeline's
// own sampler does the rewind when given t1 (pipelines/video.ts).

import type { AttentionCall, BatchRoles } from '../../attention/call.js';
import type { Controller, Features, StepState } from '../../attention/hooks.js';
import { formatShape, indexSelect, Tensor } from '../../tensor/index.js';

/**
 * For each row, the row of the same clip's first frame in the same guidance branch. Frames are the batch roles'
 * `frame` when given (clips then told apart by `prompt`), else the prompt index (one prompt row per frame,
 * as `generate({ prompt: frames × [text] })` lays the batch out).
 */
export function firstFrameRows(batch: BatchRoles, method: string): number[] {
  const frame = batch.frame ?? batch.prompt;
  return batch.guidance.map((g, r) => {
    const clip = batch.frame ? batch.prompt[r] : undefined;
    const s = batch.guidance.findIndex(
      (h, i) => h === g && frame[i] === 0 && (clip === undefined || batch.prompt[i] === clip),
    );
    if (s < 0) throw new Error(`${method}: the batch has no '${g}' row of frame 0; frames must start at 0`);
    return s;
  });
}

/** Text2Video-Zero's cross-frame attention: every frame's self-attention reads frame 0's K and V. */
export class CrossFrameAttention implements Controller {
  readonly name = 'CrossFrameAttention';

  /** The denoiser's self-attention layers (not the VAE's or a text encoder's). */
  appliesTo(call: AttentionCall): boolean {
    return call.kind === 'self' && (call.place === 'down' || call.place === 'mid' || call.place === 'up');
  }

  /** K and V of every row ← those of its clip's first frame, same guidance branch. */
  features(call: AttentionCall, f: Features): Features {
    const rows = firstFrameRows(call.batch, this.name);
    return { q: f.q, k: indexSelect(f.k, 0, rows), v: indexSelect(f.v, 0, rows) };
  }
}

/** The reference's t0 on a 1000-step training schedule: its 50 DDPM timesteps' index 44, t = 881. */
export const T2V_ZERO_T0 = 881;

/** The reference's δ: 12 pixels per frame of a 512-pixel image, as a fraction of the image side. */
export const T2V_ZERO_MOTION = 12 / 512;

/** The reference's t1: its 50 DDPM timesteps' index 47, t = 941 (the warped latents are re-noised to it). */
export const T2V_ZERO_T1 = 941;

/**
 * Text2Video-Zero's re-noising of the warped latents (the reference's `DDPM_forward`): the forward process from
 * the level ᾱ0 (at t0) to the noisier ᾱ1 (at t1), q(x_t1 | x_t0) = N(√(ᾱ1/ᾱ0) x_t0, (1 − ᾱ1/ᾱ0) I), with `noise`
 * as the standard normal draw.
 */
export function forwardNoise(x: Tensor, alphaBar0: number, alphaBar1: number, noise: Tensor): Tensor {
  if (!(alphaBar1 > 0 && alphaBar1 <= alphaBar0 && alphaBar0 <= 1))
    throw new Error(
      `forwardNoise: ᾱ must not grow from t0 to t1 (0 < ᾱ1 ≤ ᾱ0 ≤ 1), got ᾱ0 = ${alphaBar0}, ᾱ1 = ${alphaBar1}`,
    );
  const r = alphaBar1 / alphaBar0;
  return x.mul(Math.sqrt(r)).add(noise.mul(Math.sqrt(1 - r)));
}

/**
 * The denoising step after which the latents are at the first timestep ≤ t0 of the schedule (the step to warp
 * after); throws when no such step leaves a step to run.
 */
export function motionWarpStep(timesteps: readonly number[], t0 = T2V_ZERO_T0): number {
  const next = timesteps.findIndex((t, i) => i > 0 && t <= t0);
  if (next < 1) {
    throw new Error(
      `MotionDynamics: the schedule (${timesteps.length} steps from t = ${timesteps[0]}) never reaches ` +
        `t0 = ${t0} with a step left after it; give more steps or a larger t0`,
    );
  }
  return next - 1;
}

/**
 * Text2Video-Zero's motion dynamics (Khachatryan et al. 2023): the translation of the content per frame and
 * the step after which the latents are warped.
 */
export interface MotionDynamicsOptions {
  /** Translation of the content per frame, latent pixels (x right, y down). */
  dx: number;
  dy: number;
  /** Warp after this denoising step (0-based); see `motionWarpStep`. */
  step: number;
  /** How the moved latents are sampled (default 'nearest-reflection', the reference's). */
  sampling?: WarpSampling;
}

/**
 * How `translateFrames` samples the moved frame: the reference's nearest sample reflected at the edges
 * (`grid_sample(mode='nearest', padding_mode='reflection')`), or a sub-pixel bilinear sample with the edge pixel
 * repeated ('border') or zero latents ('zeros') outside.
 */
export const WARP_SAMPLINGS = ['nearest-reflection', 'bilinear-border', 'bilinear-zeros'] as const;
/** One of `WARP_SAMPLINGS`. */
export type WarpSampling = (typeof WARP_SAMPLINGS)[number];

/**
 * Text2Video-Zero's motion dynamics: after denoising step `step`, latent row k (frame k) ← row 0 translated by
 * k·(dx, dy) latent pixels (nearest sample, reflected at the borders); when the batch roles give frames, each
 * clip's frame k ← that clip's frame 0 (`latentFrames`).
 */
export class MotionDynamics implements Controller {
  readonly name = 'MotionDynamics';
  readonly dx: number;
  readonly dy: number;
  readonly step: number;
  readonly sampling: WarpSampling;

  constructor(opts: MotionDynamicsOptions) {
    for (const [key, v] of [
      ['dx', opts.dx],
      ['dy', opts.dy],
    ] as const) {
      if (!Number.isFinite(v)) throw new Error(`MotionDynamics: ${key} must be a finite number, got ${v}`);
    }
    if (!(Number.isInteger(opts.step) && opts.step >= 0))
      throw new Error(`MotionDynamics: step must be an integer ≥ 0, got ${opts.step}`);
    this.dx = opts.dx;
    this.dy = opts.dy;
    this.step = opts.step;
    this.sampling = opts.sampling ?? 'nearest-reflection';
    if (!WARP_SAMPLINGS.includes(this.sampling))
      throw new Error(
        `MotionDynamics: sampling must be one of ${WARP_SAMPLINGS.join(', ')}, got '${this.sampling}'`,
      );
  }

  afterStep(state: StepState): Tensor | undefined {
    if (state.step !== this.step) return undefined;
    if (this.step >= state.numSteps - 1) {
      throw new Error(
        `MotionDynamics: step ${this.step} is the last of ${state.numSteps}, so the frames would never be denoised after the translation`,
      );
    }
    return translateFrames(state.latents, this.dx, this.dy, latentFrames(state), this.sampling);
  }
}

/**
 * For each latent row, its clip's frame-0 row and its frame, from the batch roles' `frame` and `prompt`
 * (clip) of the conditional rows (the latents have one row per conditional row); undefined when the roles
 * give no frames (then row k is frame k of one clip).
 */
export function latentFrames(state: StepState): FrameSource[] | undefined {
  const { frame, guidance, prompt } = state.batch;
  if (!frame) return undefined;
  const n = state.latents.shape[0] as number;
  const cond = guidance.flatMap((g, r) => (g === 'cond' ? [r] : []));
  const roles = cond.length === n ? cond : guidance.length === n ? guidance.map((_, r) => r) : undefined;
  if (!roles) {
    throw new Error(
      `MotionDynamics: ${n} latent rows but the batch roles have ${guidance.length} rows (${cond.length} conditional)`,
    );
  }
  return roles.map((r) => {
    const from = roles.findIndex((s) => prompt[s] === prompt[r] && frame[s] === 0);
    if (from < 0) throw new Error(`MotionDynamics: clip ${prompt[r]} has no frame 0; frames must start at 0`);
    return { from, frame: frame[r]! };
  });
}

/** Where a translated latent row comes from: its clip's frame-0 row, and its frame index k (moved by k·δ). */
export interface FrameSource {
  from: number;
  frame: number;
}

/** Reflects index i into [0, n) about the image's edges, as `grid_sample`'s 'reflection' (align_corners False): −1 → 0. */
function reflect(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * n;
  let j = ((i % period) + period) % period;
  if (j >= n) j = period - 1 - j;
  return j;
}

/**
 * The taps that output pixel p of an axis of n pixels reads when the content moves by `shift`: [index, weight]
 * pairs (index −1: a zero outside). Nearest with reflection reads p − round(shift); bilinear the two pixels
 * around u = p − shift, u clamped into [0, n − 1] for 'border', pixels outside the axis zero for 'zeros'.
 */
function taps(p: number, shift: number, n: number, sampling: WarpSampling): [number, number][] {
  if (sampling === 'nearest-reflection') return [[reflect(p - Math.round(shift), n), 1]];
  const u = p - shift;
  const v = sampling === 'bilinear-border' ? Math.min(n - 1, Math.max(0, u)) : u;
  const i = Math.floor(v);
  const a = v - i;
  const inside = (j: number) => (j >= 0 && j < n ? j : -1);
  const out: [number, number][] = [[inside(i), 1 - a]];
  if (a > 0) out.push([inside(i + 1), a]);
  return out;
}

/**
 * Frames (F, C, h, w): frame k ← frame 0 moved by k·(dx, dy) pixels (content moves; by default nearest,
 * reflected, as the reference). With `sources` (one per row: several clips in one batch), row r ← row `from`
 * moved by `frame`·(dx, dy).
 */
export function translateFrames(
  latents: Tensor,
  dx: number,
  dy: number,
  sources?: readonly FrameSource[],
  sampling: WarpSampling = 'nearest-reflection',
): Tensor {
  if (latents.rank !== 4 || latents.dtype !== 'float32')
    throw new Error(
      `translateFrames: expected float32 frames (F, C, h, w), got ${formatShape(latents.shape)}`,
    );
  const [f, c, h, w] = latents.shape as [number, number, number, number];
  const src = latents.data as Float32Array;
  const out = new Float32Array(src.length);
  if (sources && sources.length !== f)
    throw new Error(`translateFrames: ${sources.length} frame sources for ${f} rows`);
  const plane = h * w;
  for (let r = 0; r < f; r++) {
    const { from, frame: k } = sources?.[r] ?? { from: 0, frame: r };
    // the output pixel p shows frame 0 at p − k·δ (the reference samples at p + flow, flow = −k·δ)
    const xs = Array.from({ length: w }, (_, x) => taps(x, k * dx, w, sampling));
    const ys = Array.from({ length: h }, (_, y) => taps(y, k * dy, h, sampling));
    for (let ch = 0; ch < c; ch++) {
      const base = (from * c + ch) * plane;
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          let v = 0;
          for (const [yy, wy] of ys[y]!) {
            if (yy < 0) continue;
            for (const [xx, wx] of xs[x]!) if (xx >= 0) v += wy * wx * src[base + yy * w + xx]!;
          }
          out[(r * c + ch) * plane + y * w + x] = v;
        }
      }
    }
  }
  return new Tensor(out, [f, c, h, w]);
}
