// Layout guidance, backward guidance (Chen, Laina & Vedaldi, WACV 2024, "Training-free layout control with
// cross-attention guidance"): each object's word should put its cross-attention inside its box. Per layer and
// object i with box mask B_i, per head, the activation a = Σ_{u∈B_i} A_u / Σ_u A_u of each token of the word;
// the loss is the mean over heads of (1 − a)², averaged over the word's tokens, summed over objects, divided by
// objects × layers. For the first steps (10 of 51), while the loss exceeds 0.2 (at most 5 times a step):
// x_t ← x_t − ∇(30 · L) · σ_t² on the reference's LMS latents x_t = z_t / √ᾱ_t (variance exploding, σ_t² =
// (1 − ᾱ_t) / ᾱ_t). The pipeline's latents are z_t (variance preserving, the UNet's input as is): with
// ∇_x = √ᾱ_t · ∇_z the same move is z_t ← z_t − ∇(30 · L) · (1 − ᾱ_t) — applying σ_t² to z_t instead makes
// the first step 1/ᾱ_t times too long (213× at SD's t = 999; the latents blew up to 7× their norm here).
//
// From the reference (silent-chen/layout-guidance): the layers are the mid block's and the first attention up
// block's (8 × 8 and 16 × 16 of SD's 64 × 64 latents: here the mid block and the up path at the latent side / 4); a box
// covers the cells [⌊x0·W⌋, ⌊x1·W⌋). Difference: the loss is recomputed at each step (the reference carries the
// last loss of one step into the next step's first check).

import type { AttentionCall } from '../../attention/call.js';
import type { TokenLookup } from '../../attention/tokens.js';
import { Tensor } from '../../tensor/index.js';
import { perPrompt } from './attend-and-excite.js';
import {
  boxCells,
  CrossAttentionRecorder,
  cellMask,
  checkBox,
  descend,
  type GuidanceStep,
  type LatentGuidance,
  lossAndGradient,
  type RecordedMap,
  scaledStep,
  type WordBox,
  wordTokens,
} from './score-guidance.js';

/**
 * Options of layout guidance (Chen, Laina & Vedaldi 2024): the prompts, a box per word, the loss scale and
 * the steps guided.
 */
export interface LayoutGuidanceOptions {
  tokenizer: TokenLookup;
  prompts: string | readonly string[];
  /** Word → box: one list for every prompt, or one list per prompt. */
  boxes: readonly WordBox[] | readonly (readonly WordBox[])[];
  /** The loss is scaled by this before its gradient (default 30). */
  lossScale?: number;
  /** A step stops updating once the (unscaled) loss is at most this (default 0.2). */
  lossThreshold?: number;
  /** Updates per step at most (default 5). */
  maxIter?: number;
  /** Steps [0, maxIndexStep) are guided (default the reference's 10 of 51, scaled to the run). */
  maxIndexStep?: number;
  /** Which layers' maps the loss reads (default the mid block's, and the up path's at the latent side / 4). */
  layers?: (call: AttentionCall) => boolean;
  /**
   * The map sides whose mid-block and up-path layers the loss reads, instead of the default (the built-in
   * model's 16 × 16 latents give the default only 4 × 4 maps, too coarse for a box).
   */
  sides?: readonly number[];
}

/** One (row, token) entry of the loss: its token position, the weight 1 / (tokens of its word), its box's cells. */
interface Entry {
  token: number;
  weight: number;
  box: WordBox['box'];
}

/**
 * The backward-guidance loss per row (B) on recorded maps (B, heads, Tq, Tk): for each layer and entry, the
 * mean over heads of (1 − inside / total)², weighted, summed, divided by objects × layers.
 */
