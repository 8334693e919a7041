// The shared part of Prompt-to-Prompt's editors (Hertz et al. 2022; the reference's `AttentionControlEdit`):
// in each guidance branch (by default only the conditional rows, as the reference), the target prompts' maps
// are rebuilt from the source prompt's (prompt 0). Cross-attention: `replaceCrossAttention` blended by the
// per-token time weights of `crossReplaceSteps`; self-attention: the source's map itself, during
// `selfReplaceSteps`, on layers with at most `selfReplaceMaxTokens` queries (reference: 16²).
// The rows come from the batch roles of each call, never from the position in the batch.

import type { AttentionCall } from '../../attention/call.js';
import type { Controller } from '../../attention/hooks.js';
import type { TokenLookup } from '../../attention/tokens.js';
import { concat, Tensor } from '../../tensor/index.js';
import {
  boundsOf,
  type CrossReplaceSteps,
  checkStepBounds,
  crossReplaceAlpha,
  type StepBounds,
} from './token-alignment.js';

/**
 * Options of Prompt-to-Prompt's attention edits (Hertz et al. 2022): prompts, tokenizer and the steps their
 * cross- and self-attention maps are replaced in.
 */
export interface AttentionEditOptions {
  tokenizer: TokenLookup;
  /** The source prompt first, then one or more targets: the prompts of the batch, in order. */
  prompts: readonly string[];
  /** Fraction of steps (or [start, end), or per word with `default_`) during which cross-attention is replaced. */
  crossReplaceSteps: CrossReplaceSteps;
  /** Fraction of steps (or [start, end)) during which the targets' self-attention maps are the source's. */
  selfReplaceSteps: StepBounds;
  /** Self-attention maps with more query tokens are left alone (reference: 16² = 256). */
  selfReplaceMaxTokens?: number;
  /** Guidance branches edited (default `['cond']`, as the reference; the unconditional rows are left alone). */
  guidance?: readonly ('cond' | 'uncond')[];
}

export abstract class AttentionEdit implements Controller {
  abstract readonly name: string;
  readonly tokenizer: TokenLookup;
  readonly prompts: readonly string[];
  readonly crossReplaceSteps: CrossReplaceSteps;
  readonly selfReplaceSteps: StepBounds;
  readonly selfReplaceMaxTokens: number;
  readonly guidance: readonly ('cond' | 'uncond')[];
  /** Token length of the text states (the tokenizer's model length). */
  readonly maxLength: number;
  private alphaCache?: { step: number; numSteps: number; alphas: Tensor[]; any: boolean };

  constructor(opts: AttentionEditOptions) {
    if (opts.prompts.length < 2) {
      throw new Error(`${new.target.name}: give the source prompt and at least one target prompt`);
    }
    checkStepBounds(opts.crossReplaceSteps, `${new.target.name}: crossReplaceSteps`);
    checkStepBounds(opts.selfReplaceSteps, `${new.target.name}: selfReplaceSteps`);
    this.tokenizer = opts.tokenizer;
    this.prompts = opts.prompts;
    this.crossReplaceSteps = opts.crossReplaceSteps;
    this.selfReplaceSteps = opts.selfReplaceSteps;
    this.selfReplaceMaxTokens = opts.selfReplaceMaxTokens ?? 16 ** 2;
    this.guidance = opts.guidance ?? ['cond'];
    this.maxLength = opts.tokenizer.modelMaxLength;
  }

  /**
   * The new cross-attention maps of target `k` (0 = the first target) from the source's: `base` and `target`
   * are (1, heads, Tq, Tk) rows of the source and of that target.
   */
  abstract replaceCrossAttention(base: Tensor, target: Tensor, k: number): Tensor;

  appliesTo(call: AttentionCall): boolean {
    if (call.place !== 'down' && call.place !== 'mid' && call.place !== 'up') return false;
    if (call.kind === 'cross') return this.timeAlphas(call).any;
    if (call.kind === 'self')
      return call.queryTokens <= this.selfReplaceMaxTokens && this.selfReplaceActive(call);
    return false;
  }

  /** `num_self_replace`: steps [⌊numSteps·start⌋, ⌊numSteps·end⌋). */
  selfReplaceActive(call: { step: number; numSteps: number }): boolean {
    const [s, e] = boundsOf(this.selfReplaceSteps);
    return call.step >= Math.floor(call.numSteps * s) && call.step < Math.floor(call.numSteps * e);
  }

  map(call: AttentionCall, p: Tensor): Tensor {
    if (call.kind === 'cross' && call.keyTokens !== this.maxLength) {
      throw new Error(
        `${this.name}: layer ${call.path} attends to ${call.keyTokens} text tokens but the tokenizer's length is ` +
          `${this.maxLength}; build the editor with the model's tokenizer`,
      );
    }
    const rows = p.split(p.shape[0] as number, 0); // (1, H, Tq, Tk) each
    for (const g of this.guidance) {
      const { source, targets } = this.rowsOf(call, g);
      if (source === undefined) continue;
      const base = rows[source]!;
      targets.forEach((r, k) => {
        if (call.kind === 'self') rows[r] = base;
        else {
          const alpha = this.timeAlphas(call).alphas[k]!; // (Tk,)
          const edited = this.replaceCrossAttention(base, rows[r]!, k);
          rows[r] = edited.mul(alpha).add(rows[r]!.mul(alpha.neg().add(1)));
        }
      });
    }
    return concat(rows, 0);
  }

  /** The source row and the target rows (by prompt index 1, 2, …) of one guidance branch. */
  private rowsOf(call: AttentionCall, g: 'cond' | 'uncond'): { source?: number; targets: number[] } {
    const { guidance, prompt } = call.batch;
    if (guidance.length === 0)
      throw new Error(`${this.name}: layer ${call.path} was called without batch roles`);
    if (!guidance.includes(g)) return { targets: [] };
    const rowOf = (i: number) => guidance.findIndex((x, r) => x === g && prompt[r] === i);
    const source = rowOf(0);
    const targets = this.prompts.slice(1).map((_, k) => rowOf(k + 1));
    if (source < 0 || targets.some((r) => r < 0)) {
      throw new Error(
        `${this.name}: the batch must hold the source and every target prompt (${this.prompts.length} prompts) in ` +
          `each guidance branch; generate with prompt: [source, …targets] (editPrompt does this)`,
      );
    }
    return { source, targets };
  }

  private timeAlphas(call: AttentionCall): { alphas: Tensor[]; any: boolean } {
    const c = this.alphaCache;
    if (c && c.step === call.step && c.numSteps === call.numSteps) return c;
    const a = crossReplaceAlpha(
      this.tokenizer,
      this.prompts,
      this.crossReplaceSteps,
      call.step,
      call.numSteps,
      this.maxLength,
    );
    const next = {
      step: call.step,
      numSteps: call.numSteps,
      alphas: a.map((v) => new Tensor(v, [v.length])),
      any: a.some((v) => v.some((x) => x !== 0)),
    };
    this.alphaCache = next;
    return next;
  }
}
