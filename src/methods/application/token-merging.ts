// Token Merging for Stable Diffusion: Bolya & Hoffman 2023, "Token Merging for Fast Stable Diffusion"
// (ToMe for SD), with the semantics and parameter names of its reference code, dbolya/tomesd.

import type { AttentionCall, ResnetCall } from '../../attention/call.js';
import type { BlockBranch, Controller, TokenReduction } from '../../attention/hooks.js';
import { formatShape, gather, runOp1, Tensor } from '../../tensor/index.js';
import { Generator } from '../../tensor/random.js';

/**
 * Options of token merging (ToMe for SD, Bolya & Hoffman 2023): the ratio, the deepest level merged, the
 * stride, and which branches merge.
 */
export interface TokenMergingOptions {
  /** Fraction of a block's tokens removed by merging: r = ⌊T·ratio⌋, at most the source tokens (0.5). */
  ratio?: number;
  /** Merge in blocks downsampled at most this much (1: only blocks at the resolution downsampling counts from). */
  maxDownsample?: number;
  /**
   * What downsampling counts from. 'input' (default, tomesd's): the UNet's input latents, so on a UNet whose first
   * block has no attention (SDXL, tiny-sd-a) `maxDownsample` 1 merges nowhere. 'largest-attention' (attnkit before
   * issue 26): the first attention layer of the forward pass, which reaches those UNets' largest attention blocks.
   */
  downsampleFrom?: 'input' | 'largest-attention';
  /** Stride of the destination grid: one destination token per sx × sy cell (2, 2). */
  sx?: number;
  sy?: number;
  /** A random destination in each cell (seeded); false: the top-left one. Off for odd batches, as in tomesd. */
  useRand?: boolean;
  seed?: number;
  /** Merge before self-attention (true), cross-attention (false) and the feed-forward (false). */
  mergeAttn?: boolean;
  mergeCrossattn?: boolean;
  mergeMlp?: boolean;
}

/** A merge of T tokens into T − r and its inverse, unmerge by copying. */
export interface TokenMatching {
  readonly r: number;
  /** (B, T, C) → (B, T − r, C): unmerged sources, then destinations averaged with their merged sources. */
  merge(x: Tensor): Tensor;
  /** (B, T − r, C) → (B, T, C): every token takes the row it was merged into. */
  unmerge(y: Tensor): Tensor;
}

const IDENTITY: TokenMatching = { r: 0, merge: (x) => x, unmerge: (y) => y };

/** Marks the destination tokens of an h × w grid: one per full sy × sx cell, at `choice[cell]` = dy·sx + dx. */
export function strideDestinations(
  w: number,
  h: number,
  sx: number,
  sy: number,
  choice: ArrayLike<number>,
): Uint8Array {
  const isDst = new Uint8Array(w * h);
  const wsx = Math.floor(w / sx);
  for (let cell = 0; cell < Math.floor(h / sy) * wsx; cell++) {
    const k = choice[cell] as number;
    const y = Math.floor(cell / wsx) * sy + Math.floor(k / sx);
    isDst[y * w + (cell % wsx) * sx + (k % sx)] = 1;
  }
  return isDst;
}

/**
 * tomesd's bipartite_soft_matching_random2d: tokens split into destinations (one per sx × sy cell) and
 * sources; each source's most cosine-similar destination is its edge; the r sources with the strongest
 * edges merge (average) into their destinations. `metric` is (B, T) tokens on an h × w grid.
 */
