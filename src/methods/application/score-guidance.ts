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

/** One recorded cross-attention layer: its map side and its probabilities (B, Tq, Tk), heads averaged. */
export interface RecordedMap {
  size: readonly [number, number];
  map: Tensor;
}

/**
 * Records the cross-attention probabilities of the UNet layers whose map side `sides` accepts, heads
 * averaged, with their gradients (a map-level observer: it leaves the probabilities unchanged).
 */
export class CrossAttentionRecorder implements Controller {
  readonly name = 'CrossAttentionRecorder';
  maps: RecordedMap[] = [];

  constructor(private readonly sides: (side: number) => boolean) {}

  appliesTo(call: AttentionCall): boolean {
    if (call.kind !== 'cross' || !call.size) return false;
    if (call.place !== 'down' && call.place !== 'mid' && call.place !== 'up') return false;
    return this.sides(call.size[0]);
  }

  map(call: AttentionCall, p: Tensor): Tensor {
    this.maps.push({ size: call.size as [number, number], map: p.mean({ axes: [1] }) });
    return p;
  }
}

/** The recorded maps of one side averaged over layers (B, side², Tk); an error when none was recorded. */
export function meanMapAt(maps: readonly RecordedMap[], side: number, method: string): Tensor {
  const at = maps.filter((m) => m.size[0] === side);
  if (at.length === 0) {
    const seen = [...new Set(maps.map((m) => m.size[0]))].join(', ') || 'none';
    throw new Error(`${method}: no ${side}×${side} cross-attention map in this model (its sides: ${seen})`);
  }
  return at
    .slice(1)
    .reduce((a, m) => a.add(m.map), (at[0] as RecordedMap).map)
    .mul(1 / at.length);
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

/** A step index of the reference's 50-step schedule, on a schedule of `numSteps` steps. */
export function scaledStep(step: number, numSteps: number, referenceSteps = 50): number {
  return Math.round((step * numSteps) / referenceSteps);
}
