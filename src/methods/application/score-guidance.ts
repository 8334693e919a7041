// Attention score-driven guidance (the survey's application level): a loss on the cross-attention maps of the
// conditional pass, whose gradient with respect to the latents steers them during sampling (Attend-and-Excite,
// layout guidance, BoxDiff). The pipeline calls each guidance's `guide` at every denoising step, before the
// step's classifier-free-guided UNet call, with a `denoise` that runs the UNet on the prompts' conditional text
// alone under autograd; the guidance returns new latents (or undefined to leave them).
//
// This file holds what the three methods share: the step interface, a recorder of the cross-attention
// probabilities with their gradients, the word → token selection, and one loss-and-gradient evaluation.
// Memory: a guidance pass keeps the UNet's graph until its backward; the recorder forms probabilities only on
// the layers it selects (the standard trick: only the 16 × 16 maps' layers of SD at 512 px), and the methods'
// `maxIterToAlter` / `maxIndexStep` bound how many steps pay for it.

import type { AttentionCall, StepInfo } from '../../attention/call.js';
import type { Controller } from '../../attention/hooks.js';
import type { TokenLookup } from '../../attention/tokens.js';
import { backward, enableGrad, Tensor } from '../../tensor/index.js';

/** What a score-driven guidance sees at one denoising step. */
export interface GuidanceStep extends StepInfo {
  /** The latents (n, C, h, w) before this step, one row per prompt. */
  latents: Tensor;
  /** ᾱ_t of this step's timestep (the scheduler's cumulative α). */
  alphaCumprod: number;
  /**
   * The denoiser's output for `latents` (n rows) on the prompts' conditional text alone, recorded for
   * gradients; `controllers` (the guidance's own, not the generation's) run on its attention layers.
   */
  denoise(latents: Tensor, controllers: readonly Controller[]): Tensor;
}

/**
 * A score-driven guidance (application level): at each denoising step it may move the latents along the
 * gradient of a loss on the cross-attention maps. Passed to `generate({ guidance })`.
 */
export interface LatentGuidance {
  readonly name: string;
  /** New latents for this step, or undefined to leave them unchanged. */
  guide(step: GuidanceStep): Tensor | undefined;
}

/** One recorded cross-attention layer: its map side and its probabilities (B, heads, Tq, Tk). */
export interface RecordedMap {
  size: readonly [number, number];
  map: Tensor;
}

/**
 * Records the cross-attention probabilities (B, heads, Tq, Tk) of the UNet layers `select` accepts, with their
 * gradients (a map-level observer: it leaves the probabilities unchanged).
 */
export class CrossAttentionRecorder implements Controller {
  readonly name = 'CrossAttentionRecorder';
  maps: RecordedMap[] = [];

  constructor(private readonly select: (call: AttentionCall) => boolean) {}

  appliesTo(call: AttentionCall): boolean {
    if (call.kind !== 'cross' || !call.size) return false;
    if (call.place !== 'down' && call.place !== 'mid' && call.place !== 'up') return false;
    return this.select(call);
  }

  map(call: AttentionCall, p: Tensor): Tensor {
    this.maps.push({ size: call.size as [number, number], map: p });
    return p;
  }
}

/** The recorded maps of one side averaged over layers and heads (B, side², Tk); an error when none was recorded. */
export function meanMapAt(maps: readonly RecordedMap[], side: number, method: string): Tensor {
  const at = maps.filter((m) => m.size[0] === side);
  if (at.length === 0) {
    const seen = [...new Set(maps.map((m) => m.size[0]))].join(', ') || 'none';
    throw new Error(`${method}: no ${side}×${side} cross-attention map in this model (its sides: ${seen})`);
  }
  const sum = at.slice(1).reduce((a, m) => a.add(m.map), (at[0] as RecordedMap).map);
  return sum.mean({ axes: [1] }).mul(1 / at.length); // (B, side², Tk)
}

/** A word of a prompt (by text or by word index) and, for the layout methods, its region. */
export type WordRef = string | number;

/** Token positions of each row's words, checked before anything is generated: a word not in its prompt is an error. */
export function wordTokens(
  method: string,
  tokenizer: TokenLookup,
  prompts: readonly string[],
  words: readonly (readonly WordRef[])[],
): number[][][] {
  if (words.length !== prompts.length) {
    throw new Error(`${method}: words for ${words.length} prompts, but ${prompts.length} prompts were given`);
  }
  return prompts.map((prompt, r) =>
    (words[r] as readonly WordRef[]).map((w) => {
      try {
        return tokenizer.keptTokenIndices(prompt, w);
      } catch (e) {
        throw new Error(`${method}: ${(e as Error).message}`);
      }
    }),
  );
}

/**
 * The selection (B, Tk, W) that sums each row's word tokens: column w of row b adds up the text positions of
 * that row's word w; rows with fewer words have zero columns. `offset` shifts positions (−1 once bos is cut).
 */
export function wordSelection(tokens: readonly (readonly number[][])[], tk: number, offset = 0): Tensor {
  const b = tokens.length;
  const nw = Math.max(1, ...tokens.map((r) => r.length));
  const sel = new Float32Array(b * tk * nw);
  tokens.forEach((row, r) => {
    row.forEach((positions, w) => {
      for (const p of positions) {
        const t = p + offset;
        if (t < 0 || t >= tk) throw new Error(`score guidance: token ${p} is outside the ${tk} text tokens`);
        sel[(r * tk + t) * nw + w] = 1;
      }
    });
  });
  return new Tensor(sel, [b, tk, nw]);
}