export function bipartiteSoftMatchingRandom2d(
  metric: Tensor,
  w: number,
  h: number,
  sx: number,
  sy: number,
  r: number,
  opts: { noRand?: boolean; generator?: Generator } = {},
): TokenMatching {
  const [B, N] = metric.shape as [number, number, number];
  if (metric.rank !== 3 || N !== w * h) {
    throw new Error(
      `bipartiteSoftMatchingRandom2d: metric ${formatShape(metric.shape)} is not (B, ${h}·${w}, C)`,
    );
  }
  if (r <= 0) return IDENTITY;
  const cells = Math.floor(h / sy) * Math.floor(w / sx);
  const choice =
    opts.noRand || !opts.generator ? new Int32Array(cells) : opts.generator.randint([cells], 0, sx * sy).data;
  const isDst = strideDestinations(w, h, sx, sy, choice as Int32Array);
  const dst: number[] = [];
  const src: number[] = [];
  for (let t = 0; t < N; t++) (isDst[t] ? dst : src).push(t);
  const [nd, ns] = [dst.length, src.length];
  r = Math.min(r, ns);
  const M = N - r; // tokens after merging: ns − r unmerged sources, then nd destinations

  // each source's best destination by cosine similarity: (B, ns, nd) scores → max and argmax
  const unit = runOp1('LpNormalization', [metric], { attrs: { axis: -1, p: 2 } });
  const scores = gather(unit, Tensor.int64(src), 1).matmul(gather(unit, Tensor.int64(dst), 1), {
    transB: true,
  });
  const nodeMax = scores.max({ axes: -1 }).data as Float32Array;
  const nodeIdx = scores.argmax(-1).toArray();

  const keep = new BigInt64Array(B * M); // merged row ← input row
  const merged = new BigInt64Array(B * r); // input rows of the merged sources
  const into = new BigInt64Array(B * r); // their destination rows in the merged tokens
  const scale = new Float32Array(B * M).fill(1); // 1 / (1 + sources merged into each destination)
  const back = new BigInt64Array(B * N); // input token → merged row (unmerge)
  for (let b = 0; b < B; b++) {
    // sources by edge strength, strongest first (NaN last, ties by position)
    const score = Float64Array.from({ length: ns }, (_, i) => nodeMax[b * ns + i] ?? Number.NaN);
    const order = Array.from({ length: ns }, (_, i) => i);
    const key = (i: number) =>
      Number.isNaN(score[i] as number) ? Number.NEGATIVE_INFINITY : (score[i] as number);
    order.sort((i, j) => key(j) - key(i) || i - j);
    for (let d = 0; d < nd; d++) {
      keep[b * M + ns - r + d] = BigInt(b * N + (dst[d] as number));
      back[b * N + (dst[d] as number)] = BigInt(b * M + ns - r + d);
    }
    order.forEach((i, rank) => {
      const token = src[i] as number;
      if (rank >= r) {
        keep[b * M + rank - r] = BigInt(b * N + token);
        back[b * N + token] = BigInt(b * M + rank - r);
        return;
      }
      const row = b * M + ns - r + (nodeIdx[b * ns + i] as number);
      merged[b * r + rank] = BigInt(b * N + token);
      into[b * r + rank] = BigInt(row);
      back[b * N + token] = BigInt(row);
      scale[row] = 1 / (1 / (scale[row] as number) + 1);
    });
  }
  const keepT = new Tensor(keep, [B * M]);
  const mergedT = new Tensor(merged, [B * r]);
  const intoT = new Tensor(into, [B * r, 1]);
  const scaleT = new Tensor(scale, [B * M, 1]);
  const backT = new Tensor(back, [B * N]);
  return {
    r,
    merge(x) {
      const c = x.shape[2] as number;
      const rows = x.reshape([B * N, c]);
      const sum = runOp1('ScatterND', [gather(rows, keepT, 0), intoT, gather(rows, mergedT, 0)], {
        attrs: { reduction: 'add' },
      });
      return sum.mul(scaleT).reshape([B, M, c]);
    },
    unmerge(y) {
      const c = y.shape[2] as number;
      return gather(y.reshape([B * M, c]), backT, 0).reshape([B, N, c]);
    },
  };
}

