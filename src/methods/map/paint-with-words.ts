// Paint-with-words (eDiff-I, Balaji et al. 2022, Sec. 4.3): a word's region of the image is painted into the
// cross-attention scores. Before the softmax, the conditional rows' scores of the word's tokens get, on the
// queries inside its region, the bias w · log(1 + σ_t) · max(QKᵀ): strong while the image is noise, fading as
// σ_t falls, scaled to the layer's own largest score. Map level (pre-softmax, the `scores` hook); no gradients.
//
// From the reference implementation (cloneofsimo/paint-with-words-sd): the bias is added to the unscaled QKᵀ
// and the sum scaled by 1/√d, which equals adding w · log(1 + σ) · max(s) to the scaled scores s; max is taken
// over the whole conditional pass's scores of the layer; the unconditional pass gets no bias; a region is the
// word's weight times its mask, reduced to each layer's side (here: the mask's mean over each cell's block).
// The reference's weight scale is 0.4 (its demo; 0.1 in its library default). σ_t = √((1 − ᾱ_t)/ᾱ_t), capped
// at SD's σ_max where a zero-terminal-SNR schedule makes it infinite (sigmaOf).

import type { AttentionCall } from '../../attention/call.js';
import type { Controller } from '../../attention/hooks.js';
import type { TokenLookup } from '../../attention/tokens.js';
import { Tensor } from '../../tensor/index.js';
import { perPrompt } from '../application/attend-and-excite.js';
import { type Box, checkBox, sigmaOf, type WordRef, wordTokens } from '../application/score-guidance.js';

/** A region mask of the image: height × width values in [0, 1], row-major. */
export interface RegionMask {
  width: number;
  height: number;
  data: Float32Array;
}

/** A word of the prompt, the region it paints (a box of fractions or a mask of the image's size), its weight. */
export interface PaintedWord {
  word: WordRef;
  region: Box | RegionMask;
  /** Multiplies the bias (default 1). */
  weight?: number;
}

/**
 * Options of paint-with-words (eDiff-I, Balaji et al. 2022): the prompts, the painted words with their
 * regions and weights, the image size.
 */
export interface PaintWithWordsOptions {
  tokenizer: TokenLookup;
  prompts: string | readonly string[];
  /** Painted words: one list for every prompt, or one list per prompt. */
  words: readonly PaintedWord[] | readonly (readonly PaintedWord[])[];
  /** The generation's image size [height, width]: masks must have it. */
  imageSize: readonly [number, number];
  /** The scheduler's ᾱ by timestep (`sd.scheduler().alphasCumprod`), for σ_t. */
  alphasCumprod: readonly number[];
  /** w of w · log(1 + σ) · max(QKᵀ) (default 0.4). */
  scale?: number;
  /** Denoising steps [start, end) that get the bias (default every step, as the reference). */
  steps?: readonly [number, number];
  /** Map sides that get the bias, e.g. [16, 8] (default every cross-attention layer, as the reference). */
  resolutions?: readonly number[];
  /**
   * Hard regions: a cell gets the word's full weight where its share of the region is at least this, else none
   * (default: soft, each cell the region's mean over it, as the reference's downsampled masks).
   */
  hardThreshold?: number;
  /**
   * Also lower the word's scores outside its region by this weight times the cell's share outside it (default 0,
   * the reference's positive bias only; an inside-outside mask, not in eDiff-I).
   */
  outsideWeight?: number;
}

interface Painted {
  tokens: number[];
  weight: number;
  /** The region at image size, height × width. */
  mask: Float32Array;
}

/** A box as a mask of the image: the pixels whose centres lie inside it. */
export function boxMask(box: Box, height: number, width: number): Float32Array {
  const m = new Float32Array(height * width);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [u, v] = [(x + 0.5) / width, (y + 0.5) / height];
      if (u >= box[0] && u < box[2] && v >= box[1] && v < box[3]) m[y * width + x] = 1;
    }
  }
  return m;
}

/** The mean of a height × width mask over each cell of an h × w grid (the sides must divide). */
export function cellMeans(
  mask: Float32Array,
  height: number,
  width: number,
  h: number,
  w: number,
): Float32Array {
  if (height % h !== 0 || width % w !== 0) {
    throw new Error(
      `paint-with-words: a ${height}×${width} region does not divide into ${h}×${w} attention cells`,
    );
  }
  const [by, bx] = [height / h, width / w];
  const out = new Float32Array(h * w);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const q = Math.floor(y / by) * w + Math.floor(x / bx);
      out[q] = (out[q] as number) + (mask[y * width + x] as number) / (by * bx);
    }
  }
  return out;
}

/** Paint-with-words as a map-level controller on the UNet's cross-attention scores. */
export class PaintWithWords implements Controller {
  readonly name = 'PaintWithWords';
  private readonly painted: Painted[][];
  private readonly scale: number;
  private readonly biases = new Map<string, Tensor>();

