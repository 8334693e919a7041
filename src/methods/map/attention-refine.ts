// Prompt-to-Prompt refinement (Hertz et al. 2022, "Prompt-to-Prompt Image Editing with Cross Attention Control").
//
// For added words: each target token aligned with a source token (global alignment of the token sequences)
// takes that token's map; tokens new in the target (alpha 0) keep their own. Then blended by `crossReplaceSteps`.

import { indexSelect, Tensor } from '../../tensor/index.js';
import { AttentionEdit, type AttentionEditOptions } from './attention-edit.js';
import { refinementMapper } from './token-alignment.js';

export class AttentionRefine extends AttentionEdit {
  readonly name: string = 'AttentionRefine';
  /** Per target: for each target position, the source position it takes (−1 where none). */
  readonly mappers: readonly Int32Array[];
  /** Per target: (Tk,) 1 where aligned, 0 for tokens new in the target. */
  readonly alphas: readonly Tensor[];
  private readonly gatherIndices: readonly number[][];

  constructor(opts: AttentionEditOptions) {
    super(opts);
    const n = this.maxLength;
    const maps = this.prompts.slice(1).map((p) => refinementMapper(this.tokenizer, this.prompts[0]!, p, n));
    this.mappers = maps.map((m) => m.mapper);
    this.alphas = maps.map((m) => new Tensor(m.alphas, [n]));
    // −1 reads the last position, as the reference's negative index; its alpha is 0
    this.gatherIndices = maps.map((m) => [...m.mapper].map((i) => (i < 0 ? n - 1 : i)));
  }

  replaceCrossAttention(base: Tensor, target: Tensor, k: number): Tensor {
    const a = this.alphas[k]!;
    const mapped = indexSelect(base, 3, this.gatherIndices[k]!); // (1, H, Tq, Tk)
    return mapped.mul(a).add(target.mul(a.neg().add(1)));
  }
}
