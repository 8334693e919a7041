// Attend-and-Excite (Chefer et al., SIGGRAPH 2023): at the first denoising steps, gradient steps on the latents
// that raise the most neglected subject token's maximum cross-attention, so that every subject of the prompt
// gets a region of the image (the paper's remedy for "catastrophic neglect").
//
// Per step (the reference, yuval-alaluf/Attend-and-Excite): the conditional pass's cross-attention maps at one
// resolution (16 × 16 of SD's 64 × 64 latents; here the latent side / 4 by default) are averaged over layers and
// heads; the text tokens between bos and the last state, × 100, go through a softmax; each subject's map is
// smoothed by a 3 × 3 Gaussian (σ 0.5, reflect padding) and its maximum taken. The loss is
// max over subjects of max(0, 1 − maximum), and z_t ← z_t − α_t · ∇L with α_t = scaleFactor · √s_t, s_t
// linear from scaleRange[0] to scaleRange[1] over the steps. At the refinement steps (0, 10, 20 of 50) the
// update repeats (at most 20 times) until every subject's maximum reaches the threshold (0.05, 0.5, 0.8).
// Steps are altered up to maxIterToAlter (25 of 50). The reference's step indices scale to the run's steps.
// A subject word of several tokens takes the sum of its tokens' maps.

import type { TokenLookup } from '../../attention/tokens.js';
import { Tensor } from '../../tensor/index.js';
import {
  CrossAttentionRecorder,
  descend,
  type GuidanceStep,
  type LatentGuidance,
  type LossAndGradient,
  lossAndGradient,
  meanMapAt,
  type RecordedMap,
  scaledStep,
  type WordRef,
  wordSelection,
  wordTokens,
  wordValid,
} from './score-guidance.js';

/**
 * Options of Attend-and-Excite (Chefer et al. 2023): the prompts and their subject words, the steps altered,
 * the loss thresholds and step sizes.
 */
export interface AttendAndExciteOptions {
  tokenizer: TokenLookup;
  /** The prompts of the generation, one per image. */
  prompts: string | readonly string[];
  /** Subject words (by text or word index): one list for every prompt, or one list per prompt. */
  subjects: readonly WordRef[] | readonly (readonly WordRef[])[];
  /** Steps [0, maxIterToAlter) are altered (default: half the steps, the reference's 25 of 50). */
  maxIterToAlter?: number;
  /** Refinement steps of this run → threshold (default the reference's {0: 0.05, 10: 0.5, 20: 0.8} of 50 steps). */
  thresholds?: ReadonlyMap<number, number>;
  /** α_t = scaleFactor · √s_t (default 20). */
  scaleFactor?: number;
  /** s_t from [0] at the first step to [1] at the last (default [1, 0.5]). */
  scaleRange?: readonly [number, number];
  /** Side of the maps the loss reads (default: the latent side / 4, the reference's 16 of 64). */
  attentionRes?: number;
  /** Gaussian smoothing of each subject's map before its maximum (default true, kernel 3, σ 0.5). */
  smoothAttentions?: boolean;
  sigma?: number;
  kernelSize?: number;
  /** At most this many updates per refinement step (default 20). */
  maxRefinementSteps?: number;
  /**
   * Leave eos and the padding after it out of the softmax over text tokens (the reference's normalize_eot, on
   * for SD 2.1; default false: every state between bos and the last, as for SD 1.x).
   */
  normalizeEot?: boolean;
}

/**
 * The reference's Gaussian smoothing as a matrix (side², side²) on flattened maps: a kernelSize² kernel,
 * the product of exp(−((i − c)/(2σ))²) per axis (the reference's form), normalised to sum 1, with reflect
 * padding at the borders.
 */
export function gaussianSmoothingMatrix(side: number, kernelSize = 3, sigma = 0.5): Tensor {
  const r = (kernelSize - 1) / 2;
  if (!Number.isInteger(r) || r < 0)
    throw new Error(`Gaussian smoothing: kernel size ${kernelSize} must be odd`);
  if (side <= r)
    throw new Error(`Gaussian smoothing: a ${side}×${side} map is too small for reflect padding of ${r}`);
  const g = Array.from({ length: kernelSize }, (_, i) => Math.exp(-(((i - r) / (2 * sigma)) ** 2)));
  const total = g.reduce((a, v) => a + v, 0) ** 2;
  const reflect = (i: number) => (i < 0 ? -i : i >= side ? 2 * (side - 1) - i : i);
  const n = side * side;
  const k = new Float32Array(n * n); // row: output pixel, column: input pixel
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      for (let i = 0; i < kernelSize; i++) {
        for (let j = 0; j < kernelSize; j++) {
          const at = (y * side + x) * n + reflect(y + i - r) * side + reflect(x + j - r);
          k[at] = (k[at] as number) + ((g[i] as number) * (g[j] as number)) / total;
        }
      }
    }
  }
  return new Tensor(k, [n, n]);
}

