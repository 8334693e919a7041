// BoxDiff (Xie et al., ICCV 2023, "BoxDiff: text-to-image synthesis with training-free box-constrained
// diffusion"): Attend-and-Excite's schedule with three spatial constraints per subject word and its box, on the
// word's smoothed map (softmax of 100 × the text tokens' maps, as Attend-and-Excite):
//
//   inner-box   max(0, 1 − mean of the top P·|box| values inside the box)      (the word fills its box)
//   outer-box   mean of the top P·|outside| values outside the box               (and nothing else)
//   corner      mean over x of |max_y A(x, y) − 1[x in box]| at the box's left and right edges (± L cells),
//               and the same over y at its top and bottom edges                  (its extent matches the box)
//
// The latents step on the sum of all terms over subjects; Attend-and-Excite's refinement holds the largest
// inner-box term to its thresholds. From the reference (showlab/BoxDiff): P = 0.2, L = 1, refinement on, the
// rest Attend-and-Excite's defaults; box corners scaled to the map side and rounded. Difference: after a
// refinement the update's outer-box and corner terms are taken at the refined latents (the reference reuses
// the values from before it).

import { Tensor } from '../../tensor/index.js';
import {
  AttendAndExcite,
  type AttendAndExciteOptions,
  type ExciteObjective,
  perPrompt,
} from './attend-and-excite.js';
import {
  type Box,
  boxCells,
  cellMask,
  checkBox,
  type WordBox,
  wordSelection,
  wordValid,
} from './score-guidance.js';

/**
 * Options of BoxDiff (Xie et al. 2023): Attend-and-Excite's options with a box per subject word and the
 * constraints' parameters.
 */
export interface BoxDiffOptions extends Omit<AttendAndExciteOptions, 'subjects'> {
  /** Word → box: one list for every prompt, or one list per prompt. */
  boxes: readonly WordBox[] | readonly (readonly WordBox[])[];
  /** Fraction of the box's (and the outside's) cells whose top values count (default 0.2). */
  P?: number;
  /** Half-width in cells of the corner constraint's band around each box edge (default 1). */
  L?: number;
}

/** The mean of the k largest values of `values · mask` (k = ⌊P · Σ mask⌋, at least 1) as a 0/1 mask / k. */
function topKMask(values: ArrayLike<number>, mask: Float32Array, P: number): Float32Array {
  const k = Math.max(1, Math.floor(mask.reduce((a, v) => a + v, 0) * P));
  const order = Array.from(mask, (_m, q) => q).sort((a, b) => values[b]! * mask[b]! - values[a]! * mask[a]!);
  const out = new Float32Array(mask.length);
  for (const q of order.slice(0, k)) out[q] = 1 / k;
  return out;
}

/**
 * BoxDiff's terms per row on maps (B, side², Tk) averaged over layers and heads: `refine` the largest
 * inner-box term, `update` the sum of all terms over the row's subjects.
 */
export function boxDiffLoss(
  map: Tensor,
  side: number,
  tokens: readonly (readonly number[][])[],
  boxes: readonly (readonly Box[])[],
  opts: { smoothing?: Tensor; P?: number; L?: number } = {},
): ExciteObjective {
  const [P, L] = [opts.P ?? 0.2, opts.L ?? 1];
  const tk = map.shape[2] as number;
  const [b, n] = [tokens.length, side * side];
  const text = map
    .slice(2, 1, tk - 1)
    .mul(100)
    .softmax(-1);
  let img = text.matmul(wordSelection(tokens, tk - 2, -1)).transpose(1, 2); // (B, W, Tq)
  if (opts.smoothing) img = img.matmul(opts.smoothing.transpose(0, 1));
  const nw = img.shape[1] as number;
  const values = img.toArray();
  const [fgSel, bgSel] = [new Float32Array(b * nw * n), new Float32Array(b * nw * n)];
  const [gtX, gtY, cornerX, cornerY] = [0, 1, 2, 3].map(() => new Float32Array(b * nw * side));
  boxes.forEach((row, r) => {
    row.forEach((box, w) => {
      const cells = boxCells(box, side, 'round');
      const [x0, y0, x1, y1] = cells;
      const inside = cellMask(cells, side);
      const outside = inside.map((v) => 1 - v);
      const at = (r * nw + w) * n;
      const v = Array.from({ length: n }, (_, q) => values[at + q] as number);
      fgSel.set(topKMask(v, inside, P), at);
      bgSel.set(topKMask(v, outside, P), at);
      const band = (into: Float32Array, a: number, c: number) => {
        for (const e of [a, c]) {
          for (let i = Math.max(e - L, 0); i < Math.min(e + L + 1, side); i++)
            into[(r * nw + w) * side + i] = 1;
        }
      };
      band(cornerX as Float32Array, x0, x1);
      band(cornerY as Float32Array, y0, y1);
      for (let i = 0; i < side; i++) {
        (gtX as Float32Array)[(r * nw + w) * side + i] = i >= x0 && i < x1 ? 1 : 0;
        (gtY as Float32Array)[(r * nw + w) * side + i] = i >= y0 && i < y1 ? 1 : 0;
      }
    });
  });
  const t = (d: Float32Array, last: number) => new Tensor(d, [b, nw, last]);
  const valid = wordValid(tokens);
  const fg = img.mul(t(fgSel, n)).sum({ axes: [2] }); // (B, W)
  const bg = img.mul(t(bgSel, n)).sum({ axes: [2] });
  const grid = img.reshape([b, nw, side, side]); // (B, W, y, x)
  const dist = (proj: Tensor, gt: Float32Array, corner: Float32Array) =>
    proj
      .sub(t(gt, side))
      .abs()
      .mul(t(corner, side))
      .mean({ axes: [2] });
  const distX = dist(grid.max({ axes: [2] }), gtX as Float32Array, cornerX as Float32Array);
  const distY = dist(grid.max({ axes: [3] }), gtY as Float32Array, cornerY as Float32Array);
  const lossFg = fg.neg().add(1).relu().mul(valid);
  const update = lossFg
    .add(bg.relu().mul(valid))
    .add(distX.mul(valid))
    .add(distY.mul(valid))
    .sum({ axes: [1] });
  return { refine: lossFg.max({ axes: [1] }), update };
}

/** BoxDiff as a score-driven guidance (`generate({ guidance: [new BoxDiff(…)] })`). */
export class BoxDiff extends AttendAndExcite {
  override readonly name: string = 'BoxDiff';
  protected override readonly separateUpdate = true;
  private readonly boxes: Box[][];

  constructor(private readonly boxOpts: BoxDiffOptions) {
    const prompts = typeof boxOpts.prompts === 'string' ? [boxOpts.prompts] : [...boxOpts.prompts];
    const boxes = perPrompt('BoxDiff', prompts.length, boxOpts.boxes);
    for (const row of boxes) for (const wb of row) checkBox('BoxDiff', wb.box, wb.word);
    super({ ...boxOpts, subjects: boxes.map((r) => r.map((wb) => wb.word)) }, 'BoxDiff');
    this.boxes = boxes.map((r) => r.map((wb) => wb.box));
  }

  protected override objective(map: Tensor, side: number, smoothing?: Tensor): ExciteObjective {
    const { P, L } = this.boxOpts;
    return boxDiffLoss(map, side, this.tokens, this.boxes, { ...(smoothing ? { smoothing } : {}), P, L });
  }
}