/** Which (row, word) pairs exist: (B, W), 1 where row b has a word w. */
export function wordValid(tokens: readonly (readonly number[][])[]): Tensor {
  const nw = Math.max(1, ...tokens.map((r) => r.length));
  const v = new Float32Array(tokens.length * nw);
  tokens.forEach((row, r) => {
    for (let w = 0; w < row.length; w++) v[r * nw + w] = 1;
  });
  return new Tensor(v, [tokens.length, nw]);
}

/** A loss per row (B) and its gradient with respect to the latents. */
export interface LossAndGradient {
  losses: number[];
  grad: Tensor;
}

/**
 * Runs the conditional UNet pass on `latents` with `recorder`, takes `loss` (one value per row) of the maps it
 * recorded, and back-propagates their sum to the latents (the rows are independent, so each row's gradient is
 * its own loss's).
 */
export function lossAndGradient(
  step: GuidanceStep,
  latents: Tensor,
  recorder: CrossAttentionRecorder,
  loss: (maps: readonly RecordedMap[]) => Tensor,
): LossAndGradient {
  const x = latents.detach().requireGrad();
  recorder.maps = [];
  const perRow = enableGrad(() => {
    step.denoise(x, [recorder]);
    return loss(recorder.maps);
  });
  recorder.maps = [];
  const losses = perRow.toArray();
  if (!losses.some((l) => l !== 0)) return { losses, grad: Tensor.zeros(x.shape) };
  backward(enableGrad(() => perRow.sum()));
  return { losses, grad: x.grad ?? Tensor.zeros(x.shape) };
}

/** `latents − scale · grad`, on the rows where `rows` is true only. */
export function descend(latents: Tensor, grad: Tensor, scale: number, rows?: readonly boolean[]): Tensor {
  if (!rows) return latents.sub(grad.mul(scale));
  const [b, ...rest] = latents.shape as [number, ...number[]];
  const on = new Tensor(
    Float32Array.from(rows, (r) => (r ? scale : 0)),
    [b, ...rest.map(() => 1)],
  );
  return latents.sub(grad.mul(on));
}

/** Stable Diffusion's largest σ (ᾱ of t = 999 on its scaled-linear schedule, 0.0047): the cap of `sigmaOf`. */
export const SD_SIGMA_MAX = 14.6146;

/**
 * σ_t = √((1 − ᾱ_t) / ᾱ_t), the noise level of a variance-exploding view of the step (what the references'
 * LMS scheduler calls sigmas), capped at SD_SIGMA_MAX: a zero-terminal-SNR schedule has σ = ∞ at its first step.
 */
export function sigmaOf(alphaCumprod: number): number {
  if (!(alphaCumprod > 0)) return SD_SIGMA_MAX;
  return Math.min(Math.sqrt((1 - alphaCumprod) / alphaCumprod), SD_SIGMA_MAX);
}

/** A step index of the reference's 50-step schedule, on a schedule of `numSteps` steps. */
export function scaledStep(step: number, numSteps: number, referenceSteps = 50): number {
  return Math.round((step * numSteps) / referenceSteps);
}

/** A region as fractions of the image's width and height: [x0, y0, x1, y1], 0 ≤ x0 < x1 ≤ 1, 0 ≤ y0 < y1 ≤ 1. */
export type Box = readonly [number, number, number, number];

/** A word of the prompt and the box its object should fill (layout guidance, BoxDiff, paint-with-words). */
export interface WordBox {
  word: WordRef;
  box: Box;
}

/** Refuses a box that is not four numbers in [0, 1] with x0 < x1 and y0 < y1, naming it. */
export function checkBox(method: string, box: Box, word: WordRef): void {
  const text = `[${box.join(', ')}]`;
  if (box.length !== 4 || !box.every((v) => Number.isFinite(v))) {
    throw new Error(`${method}: the box of "${word}" must be four numbers x0, y0, x1, y1, got ${text}`);
  }
  const [x0, y0, x1, y1] = box;
  if (!box.every((v) => v >= 0 && v <= 1)) {
    throw new Error(
      `${method}: the box of "${word}" ${text} lies outside [0, 1]; give fractions of the image`,
    );
  }
  if (!(x0 < x1 && y0 < y1)) {
    throw new Error(`${method}: the box of "${word}" ${text} is empty or inverted; give x0 < x1 and y0 < y1`);
  }
}

/**
 * The cells [x0, x1) × [y0, y1) of a side × side map that a box covers, its corners scaled to the side and
 * rounded down (layout guidance: `int(b · W)`) or to the nearest (BoxDiff); at least one cell each way.
 */
export function boxCells(
  box: Box,
  side: number,
  rounding: 'floor' | 'round',
): [number, number, number, number] {
  const f = rounding === 'floor' ? Math.floor : Math.round;
  const [a, b, c, d] = box.map((v) => Math.min(side, Math.max(0, f(v * side)))) as [
    number,
    number,
    number,
    number,
  ];
  const x0 = Math.min(a, side - 1);
  const y0 = Math.min(b, side - 1);
  return [x0, y0, Math.max(c, x0 + 1), Math.max(d, y0 + 1)];
}

/** A side × side 0/1 mask (flattened, row-major) of the cells [x0, x1) × [y0, y1). */
export function cellMask(cells: readonly [number, number, number, number], side: number): Float32Array {
  const [x0, y0, x1, y1] = cells;
  const m = new Float32Array(side * side);
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[y * side + x] = 1;
  return m;
}
