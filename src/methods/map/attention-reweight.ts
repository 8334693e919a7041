// Prompt-to-Prompt attention re-weighting (Hertz et al. 2022, "Prompt-to-Prompt Image Editing with Cross Attention Control").
//
// The target's cross-attention maps are the source's with chosen token columns scaled by the equalizer (no
// renormalisation, as the reference). With `controller`, the source's maps go through that editor first
// (e.g. refine, then reweight the added word), as the reference's `prev_controller`.

import { Tensor } from '../../tensor/index.js';
import { AttentionEdit, type AttentionEditOptions } from './attention-edit.js';
import { equalizer } from './token-alignment.js';

/**
 * Options of Prompt-to-Prompt's reweighting: the prompts, the weights of words, and an edit to apply it on
 * top of.
 */
export interface AttentionReweightOptions extends AttentionEditOptions {
  /** Word (or phrase) → weight, looked up in each target prompt; other tokens keep weight 1. */
  equalizer: Readonly<Record<string, number>>;
  /** An editor applied to the source's maps before reweighting. */
  controller?: AttentionEdit;
}

export class AttentionReweight extends AttentionEdit {
  readonly name: string = 'AttentionReweight';
  /** Per target: (Tk,) weight of each token position. */
  readonly equalizers: readonly Tensor[];
  readonly prevController?: AttentionEdit;

  constructor(opts: AttentionReweightOptions) {
    super(opts);
    const n = this.maxLength;
    this.equalizers = this.prompts
      .slice(1)
      .map((p) => new Tensor(equalizer(this.tokenizer, p, opts.equalizer, n), [n]));
    this.prevController = opts.controller;
  }

  replaceCrossAttention(base: Tensor, target: Tensor, k: number): Tensor {
    const b = this.prevController ? this.prevController.replaceCrossAttention(base, target, k) : base;
    return b.mul(this.equalizers[k]!);
  }
}
