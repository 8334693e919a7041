// Prompt-to-Prompt's local blending (Hertz et al. 2022, "Prompt-to-Prompt Image Editing with Cross Attention Control").
//
// Restricts an edit to where the chosen words attend: after each step from `startBlend` on, the words'
// cross-attention (summed over tokens, averaged over the down and up blocks' layers and heads of one resolution,
// as the reference's down_cross[2:4] + up_cross[:3], and over the steps so far) is max-pooled 3×3, resized (nearest) to the latents, divided by its maximum and thresholded at th[0]; the
// union of the source's and each target's mask keeps the target's latents, elsewhere they are the source's:
// x_t = x_src + mask · (x_t − x_src). `substructWords` remove their own region (not pooled, threshold th[1]).
// Place it after the editor in the controller list: like the reference's store, it then sees the edited maps.

import type { AttentionCall } from '../../attention/call.js';
import type { Controller, StepState } from '../../attention/hooks.js';
import type { TokenLookup } from '../../attention/tokens.js';
import { formatShape, Tensor } from '../../tensor/index.js';
import { selectRows, takeRows } from '../map/attention-store.js';
import { tokenIndicesOrNone } from '../map/token-alignment.js';
import { maxPool3 } from './attention-mask.js';

/** The reference's thresholds for the words' mask and the substracted mask. */
export const LOCAL_BLEND_TH: readonly [number, number] = [0.3, 0.3];

/**
 * Options of LocalBlend (Prompt-to-Prompt): the prompts, the words whose region may change, the steps and
 * thresholds.
 */
export interface LocalBlendOptions {
  tokenizer: TokenLookup;
  /** The prompts of the batch, source first. */
  prompts: readonly string[];
  /** Per prompt, the word(s) whose region may change; a single list applies to every prompt containing them. */
  words: readonly (string | readonly string[])[];
  /** Per prompt, words whose region must not change. */
  substructWords?: readonly (string | readonly string[])[];
  /** Fraction of the steps before blending starts (reference 0.2). */
  startBlend?: number;
  /** Thresholds for the words' mask and the substracted mask (reference (0.3, 0.3)). */
  th?: readonly [number, number];
  /**
   * Side of the attention maps used. Default: one level above the smallest stored side — the reference's 16 × 16
   * on SD's 512-pixel images (maps of 32, 16 and 8 are stored; the 8 × 8 middle block's are too coarse), 8 × 8
   * on the Shapes model (16, 8, 4); the only side when there is one.
   */
  res?: number;
  /**
   * Also average the mid block's maps of side `res` (attnkit before issue 26). Default false: the reference reads
   * the down and up blocks' maps only; the mid block's side still counts in choosing the default `res`.
   */
  midBlock?: boolean;
}

export class LocalBlend implements Controller {
  readonly name: string = 'LocalBlend';
  readonly startBlend: number;
  readonly th: readonly [number, number];
  /** (prompts, Tk) 0/1 weights of the blend words' tokens, and of the substracted words'. */
  readonly alphaLayers: Float32Array[];
  readonly substructLayers?: Float32Array[];
  /** The last mask applied, (prompts, 1, h, w) 0/1, for inspection. */
  lastMask?: Tensor;
  private readonly res?: number;
  private readonly midBlock: boolean;
  private sums = new Map<string, { size: number; sum: Tensor }>();
  /** Sides of every cross-attention map seen, the mid block's included (they choose the default `res`). */
  private sides = new Set<number>();

  constructor(opts: LocalBlendOptions) {
    const n = opts.tokenizer.modelMaxLength;
    const layers = (words: LocalBlendOptions['words']) =>
      opts.prompts.map((p, i) => {
        const a = new Float32Array(n);
        const list = words.length === opts.prompts.length ? words[i]! : words.flat();
        for (const w of typeof list === 'string' ? [list] : list) {
          for (const t of tokenIndicesOrNone(opts.tokenizer, p, w, n)) a[t] = 1;
        }
        return a;
      });
    this.alphaLayers = layers(opts.words);
    if (this.alphaLayers.every((a) => a.every((v) => v === 0))) {
      throw new Error(
        `LocalBlend: none of the words ${JSON.stringify(opts.words)} occurs in the prompts within their ` +
          `first ${n} tokens (the tokenizer cuts longer prompts); name words of the prompts`,
      );
    }
    this.substructLayers = opts.substructWords ? layers(opts.substructWords) : undefined;
    this.startBlend = opts.startBlend ?? 0.2;
    if (!(this.startBlend >= 0 && this.startBlend <= 1))
      throw new Error(`LocalBlend: startBlend is a fraction of the steps in [0, 1], got ${this.startBlend}`);
    this.th = opts.th ?? LOCAL_BLEND_TH;
    if (!this.th.every((t) => t >= 0 && t <= 1))
      throw new Error(
        `LocalBlend: thresholds apply to maps normalised to [0, 1]; got th ${JSON.stringify(this.th)}`,
      );
    this.res = opts.res;
    this.midBlock = opts.midBlock ?? false;
  }

