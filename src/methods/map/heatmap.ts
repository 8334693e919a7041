// DAAM: Tang et al. 2023, "What the DAAM: Interpreting Stable Diffusion Using Cross Attention" (castorini/daam).
//
// Each stored cross-attention map of the down and up blocks (one per layer, averaged over steps; DAAM never hooks
// the mid block) is split into per-head, per-token maps,
// upsampled to the latent size (bicubic, as `compute_global_heat_map`), clamped at 0 ("fixes undershoot"), and
// averaged over every (layer, head): the global heat map, one (h, w) map per text token. A word's map is the mean
// of its tokens' maps (`compute_word_heat_map`); `expandAs` upsamples it to the image and min–max normalises it.
// DAAM sums over steps where this averages; the two differ by a constant factor, which normalisation removes.

import type { TokenLookup } from '../../attention/tokens.js';
import { formatShape, indexSelect, type Tensor } from '../../tensor/index.js';
import type { StoredMap } from './attention-store.js';
import { type ResizeMode, resize2d } from './upsample.js';

/**
 * Options of DAAM's aggregation: the size maps are upsampled to, which sides, layers, heads and row are
 * included, the resize mode.
 */
export interface GlobalHeatMapOptions {
  /** Size (h, w) every map is upsampled to before averaging: the latent size (DAAM: 64×64 for SD at 512). */
  latentSize: readonly [number, number];
  /** Query map sizes (side h) to include, e.g. [16, 8]; default all (DAAM leaves out its 8×8 maps). */
  resolutions?: readonly number[];
  /** Layers to include; default all cross-attention maps of the down and up blocks. */
  layers?: (m: StoredMap) => boolean;
  /**
   * Also the mid block's maps (attnkit before issue 26). Default false: DAAM's UNetCrossAttentionLocator hooks the
   * down and up blocks only.
   */
  midBlock?: boolean;
  /** Heads to include; default all. */
  heads?: readonly number[];
  /** Default 'bicubic' (DAAM). */
  mode?: ResizeMode;
  /** Which stored row (prompt index) to take; default the first. */
  prompt?: number;
}

/**
 * The global heat map (Tk, h, w) of one prompt: per-head maps upsampled, clamped at 0 and averaged over the
 * selected layers and heads. `maps` are the store's (steps already averaged).
 */
export function aggregateCrossAttention(maps: readonly StoredMap[], opts: GlobalHeatMapOptions): Tensor {
  const chosen = maps.filter(
    (m) =>
      m.kind === 'cross' &&
      (opts.midBlock || m.place !== 'mid') &&
      (!opts.resolutions || opts.resolutions.includes(m.size[0])) &&
      (!opts.layers || opts.layers(m)),
  );
  if (chosen.length === 0) {
    const have = [...new Set(maps.filter((m) => m.kind === 'cross').map((m) => m.size.join('×')))];
    const mid = opts.midBlock ? '' : ', the mid block left out as DAAM (midBlock: true adds it)';
    throw new Error(
      `aggregateCrossAttention: no cross-attention maps match (resolutions ${opts.resolutions?.join(', ') ?? 'all'}${mid}); ` +
        `the store holds ${have.length ? have.join(', ') : 'none'}`,
    );
  }
  let total: Tensor | undefined;
  let count = 0;
  for (const m of chosen) {
    const row = m.prompts.indexOf(opts.prompt ?? m.prompts[0]!);
    if (row < 0)
      throw new Error(`aggregateCrossAttention: prompt ${opts.prompt} is not stored for ${m.path}`);
    const [, heads, tq, tk] = m.map.shape as [number, number, number, number];
    const [h, w] = m.size;
    if (h * w !== tq)
      throw new Error(`aggregateCrossAttention: ${m.path} has ${tq} queries for size ${h}×${w}`);
    let x = m.map.slice(0, row, row + 1).reshape([heads, tq, tk]); // (H, Tq, Tk)
    if (opts.heads) x = indexSelect(x, 0, opts.heads);
    const nh = x.shape[0] as number;
    x = x.permute([0, 2, 1]).reshape([nh, tk, h, w]); // (H, Tk, h, w)
    const up = resize2d(x, opts.latentSize, opts.mode ?? 'bicubic').clamp(0); // (H, Tk, Lh, Lw)
    const s = up.sum({ axes: 0 });
    total = total ? total.add(s) : s;
    count += nh;
  }
  return total!.div(count);
}