export function layoutLoss(
  maps: readonly RecordedMap[],
  entries: readonly (readonly Entry[])[],
  objects: readonly number[],
): Tensor {
  if (maps.length === 0) throw new Error('layout guidance: no cross-attention layer was recorded');
  const b = entries.length;
  const ne = Math.max(1, ...entries.map((r) => r.length));
  let total: Tensor | undefined;
  for (const { size, map } of maps) {
    const [side, tk] = [size[0], map.shape[3] as number];
    const sel = new Float32Array(b * tk * ne);
    const mask = new Float32Array(b * side * side * ne);
    const weight = new Float32Array(b * ne);
    entries.forEach((row, r) => {
      row.forEach((e, k) => {
        sel[(r * tk + e.token) * ne + k] = 1;
        weight[r * ne + k] = e.weight / (objects[r] as number);
        const m = cellMask(boxCells(e.box, side, 'floor'), side);
        for (let q = 0; q < side * side; q++) mask[(r * side * side + q) * ne + k] = m[q] as number;
      });
    });
    const a = map.matmul(new Tensor(sel, [b, 1, tk, ne])); // (B, H, Tq, E)
    const inside = a.mul(new Tensor(mask, [b, 1, side * side, ne])).sum({ axes: [2] });
    const act = inside.div(a.sum({ axes: [2] }).add(1e-12)); // (B, H, E)
    const perLayer = act
      .neg()
      .add(1)
      .pow(2)
      .mean({ axes: [1] })
      .mul(new Tensor(weight, [b, ne]))
      .sum({ axes: [1] });
    total = total ? total.add(perLayer) : perLayer;
  }
  return (total as Tensor).mul(1 / maps.length);
}

/** Layout guidance's backward guidance as a score-driven guidance (`generate({ guidance: [...] })`). */
export class LayoutGuidance implements LatentGuidance {
  readonly name = 'LayoutGuidance';
  /** Each row's loss at each update (for reports). */
  losses: { step: number; losses: number[] }[] = [];
  private readonly entries: Entry[][];
  private readonly objects: number[];
  private readonly recorder: CrossAttentionRecorder;
  private side = 0;

  constructor(private readonly opts: LayoutGuidanceOptions) {
    const prompts = typeof opts.prompts === 'string' ? [opts.prompts] : [...opts.prompts];
    const boxes = perPrompt('layout guidance', prompts.length, opts.boxes);
    for (const row of boxes) for (const wb of row) checkBox('layout guidance', wb.box, wb.word);
    const tokens = wordTokens(
      'layout guidance',
      opts.tokenizer,
      prompts,
      boxes.map((r) => r.map((wb) => wb.word)),
    );
    this.entries = tokens.map((row, r) =>
      row.flatMap((positions, k) =>
        positions.map((token) => ({
          token,
          weight: 1 / positions.length,
          box: ((boxes[r] as WordBox[])[k] as WordBox).box,
        })),
      ),
    );
    this.objects = boxes.map((r) => Math.max(1, r.length));
    // the mid block, and the up path at the latent side / 4 (SD: up_blocks.1, the first attention up block)
    const select = (call: AttentionCall) =>
      call.place === 'mid' || (call.place === 'up' && call.size?.[0] === this.side);
    const sides = opts.sides;
    const bySide = (call: AttentionCall) =>
      (call.place === 'mid' || call.place === 'up') && !!sides?.includes(call.size?.[0] ?? 0);
    this.recorder = new CrossAttentionRecorder(opts.layers ?? (sides ? bySide : select));
  }

  guide(step: GuidanceStep): Tensor | undefined {
    const maxIndexStep = this.opts.maxIndexStep ?? scaledStep(10, step.numSteps, 51);
    if (step.step >= maxIndexStep) return undefined;
    if ((step.latents.shape[0] as number) !== this.entries.length) {
      throw new Error(
        `layout guidance: made for ${this.entries.length} prompts, the generation has ${step.latents.shape[0]}`,
      );
    }
    this.side = Math.max(2, Math.round((step.latents.shape[2] as number) / 4));
    // the reference's σ_t² step on LMS latents, carried to the pipeline's DDIM latents: 1 − ᾱ_t (see the top)
    const scale = (this.opts.lossScale ?? 30) * (1 - step.alphaCumprod);
    const threshold = this.opts.lossThreshold ?? 0.2;
    const lossOf = (maps: readonly RecordedMap[]) => layoutLoss(maps, this.entries, this.objects);
    let x = step.latents;
    for (let it = 0; it < (this.opts.maxIter ?? 5); it++) {
      const at = lossAndGradient(step, x, this.recorder, lossOf);
      this.losses.push({ step: step.step, losses: at.losses });
      const active = at.losses.map((l) => l > threshold);
      if (!active.includes(true)) break;
      x = descend(x, at.grad, scale, active);
    }
    return x;
  }
}