/** Per-subject maxima (B, W) and the loss per row (B): max over subjects of max(0, 1 − maximum). */
export interface ExciteLoss {
  maxima: Tensor;
  loss: Tensor;
}

/**
 * Attend-and-Excite's loss on maps (B, side², Tk) averaged over layers and heads; `tokens[b]` are row b's
 * subjects' text positions. `smoothing` is gaussianSmoothingMatrix(side) or undefined for none. `eos[b]`, when
 * given, is row b's eos position: it and the padding after it leave the softmax (the reference's normalize_eot).
 */
export function attendAndExciteLoss(
  map: Tensor,
  tokens: readonly (readonly number[][])[],
  smoothing?: Tensor,
  eos?: readonly number[],
): ExciteLoss {
  const [b, tk] = [map.shape[0] as number, map.shape[2] as number];
  // the text tokens between bos and the last state (or eos), sharpened × 100, normalised over tokens
  let scores = map.slice(2, 1, tk - 1).mul(100); // (B, Tq, Tk − 2)
  if (eos) {
    const off = new Float32Array(b * (tk - 2));
    for (let r = 0; r < b; r++)
      for (let t = (eos[r] as number) - 1; t < tk - 2; t++) off[r * (tk - 2) + t] = -1e9;
    scores = scores.add(new Tensor(off, [b, 1, tk - 2]));
  }
  const text = scores.softmax(-1);
  const subjects = text.matmul(wordSelection(tokens, tk - 2, -1)); // (B, Tq, W)
  let perSubject = subjects.transpose(1, 2); // (B, W, Tq)
  if (smoothing) perSubject = perSubject.matmul(smoothing.transpose(0, 1));
  const maxima = perSubject.max({ axes: [2] }); // (B, W)
  const loss = maxima
    .neg()
    .add(1)
    .relu()
    .mul(wordValid(tokens))
    .max({ axes: [1] }); // (B)
  return { maxima, loss };
}

/** Word indices of `prompt` whose word is one of `nouns` (automatic subjects, e.g. the Shapes grammar's shapes). */
export function nounSubjects(tokenizer: TokenLookup, prompt: string, nouns: readonly string[]): number[] {
  const set = new Set(nouns.map((n) => n.toLowerCase()));
  const found = tokenizer
    .wordTokens(prompt)
    .map((w, i) => (set.has(w.word.toLowerCase()) ? i : -1))
    .filter((i) => i >= 0);
  if (found.length === 0) {
    throw new Error(
      `Attend-and-Excite: no subject noun (${nouns.join(', ')}) in "${prompt}"; name the subjects instead`,
    );
  }
  return found;
}

/** Per-row lists from one shared list or one list per prompt. */
export function perPrompt<T>(
  method: string,
  n: number,
  given: readonly T[] | readonly (readonly T[])[],
): T[][] {
  const nested = given.length > 0 && Array.isArray(given[0]);
  if (!nested) return Array.from({ length: n }, () => [...(given as readonly T[])]);
  if (given.length !== n)
    throw new Error(`${method}: ${given.length} lists for ${n} prompts (give one per prompt)`);
  return (given as readonly (readonly T[])[]).map((r) => [...r]);
}

/** The two losses per row (B) of the excite schedule: `refine` is held to the thresholds, `update` steps the latents. */
export interface ExciteObjective {
  refine: Tensor;
  update: Tensor;
}

/** Attend-and-Excite as a score-driven guidance (`generate({ guidance: [new AttendAndExcite(…)] })`). */
export class AttendAndExcite implements LatentGuidance {
  readonly name: string = 'AttendAndExcite';
  /** Each row's loss after the last altered step's update was computed (for reports). */
  losses: { step: number; losses: number[] }[] = [];
  protected readonly tokens: number[][][];
  private readonly eos?: number[];
  private readonly recorder = new CrossAttentionRecorder((call) => call.size?.[0] === this.side);
  private side = 0;

