// Token bookkeeping of Prompt-to-Prompt (Hertz et al. 2022; google/prompt-to-prompt `seq_aligner.py`, `ptp_utils.py`):
// which source token feeds which target token (word swap, refinement), when cross-attention is replaced per
// token (`crossReplaceSteps`), and per-token reweighting (the equalizer). Positions count bos as 0.

import type { TokenLookup } from '../../attention/tokens.js';

/** Bounds as the reference takes them: a fraction f means [0, f); a pair is [start, end) fractions of the run. */
export type StepBounds = number | readonly [number, number];

/** A global fraction, or per word of the target prompts, with `default_` for the rest (reference's dict). */
export type CrossReplaceSteps = StepBounds | Readonly<Record<string, StepBounds>>;

/** [start, end] of step bounds: a number is [0, number]. */
export function boundsOf(b: StepBounds): [number, number] {
  return typeof b === 'number' ? [0, b] : [b[0], b[1]];
}

/**
 * Refuses step bounds that are not fractions of the steps: a number in [0, 1], or [start, end] with
 * 0 ≤ start ≤ end ≤ 1 (per word too, for crossReplaceSteps). `name` is the option, shown in the error.
 */
export function checkStepBounds(b: CrossReplaceSteps, name: string): void {
  const entries =
    typeof b === 'number' || Array.isArray(b)
      ? [['', b as StepBounds] as const]
      : Object.entries(b as Record<string, StepBounds>);
  for (const [word, bounds] of entries) {
    const ok = (() => {
      if (typeof bounds !== 'number' && !(Array.isArray(bounds) && bounds.length === 2)) return false;
      const [s, e] = boundsOf(bounds);
      return Number.isFinite(s) && Number.isFinite(e) && 0 <= s && s <= e && e <= 1;
    })();
    if (!ok) {
      throw new Error(
        `${name}${word ? ` (word "${word}")` : ''} must be a fraction of the steps in [0, 1] or [start, end] ` +
          `with 0 ≤ start ≤ end ≤ 1, got ${typeof bounds === 'number' ? bounds : JSON.stringify(bounds)}`,
      );
    }
  }
}

/**
 * Word swap (`get_replacement_mapper_`): an (n × n) matrix M, row-major, with M[s][t] the weight of source
 * position s in target position t. Prompts need the same number of words; a swapped word whose token count
 * differs spreads its source tokens evenly over the target tokens. Unlike the reference, positions after the last
 * swapped word keep their offset (source i → target j); the reference maps j → j there, which misaligns when a
 * swapped word changes the token count (identical otherwise).
 */
export function replacementMapper(
  tokenizer: TokenLookup,
  source: string,
  target: string,
  n?: number,
): Float32Array {
  const maxLen = n ?? tokenizer.modelMaxLength;
  const wx = tokenizer.wordTokens(source, { maxLength: maxLen });
  const wy = tokenizer.wordTokens(target, { maxLength: maxLen });
  if (wx.length !== wy.length) {
    throw new Error(
      `attention replacement edit can only be applied on prompts with the same number of words, but the source ` +
        `"${source}" has ${wx.length} words and the target "${target}" has ${wy.length}; use AttentionRefine ` +
        '(method refine) for added words',
    );
  }
  const swaps = wx
    .map((w, k) => ({ src: w.indices, tgt: wy[k]!.indices, differ: w.word !== wy[k]!.word }))
    .filter((s) => s.differ && s.src.length > 0 && s.tgt.length > 0);
  const m = new Float32Array(maxLen * maxLen);
  let i = 0;
  let j = 0;
  let cur = 0;
  while (i < maxLen && j < maxLen) {
    const swap = swaps[cur];
    if (swap && swap.src[0] === i) {
      if (swap.src.length === swap.tgt.length) {
        swap.src.forEach((s, k) => {
          m[s * maxLen + swap.tgt[k]!] = 1;
        });
      } else for (const s of swap.src) for (const t of swap.tgt) m[s * maxLen + t] = 1 / swap.tgt.length;
      cur += 1;
      i += swap.src.length;
      j += swap.tgt.length;
    } else {
      m[i * maxLen + j] = 1;
      i += 1;
      j += 1;
    }
  }
  return m;
}

/**
 * Needleman–Wunsch global alignment of two token sequences with the reference's scores (gap 0, match 1,
 * mismatch −1) and tie-breaking (left, then up, then diagonal). Returns, for each y position, its x position or −1.
 */
