// Block caching: Wimbauer et al. 2024, "Cache Me if You Can: Accelerating Diffusion Models through Block
// Caching", applied to the UNet's attention blocks (Transformer2DModel, diffusers' `attentions.N`): a block's
// residual branch changes little between neighbouring steps over most of the schedule, so a step may reuse
// the branch computed at an earlier step and skip the block's norm, projections, self- and cross-attention
// and feed-forward. Which block is reused at which step is decided on a calibration run, by how far the
// reused branch is from the computed one (the paper's relative change of block outputs, here ‖·‖₂).

import type { TransformerCall } from '../../attention/call.js';
import type { Controller } from '../../attention/hooks.js';
import type { Tensor } from '../../tensor/index.js';
import { PlannedCache, relativeChange } from './cache-plan.js';

/**
 * Options of block caching (Wimbauer et al. 2024): the threshold a reuse may cost, a fixed plan, and the
 * blocks that may be reused.
 */
export interface BlockCachingOptions {
  /** Largest relative change ‖cached − computed‖ / ‖computed‖ a reuse may cause where it is calibrated. */
  threshold?: number;
  /** A fixed plan instead of a calibrated one: whether to reuse the block's last branch at this call. */
  plan?: (call: TransformerCall) => boolean;
  /** Blocks that may be reused (default: all). */
  blocks?: (call: TransformerCall) => boolean;
}

/**
 * Reuses attention blocks' residual branches across steps. `calibrate(run)` runs a generation computing every
 * block, reusing the block's cached branch wherever it is within `threshold` of the computed one (and going on
 * with the cached branch, as the cached run will), and records that plan; later runs follow it, skipping the
 * block. Step 0 always computes (the cache is dropped there).
 */
export class BlockCaching extends PlannedCache<TransformerCall, boolean> implements Controller {
  readonly name = 'BlockCaching';
  readonly threshold: number;
  /** Blocks computed and reused since the last step 0. */
  readonly counts = { computed: 0, reused: 0 };
  readonly #blocks: (call: TransformerCall) => boolean;
  readonly #cache = new Map<string, Tensor>();

  constructor(opts: BlockCachingOptions = {}) {
    super(opts.plan);
    this.threshold = opts.threshold ?? 0.1;
    if (!(this.threshold >= 0)) throw new Error(`BlockCaching: threshold must be ≥ 0, got ${this.threshold}`);
    this.#blocks = opts.blocks ?? (() => true);
  }

  protected reset(): void {
    this.#cache.clear();
    this.counts.computed = 0;
    this.counts.reused = 0;
  }

  reuseTransformer(call: TransformerCall): Tensor | undefined {
    if (this.calibrating || !this.#blocks(call)) return undefined;
    const planned = this.planned(call);
    const cached = this.#cache.get(call.path);
    if (!planned || !cached || !sameShape(cached, call)) return undefined;
    this.counts.reused++;
    return cached;
  }

  transformer(call: TransformerCall, h: Tensor): Tensor {
    const cached = this.#cache.get(call.path);
    if (this.calibrating && this.#blocks(call)) {
      const reuse = !!cached && sameShape(cached, call) && relativeChange(cached, h) < this.threshold;
      this.record(call, reuse);
      if (reuse) {
        this.counts.reused++;
        return cached as Tensor;
      }
    } else if (h === cached) {
      return h; // reused by this controller, counted there
    }
    this.counts.computed++;
    this.#cache.set(call.path, h);
    return h;
  }
}

/**
 * Whether a cached branch fits the call: a UNet block's (B, C, h, w) on its grid; a token model's (B, T, D) (an
 * MM-DiT block's, image tokens then text) with the h·w image tokens.
 */
function sameShape(cached: Tensor, call: TransformerCall): boolean {
  const rows = call.batch.guidance.length;
  if (cached.rank === 3) return cached.shape[0] === rows && cached.shape[1]! >= call.size[0] * call.size[1];
  const [b, , h, w] = cached.shape;
  return b === rows && h === call.size[0] && w === call.size[1];
}