  appliesTo(call: AttentionCall): boolean {
    const unet = call.place === 'down' || call.place === 'mid' || call.place === 'up';
    return unet && call.kind === 'cross' && call.size !== undefined && call.queryTokens <= 32 ** 2;
  }

  map(call: AttentionCall, p: Tensor): Tensor {
    const rows = selectRows(call, ['cond']);
    if (rows.length !== this.alphaLayers.length || rows.some((r, i) => call.batch.prompt[r] !== i)) {
      throw new Error(
        `LocalBlend: the batch must hold one conditional row per prompt (${this.alphaLayers.length}), in prompt order`,
      );
    }
    // Σ_tokens α·map per row: (rows, H, Tq, Tk) · (rows, 1, Tk, 1) → (rows, H, Tq, 1) → mean over heads
    const all = [this.alphaLayers, ...(this.substructLayers ? [this.substructLayers] : [])];
    const kept = takeRows(p, rows);
    const tk = p.shape[3] as number;
    const w = new Tensor(Float32Array.from(all.flatMap((l) => l.flatMap((a) => [...a]))), [
      all.length,
      rows.length,
      1,
      tk,
      1,
    ]);
    const size = call.size![0];
    this.sides.add(size);
    if (call.place === 'mid' && !this.midBlock) return p;
    const m = kept.unsqueeze(0).matmul(w).mean({ axes: 2 }); // (sets, rows, Tq, 1)
    const e = this.sums.get(call.path);
    this.sums.set(call.path, { size, sum: e ? e.sum.add(m) : m });
    return p;
  }

  afterStep(state: StepState): Tensor | undefined {
    if (state.step + 1 <= Math.floor(this.startBlend * state.numSteps)) return undefined;
    const [b, , h, w] = state.latents.shape as [number, number, number, number];
    if (b !== this.alphaLayers.length) {
      throw new Error(
        `LocalBlend: latents ${formatShape(state.latents.shape)} hold ${b} rows for ${this.alphaLayers.length} prompts`,
      );
    }
    const sizes = [...this.sides];
    if (sizes.length === 0) {
      throw new Error(
        'LocalBlend: it saw no cross-attention maps before blending; it must run on a UNet with cross-attention',
      );
    }
    const res = this.res ?? defaultSide(sizes);
    const chosen = [...this.sums.values()].filter((e) => e.size === res);
    if (chosen.length === 0) {
      const mid = this.midBlock
        ? ''
        : '; the mid block is left out as in prompt-to-prompt (midBlock: true adds it)';
      const have = [...new Set([...this.sums.values()].map((e) => e.size))];
      throw new Error(
        `LocalBlend: no down or up block cross-attention maps of size ${res}² (have ${have.join(', ') || 'none'}${mid})`,
      );
    }
    const mean = chosen
      .map((e) => e.sum)
      .reduce((a, c) => a.add(c))
      .toArray();
    const plane = res * res;
    const maskOf = (set: number, pool: boolean, th: number) => {
      const rows = Array.from({ length: b }, (_, r) => {
        const m = Float32Array.from(mean.slice((set * b + r) * plane, (set * b + r + 1) * plane));
        const big = resizeNearest(pool ? maxPool3(m, res, res) : m, res, h, w);
        const top = Math.max(...big);
        return big.map((v) => (v / top > th ? 1 : 0));
      });
      return rows.map((m) => m.map((v, i) => (v || rows[0]![i] ? 1 : 0))); // mask[:1] + mask
    };
    let mask = maskOf(0, true, this.th[0]);
    if (this.substructLayers) {
      const sub = maskOf(1, false, this.th[1]);
      mask = mask.map((m, r) => m.map((v, i) => v * (1 - sub[r]![i]!)));
    }
    this.lastMask = new Tensor(Float32Array.from(mask.flatMap((m) => [...m])), [b, 1, h, w]);
    return LocalBlend.blend(state.latents, this.lastMask);
  }

  /** x_t = x_t[:1] + mask · (x_t − x_t[:1]) with latents (B, C, h, w) and mask (B, 1, h, w). */
  static blend(latents: Tensor, mask: Tensor): Tensor {
    const src = latents.slice(0, 0, 1);
    return src.add(mask.mul(latents.sub(src)));
  }

  /** Forgets the summed maps and the last mask (for a new generation). */
  reset(): void {
    this.sums = new Map();
    this.sides = new Set();
    this.lastMask = undefined;
  }
}

/** The second-smallest stored side (the only one when there is one). */
export function defaultSide(sizes: readonly number[]): number {
  const sorted = [...new Set(sizes)].sort((a, b) => a - b);
  return sorted[Math.min(1, sorted.length - 1)]!;
}

/** PyTorch's nearest resize: output (y, x) reads input (⌊y·n/h⌋, ⌊x·n/w⌋). */
function resizeNearest(m: Float32Array, n: number, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) out[y * w + x] = m[Math.floor((y * n) / h) * n + Math.floor((x * n) / w)]!;
  }
  return out;
}