  constructor(
    private readonly opts: AttendAndExciteOptions,
    protected readonly method = 'Attend-and-Excite',
  ) {
    const prompts = typeof opts.prompts === 'string' ? [opts.prompts] : [...opts.prompts];
    const subjects = perPrompt(method, prompts.length, opts.subjects);
    subjects.forEach((s, r) => {
      if (s.length === 0) throw new Error(`${method}: prompt ${r} ("${prompts[r]}") has no subject`);
    });
    this.tokens = wordTokens(method, opts.tokenizer, prompts, subjects);
    // eos's position: the prompt's unpadded length − 1
    this.eos = opts.normalizeEot
      ? prompts.map((p) => (opts.tokenizer.call(p, { padding: false }).ids[0] as number[]).length - 1)
      : undefined;
    const check = (name: string, v: number | undefined, ok: (v: number) => boolean) => {
      if (v !== undefined && !ok(v)) throw new Error(`${method}: ${name} ${v} is out of range`);
    };
    check('scaleFactor', opts.scaleFactor, (v) => Number.isFinite(v) && v >= 0);
    check('attentionRes', opts.attentionRes, (v) => Number.isInteger(v) && v >= 2);
    check('maxRefinementSteps', opts.maxRefinementSteps, (v) => Number.isInteger(v) && v >= 0);
    check('maxIterToAlter', opts.maxIterToAlter, (v) => Number.isInteger(v) && v >= 0);
  }

  /** Whether `objective` gives a separate update loss (else the refinement's evaluation is reused). */
  protected readonly separateUpdate: boolean = false;

  /** Attend-and-Excite's loss for both (BoxDiff overrides it); `map` (B, side², Tk). */
  protected objective(map: Tensor, _side: number, smoothing?: Tensor): ExciteObjective {
    const { loss } = attendAndExciteLoss(map, this.tokens, smoothing, this.eos);
    return { refine: loss, update: loss };
  }

  guide(step: GuidanceStep): Tensor | undefined {
    const { step: i, numSteps } = step;
    const maxIter = this.opts.maxIterToAlter ?? scaledStep(25, numSteps);
    const thresholds =
      this.opts.thresholds ??
      new Map([
        [scaledStep(0, numSteps), 0.05],
        [scaledStep(10, numSteps), 0.5],
        [scaledStep(20, numSteps), 0.8],
      ]);
    const threshold = thresholds.get(i);
    if (i >= maxIter && threshold === undefined) return undefined;
    if ((step.latents.shape[0] as number) !== this.tokens.length) {
      throw new Error(
        `${this.method}: made for ${this.tokens.length} prompts, the generation has ${step.latents.shape[0]}`,
      );
    }
    this.side =
      this.opts.attentionRes ?? Math.max(2, Math.round(((step.latents.shape[2] as number) * 16) / 64));
    const smoothing =
      this.opts.smoothAttentions === false
        ? undefined
        : gaussianSmoothingMatrix(this.side, this.opts.kernelSize ?? 3, this.opts.sigma ?? 0.5);
    const lossOf = (which: keyof ExciteObjective) => (maps: readonly RecordedMap[]) =>
      this.objective(meanMapAt(maps, this.side, this.method), this.side, smoothing)[which];
    const [s0, s1] = this.opts.scaleRange ?? [1, 0.5];
    const s = numSteps > 1 ? s0 + ((s1 - s0) * i) / (numSteps - 1) : s0;
    const alpha = (this.opts.scaleFactor ?? 20) * Math.sqrt(s);

    let x = step.latents;
    let at: LossAndGradient | undefined;
    if (threshold !== undefined) {
      at = lossAndGradient(step, x, this.recorder, lossOf('refine'));
      const target = Math.max(0, 1 - threshold);
      if (at.losses.some((l) => l > target)) {
        // iterative refinement: update the rows above the target until each subject's maximum reaches it
        let losses = at.losses;
        for (let it = 0; losses.some((l) => l > target) && it < (this.opts.maxRefinementSteps ?? 20); it++) {
          if (it > 0) at = lossAndGradient(step, x, this.recorder, lossOf('refine'));
          losses = at.losses;
          x = descend(
            x,
            at.grad,
            alpha,
            losses.map((l) => l > target),
          );
        }
        at = undefined; // the latents moved: the update's loss is taken again
      }
    }
    if (i < maxIter) {
      if (!at || this.separateUpdate) at = lossAndGradient(step, x, this.recorder, lossOf('update'));
      x = descend(x, at.grad, alpha);
    }
    if (at) this.losses.push({ step: i, losses: at.losses });
    return x;
  }
}
