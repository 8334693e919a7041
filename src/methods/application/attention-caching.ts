// Attention caching across steps and guidance branches: Yuan et al. 2024, "DiTFastAttn: Attention Compression
// for Diffusion Transformer Models" (output sharing, window attention with residual caching, CFG sharing),
// applied to the UNet's attention layers; diffusers' Pyramid Attention Broadcast is the nearest peer.

import type { AttentionCall } from '../../attention/call.js';
import { type AttentionFunction, flashAttention, mergeHeads, splitHeads } from '../../attention/functions.js';
import type { Controller } from '../../attention/hooks.js';
import { gather, Tensor } from '../../tensor/index.js';
import { windowAttention } from '../function/window-attention.js';
import { PlannedCache, relativeChange } from './cache-plan.js';

/** DiTFastAttn's per-layer, per-step methods (its names). */
export type CacheMethod =
  | 'full_attn'
  | 'output_share'
  | 'residual_window_attn'
  | 'full_attn+cfg_attn_share'
  | 'residual_window_attn+cfg_attn_share';

/**
 * Options of attention caching (DiTFastAttn, Yuan et al. 2024): the threshold a shortcut may cost, the
 * shortcuts tried, the window, the attention function and a fixed plan.
 */
export interface AttentionCachingOptions {
  /** Largest relative change ‖O′ − O‖ / ‖O‖ a shortcut may cause where it is calibrated (0: none is taken). */
  threshold?: number;
  /** Shortcuts tried in this order at calibration, the first within the threshold wins (DiTFastAttn's). */
  methods?: readonly CacheMethod[];
  /** Window of `residual_window_attn` on the layer's grid (default 8). */
  windowSize?: number;
  /** Computes attention where it is computed (default: onnxruntime's flash attention). */
  fn?: AttentionFunction;
  /** Layers that may be cached (default: all). */
  appliesTo?: (call: AttentionCall) => boolean;
  /** A fixed plan instead of a calibrated one: the method of each call (undefined: full_attn). */
  plan?: (call: AttentionCall) => CacheMethod | undefined;
}

interface LayerCache {
  /** The layer's last attention output (B, T, H·d), before the out projection. */
  out?: Tensor;
  /** Full minus window attention at the last full step, for residual_window_attn. */
  residual?: Tensor;
  /** The layer's last output after the out projection (batch, T, C): what output_share reuses. */
  final?: Tensor;
}

const DEFAULT_METHODS: readonly CacheMethod[] = [
  'output_share',
  'residual_window_attn+cfg_attn_share',
  'residual_window_attn',
  'full_attn+cfg_attn_share',
];

/** Each row's conditional partner (same prompt), or undefined when the batch is not CFG-paired. */
function cfgRows(call: AttentionCall): { cond: number[]; from: number[] } | undefined {
  const { guidance, prompt } = call.batch;
  const cond = guidance.flatMap((g, i) => (g === 'cond' ? [i] : []));
  if (cond.length === guidance.length) return undefined;
  const from = prompt.map((p) => cond.findIndex((j) => prompt[j] === p));
  return from.every((j) => j >= 0) ? { cond, from } : undefined;
}

/**
 * Reuses attention where it barely changes. `calibrate(run)` runs a generation computing every layer,
 * choosing per layer and step the first shortcut whose output stays within `threshold` of the full one (and
 * continuing with that output, as the cached run will); later runs follow that plan. Outputs are cached
 * before the out projection (for the window residual and CFG sharing, which still run the projections) and
 * after it: an `output_share` step reuses the layer's last output through the `reuse` hook, so the layer
 * skips its projections and attention altogether. The cache is dropped at step 0.
 */
export class AttentionCaching extends PlannedCache<AttentionCall, CacheMethod> implements Controller {
  readonly name = 'AttentionCaching';
  readonly threshold: number;
  readonly methods: readonly CacheMethod[];
  readonly appliesTo?: (call: AttentionCall) => boolean;
  /** Calls per method since the last step 0. */
  readonly counts = new Map<CacheMethod, number>();
  readonly #fn: AttentionFunction;
  readonly #window: ReturnType<typeof windowAttention>;
  readonly #cache = new Map<string, LayerCache>();

  constructor(opts: AttentionCachingOptions = {}) {
    super(opts.plan);
    this.threshold = opts.threshold ?? 0.05;
    this.methods = opts.methods ?? DEFAULT_METHODS;
    if (opts.appliesTo) this.appliesTo = opts.appliesTo;
    this.#fn = opts.fn ?? flashAttention;
    this.#window = windowAttention({ windowSize: opts.windowSize ?? 8 });
    if (!(this.threshold >= 0))
      throw new Error(`AttentionCaching: threshold must be ≥ 0, got ${this.threshold}`);
  }

  protected reset(): void {
    this.#cache.clear();
    this.counts.clear();
  }

  reuse(call: AttentionCall): Tensor | undefined {
    if (this.calibrating) return undefined;
    const planned = this.planned(call);
    const final = this.#cache.get(call.path)?.final;
    if (planned !== 'output_share' || final?.shape[1] !== call.queryTokens) return undefined;
    this.counts.set('output_share', (this.counts.get('output_share') ?? 0) + 1);
    return final;
  }