/** DAAM's `GlobalHeatMap`: the per-token maps of one prompt and the words they make up. */
export class GlobalHeatMap {
  /** (Tk, h, w) */
  readonly heatMaps: Tensor;

  constructor(
    readonly tokenizer: TokenLookup,
    readonly prompt: string,
    heatMaps: Tensor,
  ) {
    if (heatMaps.rank !== 3) {
      throw new Error(`GlobalHeatMap: expected maps (tokens, h, w), got ${formatShape(heatMaps.shape)}`);
    }
    this.heatMaps = heatMaps;
  }

  /** Number of text tokens of the prompt, without bos and eos. */
  get numTokens(): number {
    return this.tokenizer.call(this.prompt, { padding: false, onWarning: () => {} }).ids[0]!.length - 2;
  }

  /** The map (h, w) of one token position (bos at 0). */
  token(index: number): Tensor {
    const [t, h, w] = this.heatMaps.shape as [number, number, number];
    if (!Number.isInteger(index) || index < 0 || index >= t) {
      throw new RangeError(`GlobalHeatMap.token: position ${index} is out of range 0..${t - 1}`);
    }
    return this.heatMaps.slice(0, index, index + 1).reshape([h, w]);
  }

  /** A word's map (h, w): the mean over its token positions (every occurrence), as DAAM merges sub-words. */
  wordHeatMap(word: string | number): Tensor {
    const idx = this.tokenizer.keptTokenIndices(this.prompt, word);
    const [, h, w] = this.heatMaps.shape as [number, number, number];
    return indexSelect(this.heatMaps, 0, idx).mean({ axes: 0 }).reshape([h, w]);
  }

  /**
   * Every whitespace-separated word of the prompt with its map; words the tokenizer cut off a long prompt
   * (the model never saw them) are left out.
   */
  wordHeatMaps(): { word: string; map: Tensor }[] {
    return this.tokenizer
      .wordTokens(this.prompt)
      .flatMap((wt, i) => (wt.indices.length > 0 ? [{ word: wt.word, map: this.wordHeatMap(i) }] : []));
  }

  /**
   * DAAM's `normalize=True`: each token's map divided by the sum over the prompt's word tokens (positions
   * 1..n, leaving out bos and the padding) plus 1e-6, so the word maps are a distribution over words per pixel.
   */
  normalized(): GlobalHeatMap {
    const n = this.numTokens;
    const words = this.heatMaps.slice(0, 1, 1 + n).sum({ axes: 0, keepDims: true });
    return new GlobalHeatMap(this.tokenizer, this.prompt, this.heatMaps.div(words.add(1e-6)));
  }
}

/** Options of `expandAs` (DAAM's `expand_as`): absolute values, a threshold, the resize mode. */
export interface ExpandOptions {
  /** Keep absolute values; default false: min–max normalise to [0, 1] (DAAM's `expand_as`). */
  absolute?: boolean;
  /** Binarise at this value after normalising. */
  threshold?: number;
  mode?: ResizeMode;
}

/** DAAM's `expand_as`: a (h, w) map upsampled to the image size (bicubic), normalised, optionally thresholded. */
export function expandAs(map: Tensor, size: readonly [number, number], opts: ExpandOptions = {}): Tensor {
  let x = resize2d(map, size, opts.mode ?? 'bicubic');
  if (!opts.absolute) x = normalizeMinMax(x);
  if (opts.threshold !== undefined) x = x.gt(opts.threshold).cast('float32');
  return x;
}

/** (x − min) / (max − min + 1e-8) over the whole tensor. */
export function normalizeMinMax(x: Tensor): Tensor {
  const lo = x.min().item();
  const hi = x.max().item();
  return x.sub(lo).div(hi - lo + 1e-8);
}
