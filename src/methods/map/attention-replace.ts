// Prompt-to-Prompt word swap (Hertz et al. 2022, "Prompt-to-Prompt Image Editing with Cross Attention Control").
//
// The target's cross-attention maps are the source's, carried through the token mapper:
// M*_t[p, n] = Σ_w M_s[p, w] · mapper[w, n] (the reference's `einsum("hpw,bwn->bhpn")`), blended per token with
// the target's own maps outside `crossReplaceSteps`; self-attention as in `AttentionEdit`.

import { Tensor } from '../../tensor/index.js';
import { AttentionEdit, type AttentionEditOptions } from './attention-edit.js';
import { replacementMapper } from './token-alignment.js';

export class AttentionReplace extends AttentionEdit {
  readonly name: string = 'AttentionReplace';
  /** One (Tk, Tk) mapper per target: source position → target position. */
  readonly mappers: readonly Tensor[];

  constructor(opts: AttentionEditOptions) {
    super(opts);
    const n = this.maxLength;
    this.mappers = this.prompts
      .slice(1)
      .map((p) => new Tensor(replacementMapper(this.tokenizer, this.prompts[0]!, p, n), [n, n]));
  }

  replaceCrossAttention(base: Tensor, _target: Tensor, k: number): Tensor {
    return base.matmul(this.mappers[k]!); // (1, H, Tq, Tk) · (Tk, Tk)
  }
}