/** ToMe for SD as a controller: merges the tokens of the transformer blocks at the largest resolutions. */
export class TokenMerging implements Controller {
  readonly name = 'TokenMerging';
  readonly ratio: number;
  readonly maxDownsample: number;
  readonly downsampleFrom: 'input' | 'largest-attention';
  readonly sx: number;
  readonly sy: number;
  readonly useRand: boolean;
  readonly seed: number;
  readonly branches: readonly BlockBranch[];
  #largest = 0;
  #input = 0;

  constructor(opts: TokenMergingOptions = {}) {
    this.ratio = opts.ratio ?? 0.5;
    this.maxDownsample = opts.maxDownsample ?? 1;
    this.downsampleFrom = opts.downsampleFrom ?? 'input';
    if (this.downsampleFrom !== 'input' && this.downsampleFrom !== 'largest-attention') {
      throw new Error(
        `TokenMerging: downsampleFrom must be 'input' or 'largest-attention', got ${JSON.stringify(this.downsampleFrom)}`,
      );
    }
    this.sx = opts.sx ?? 2;
    this.sy = opts.sy ?? 2;
    this.useRand = opts.useRand ?? true;
    this.seed = opts.seed ?? 0;
    const flags: [BlockBranch, boolean][] = [
      ['attn1', opts.mergeAttn ?? true],
      ['attn2', opts.mergeCrossattn ?? false],
      ['ff', opts.mergeMlp ?? false],
    ];
    this.branches = flags.filter(([, on]) => on).map(([b]) => b);
    if (!(this.ratio >= 0 && this.ratio < 1))
      throw new Error(`TokenMerging: ratio must be in [0, 1), got ${this.ratio}`);
    for (const [k, v] of [
      ['maxDownsample', this.maxDownsample],
      ['sx', this.sx],
      ['sy', this.sy],
    ] as const) {
      if (!Number.isInteger(v) || v < 1)
        throw new Error(`TokenMerging: ${k} must be a positive integer, got ${v}`);
    }
  }

  /**
   * tomesd's forward pre-hook on the UNet, which records the input's size: here the first ResNet block, which
   * runs at conv_in's resolution, the latents', before any transformer block of the forward pass.
   */
  resnet(call: ResnetCall, h: Tensor): Tensor {
    if (call.path === 'down_blocks.0.resnets.0') this.#input = call.size[0] * call.size[1];
    return h;
  }

  /**
   * Downsampling is ⌈√(T₀ / T)⌉ as tomesd's, T₀ the tokens of the UNet's input latents (`downsampleFrom` 'input')
   * or of the forward pass's first attention layer ('largest-attention').
   */
  tokens(call: AttentionCall, x: Tensor): TokenReduction | undefined {
    const [B, N] = x.shape as [number, number];
    const [h, w] = call.size ?? [0, 0];
    if (h * w !== N || this.branches.length === 0) return undefined;
    if (call.index === 0 || N > this.#largest) this.#largest = N;
    const r = Math.floor(N * this.ratio);
    if (r <= 0) return undefined;
    const from = this.downsampleFrom === 'input' ? this.#input : this.#largest;
    if (from === 0) {
      throw new Error(
        `TokenMerging: no UNet input size seen before ${call.path} (it is read at down_blocks.0.resnets.0); ` +
          "run it in a UNet2DConditionModel forward pass, or pass downsampleFrom: 'largest-attention'",
      );
    }
    const downsample = Math.ceil(Math.sqrt(Math.floor(from / N)));
    if (downsample > this.maxDownsample) return undefined;
    // a fixed stream per (step, layer): the same destinations whatever ran before
    const generator = new Generator(this.seed);
    generator.counter = (BigInt(call.step) << 48n) | (BigInt(call.index) << 32n);
    const noRand = !this.useRand || B % 2 === 1;
    const m = bipartiteSoftMatchingRandom2d(x, w, h, this.sx, this.sy, r, { noRand, generator });
    return { branches: this.branches, reduce: (t) => m.merge(t), restore: (t) => m.unmerge(t) };
  }
}