  constructor(private readonly opts: PaintWithWordsOptions) {
    const m = 'paint-with-words';
    const prompts = typeof opts.prompts === 'string' ? [opts.prompts] : [...opts.prompts];
    const words = perPrompt(m, prompts.length, opts.words);
    const [height, width] = opts.imageSize;
    this.scale = opts.scale ?? 0.4;
    if (!(Number.isFinite(this.scale) && this.scale >= 0))
      throw new Error(`${m}: scale must be ≥ 0, got ${this.scale}`);
    const out = opts.outsideWeight ?? 0;
    if (!(Number.isFinite(out) && out >= 0)) throw new Error(`${m}: outsideWeight must be ≥ 0, got ${out}`);
    const t = opts.hardThreshold;
    if (t !== undefined && !(t > 0 && t <= 1))
      throw new Error(`${m}: hardThreshold must be in (0, 1], got ${t}`);
    const masks = words.map((row) =>
      row.map((p) => {
        if (p.weight !== undefined && !(Number.isFinite(p.weight) && p.weight >= 0)) {
          throw new Error(`${m}: the weight of "${p.word}" must be a number ≥ 0, got ${p.weight}`);
        }
        if (Array.isArray(p.region)) {
          checkBox(m, p.region as Box, p.word);
          return boxMask(p.region as Box, height, width);
        }
        const r = p.region as RegionMask;
        if (r.width !== width || r.height !== height || r.data.length !== width * height) {
          throw new Error(
            `${m}: the mask of "${p.word}" is ${r.width}×${r.height}, the image ${width}×${height}; ` +
              'give a mask of the image’s size',
          );
        }
        return r.data;
      }),
    );
    const tokens = wordTokens(
      m,
      opts.tokenizer,
      prompts,
      words.map((r) => r.map((p) => p.word)),
    );
    this.painted = words.map((row, r) =>
      row.map((p, k) => ({
        tokens: (tokens[r] as number[][])[k] as number[],
        weight: p.weight ?? 1,
        mask: (masks[r] as Float32Array[])[k] as Float32Array,
      })),
    );
  }

  appliesTo(call: AttentionCall): boolean {
    const { steps, resolutions } = this.opts;
    return (
      call.kind === 'cross' &&
      !!call.size &&
      (call.place === 'down' || call.place === 'mid' || call.place === 'up') &&
      (!steps || (call.step >= steps[0] && call.step < steps[1])) &&
      (!resolutions || resolutions.includes(call.size[0]))
    );
  }

  /** The region weights (batch, 1, Tq, Tk) of the call's conditional rows (zero elsewhere). */
  private bias(call: AttentionCall): Tensor {
    const [h, w] = call.size as [number, number];
    const { guidance, prompt } = call.batch;
    const key = `${h}x${w}x${call.keyTokens}:${guidance.join()}:${prompt.join()}`;
    let b = this.biases.get(key);
    if (b) return b;
    const [tq, tk] = [h * w, call.keyTokens];
    const data = new Float32Array(guidance.length * tq * tk);
    const [height, width] = this.opts.imageSize;
    guidance.forEach((role, row) => {
      if (role !== 'cond') return;
      const p = prompt[row] as number;
      if (p >= this.painted.length) {
        throw new Error(
          `paint-with-words: made for ${this.painted.length} prompts, the batch has prompt ${p}`,
        );
      }
      for (const painted of this.painted[p] as Painted[]) {
        const cells = cellMeans(painted.mask, height, width, h, w);
        const hard = this.opts.hardThreshold;
        for (let q = 0; q < tq; q++) {
          const inside = hard === undefined ? (cells[q] as number) : (cells[q] as number) >= hard ? 1 : 0;
          const cell = inside - (this.opts.outsideWeight ?? 0) * (1 - inside);
          for (const t of painted.tokens) {
            const at = (row * tq + q) * tk + t;
            data[at] = (data[at] as number) + painted.weight * cell;
          }
        }
      }
    });
    b = new Tensor(data, [guidance.length, 1, tq, tk]);
    this.biases.set(key, b);
    return b;
  }

  scores(call: AttentionCall, s: Tensor): Tensor {
    const rows = call.batch.guidance.flatMap((g, r) => (g === 'cond' ? [r] : []));
    if (rows.length === 0) return s;
    const first = rows[0] as number;
    const cond =
      rows.length === rows[rows.length - 1]! - first + 1 ? s.slice(0, first, first + rows.length) : s;
    const max = cond.max().toArray()[0] as number;
    const sigma = sigmaOf(this.opts.alphasCumprod[call.timestep] ?? 1);
    return s.add(this.bias(call).mul(this.scale * Math.log(1 + sigma) * max));
  }
}