export function alignTokens(x: readonly number[], y: readonly number[]): number[] {
  const nx = x.length;
  const ny = y.length;
  const score = Array.from({ length: nx + 1 }, () => new Int32Array(ny + 1));
  const trace = Array.from({ length: nx + 1 }, () => new Uint8Array(ny + 1));
  for (let jj = 1; jj <= ny; jj++) trace[0]![jj] = 1;
  for (let ii = 1; ii <= nx; ii++) trace[ii]![0] = 2;
  for (let ii = 1; ii <= nx; ii++) {
    for (let jj = 1; jj <= ny; jj++) {
      const left = score[ii]![jj - 1]!;
      const up = score[ii - 1]![jj]!;
      const diag = score[ii - 1]![jj - 1]! + (x[ii - 1] === y[jj - 1] ? 1 : -1);
      const best = Math.max(left, up, diag);
      score[ii]![jj] = best;
      trace[ii]![jj] = best === left ? 1 : best === up ? 2 : 3;
    }
  }
  const yToX: number[] = [];
  let i = nx;
  let j = ny;
  while (i > 0 || j > 0) {
    const t = trace[i]![j];
    if (t === 3) {
      i -= 1;
      j -= 1;
      yToX.push(i); // y[j] aligned with x[i]
    } else if (t === 1) {
      j -= 1;
      yToX.push(-1); // y[j] inserted
    } else i -= 1; // x[i − 1] deleted
  }
  return yToX.reverse();
}

/**
 * Refinement (`get_mapper`): for each target position, the source position whose attention it takes
 * (`mapper`), and `alphas` = 0 where the target token has no counterpart (it keeps its own attention), 1 elsewhere.
 * Positions past the target's eos map to themselves.
 */
export function refinementMapper(
  tokenizer: TokenLookup,
  source: string,
  target: string,
  n?: number,
): { mapper: Int32Array; alphas: Float32Array } {
  const maxLen = n ?? tokenizer.modelMaxLength;
  const seq = (p: string) =>
    tokenizer.call(p, { padding: false, maxLength: maxLen, onWarning: () => {} }).ids[0]!;
  const x = seq(source);
  const y = seq(target);
  const base = alignTokens(x, y);
  const mapper = new Int32Array(maxLen);
  const alphas = new Float32Array(maxLen).fill(1);
  for (let t = 0; t < maxLen; t++) {
    if (t < base.length) {
      mapper[t] = base[t]!;
      alphas[t] = base[t] === -1 ? 0 : 1;
    } else mapper[t] = t;
  }
  return { mapper, alphas };
}

/**
 * `get_time_words_attention_alpha` at one step: per target prompt, a weight per token position that is 1 while
 * the step lies in [⌊start·(numSteps+1)⌋, ⌊end·(numSteps+1)⌋) of the token's bounds, else 0.
 */
export function crossReplaceAlpha(
  tokenizer: TokenLookup,
  prompts: readonly string[],
  crossReplaceSteps: CrossReplaceSteps,
  step: number,
  numSteps: number,
  n?: number,
): Float32Array[] {
  const maxLen = n ?? tokenizer.modelMaxLength;
  const perWord: Record<string, StepBounds> =
    typeof crossReplaceSteps === 'number' || Array.isArray(crossReplaceSteps)
      ? { default_: crossReplaceSteps as StepBounds }
      : { ...(crossReplaceSteps as Record<string, StepBounds>) };
  perWord['default_'] ??= [0, 1];
  const inside = (b: StepBounds) => {
    const [s, e] = boundsOf(b);
    return step >= Math.floor(s * (numSteps + 1)) && step < Math.floor(e * (numSteps + 1)) ? 1 : 0;
  };
  return prompts.slice(1).map((p) => {
    const alpha = new Float32Array(maxLen).fill(inside(perWord['default_']!));
    for (const [word, b] of Object.entries(perWord)) {
      if (word === 'default_') continue;
      const idx = tokenIndicesOrNone(tokenizer, p, word, maxLen);
      for (const t of idx) alpha[t] = inside(b);
    }
    return alpha;
  });
}

/** `get_equalizer`: 1 everywhere except the given words' token positions in `prompt`, which get their value. */
export function equalizer(
  tokenizer: TokenLookup,
  prompt: string,
  weights: Readonly<Record<string, number>>,
  n?: number,
): Float32Array {
  const maxLen = n ?? tokenizer.modelMaxLength;
  const eq = new Float32Array(maxLen).fill(1);
  for (const [word, value] of Object.entries(weights)) {
    if (!Number.isFinite(value))
      throw new Error(`equalizer: the weight of "${word}" must be a number, got ${value}`);
    for (const t of tokenizer.keptTokenIndices(prompt, word, { maxLength: maxLen })) eq[t] = value;
  }
  return eq;
}

/** The word's token positions, or none when the prompt lacks it (the reference skips such prompts). */
export function tokenIndicesOrNone(
  tokenizer: TokenLookup,
  prompt: string,
  word: string,
  n: number,
): number[] {
  try {
    return tokenizer.tokenIndices(prompt, word, { maxLength: n });
  } catch {
    return [];
  }
}