  output(call: AttentionCall, out: Tensor): Tensor {
    this.#layer(call.path).final = out;
    return out;
  }

  /** The cache of one layer, created on first use. */
  #layer(path: string): LayerCache {
    let cache = this.#cache.get(path);
    if (!cache) {
      cache = {};
      this.#cache.set(path, cache);
    }
    return cache;
  }

  fn(call: AttentionCall): AttentionFunction {
    const runPacked = (q: Tensor, k: Tensor, v: Tensor, heads: number, scale: number) =>
      this.#attend(call, { q, k, v, heads, scale });
    return {
      name: 'cached',
      explicit: false,
      runPacked,
      run: ({ q, k, v, scale, bias }) => {
        if (bias) return this.#fn.run({ q, k, v, scale, bias });
        const [b, h, t] = q.shape as [number, number, number];
        const pack = (x: Tensor) => x.permute([0, 2, 1, 3]).reshape([b, x.shape[2] as number, -1]);
        const out = runPacked(pack(q), pack(k), pack(v), h, scale);
        return out.reshape([b, t, h, -1]).permute([0, 2, 1, 3]);
      },
    };
  }

  #attend(call: AttentionCall, a: Packed): Tensor {
    const cache = this.#layer(call.path);
    const usable = (m: CacheMethod) => this.#usable(call, cache, a, m);
    let method: CacheMethod = 'full_attn';
    let out: Tensor;
    if (this.calibrating) {
      const full = this.#compute(call, cache, a, 'full_attn');
      out = full;
      for (const m of this.methods.filter(usable)) {
        const candidate = this.#compute(call, cache, a, m);
        if (relativeChange(candidate, full) < this.threshold) {
          [method, out] = [m, candidate];
          break;
        }
      }
      this.record(call, method);
    } else {
      const planned = this.planned(call);
      if (planned && usable(planned)) method = planned;
      out = this.#compute(call, cache, a, method);
    }
    // what the next steps reuse: the output used here, and the residual of a full step
    if (method !== 'output_share') cache.out = out;
    if (method.startsWith('full_attn') && this.#needsResidual(call))
      cache.residual = out.sub(this.#windowed(call, a));
    this.counts.set(method, (this.counts.get(method) ?? 0) + 1);
    return out;
  }

  #usable(call: AttentionCall, cache: LayerCache, a: Packed, m: CacheMethod): boolean {
    if (m === 'full_attn') return true;
    if (m === 'output_share') return cache.out?.shape.every((d, i) => d === a.q.shape[i]) ?? false;
    if (m.includes('cfg_attn_share') && !cfgRows(call)) return false;
    if (m.startsWith('residual'))
      return !!cache.residual && !!this.#window(call) && cache.residual.size === a.q.size;
    return true;
  }

  /** A residual is kept where some later step may use it: always while calibrating, else per the plan. */
  #needsResidual(call: AttentionCall): boolean {
    if (!this.methods.some((m) => m.startsWith('residual')) || !this.#window(call)) return false;
    if (this.calibrating || !this.calibrated) return true;
    const row = this.table.get(call.path) ?? [];
    for (let s = call.step + 1; s < row.length; s++) {
      if (row[s]?.startsWith('residual')) return true;
      if (row[s]?.startsWith('full_attn')) return false;
    }
    return false;
  }

  #compute(call: AttentionCall, cache: LayerCache, a: Packed, m: CacheMethod): Tensor {
    if (m === 'output_share') return cache.out as Tensor;
    const rows = m.includes('cfg_attn_share') ? cfgRows(call) : undefined;
    // cfg_attn_share: attention of the conditional rows only, copied to their unconditional partners
    const pick = (x: Tensor) => (rows ? gather(x, Tensor.int64(rows.cond), 0) : x);
    const part = { ...a, q: pick(a.q), k: pick(a.k), v: pick(a.v) };
    let out = m.startsWith('residual') ? this.#windowed(call, part) : this.#full(part);
    if (rows) out = gather(out, Tensor.int64(rows.from), 0);
    return m.startsWith('residual') ? out.add(cache.residual as Tensor) : out;
  }

  #full(a: Packed): Tensor {
    if (this.#fn.runPacked) return this.#fn.runPacked(a.q, a.k, a.v, a.heads, a.scale);
    return runSplit(this.#fn, a);
  }

  #windowed(call: AttentionCall, a: Packed): Tensor {
    return runSplit(this.#window(call) as AttentionFunction, a);
  }
}

/** Runs `fn` on packed tensors, split per head: (B, T, H·d) in and out. */
function runSplit(fn: AttentionFunction, a: Packed): Tensor {
  const h = a.heads;
  return mergeHeads(
    fn.run({ q: splitHeads(a.q, h), k: splitHeads(a.k, h), v: splitHeads(a.v, h), scale: a.scale }),
  );
}

interface Packed {
  /** (B, T, H·d) */
  q: Tensor;
  k: Tensor;
  v: Tensor;
  heads: number;
  scale: number;
}
