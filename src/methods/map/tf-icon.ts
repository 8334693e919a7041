// TF-ICON (Lu et al. 2023, "TF-ICON: Diffusion-Based Training-Free Cross-Domain Image Composition"; reference
// Shilin-LU/TF-ICON, ptp_scripts/ptp_utils.py and the DPM-solver sampler): the composite's self-attention logits
// assembled from three runs beside it, before the softmax, in the reference's order:
//
//   background ↔ background  q ∉ box and k ∉ box: the background's own logits     (first 40 % of steps)
//   cross terms              k ∈ object: Q_bg · K_objᵀ (the "pseudo cross-attention" of the background's
//                            queries and the object's keys); q ∈ object: its transpose   (first τ_A of steps)
//   object ↔ object          q, k ∈ object: the object's own logits                       (first τ_A of steps)
//
// Everything else (the box around the object) is the composite's own. The object image is resampled so that
// the object stands at its place in the box, so object tokens line up one to one.

import type { AttentionCall } from '../../attention/call.js';
import type { Controller, Features } from '../../attention/hooks.js';
import type { Tensor } from '../../tensor/index.js';
import {
  type CompositionPart,
  complementRegion,
  MapComposition,
  type MapSource,
  rowSource,
  type TokenRegion,
} from './map-composition.js';

/** The reference's τ_A: the fraction of steps with the composite self-attention injected. */
export const TF_ICON_TAU_A = 0.4;
/** The reference's τ_B: the fraction of steps with the background blended outside the box. */
export const TF_ICON_TAU_B = 0.8;
/** The reference's fraction of steps with the background's own self-attention injected (hard-coded 0.4). */
export const TF_ICON_BACKGROUND_STEPS = 0.4;

/** Options of `TFIconAttention`: the regions and which prompt rows hold the background, object and composite. */
export interface TFIconOptions {
  /** The target box on the latent grid (tokens inside it). */
  box: TokenRegion;
  /** The object's tokens (inside the box) on the same grid. */
  object: TokenRegion;
  /** Prompt indices (batch roles) of the background's, the object's and the composite's rows (default 0, 1, 2). */
  rows?: { background: number; object: number; composite: number };
  /** τ_A (default 0.4). */
  tauA?: number;
  /** Fraction of steps with the background's logits outside the box (default 0.4). */
  backgroundSteps?: number;
}

/**
 * The pseudo cross-attention source: Q of the background's row against K of the object's row at this call,
 * scaled as the layer scales (1/√d); `transposed` gives K_obj · Q_bgᵀ, the reference's row injection. It
 * reads Q and K from the `features` hook of `TFIconFeatures`, which must run on the same call.
 */
class PseudoCross implements MapSource {
  readonly name: string;
  constructor(
    private readonly feats: TFIconFeatures,
    private readonly transposed: boolean,
  ) {
    this.name = transposed ? 'pseudo cross-attention (rows)' : 'pseudo cross-attention (columns)';
  }

  mapFor(call: AttentionCall, _own: Tensor, row: number): Tensor {
    const { q, k } = this.feats.of(call, row);
    const s = 1 / Math.sqrt(call.headDim);
    return this.transposed ? k.matmul(q, { transB: true }).mul(s) : q.matmul(k, { transB: true }).mul(s);
  }
}

/** Keeps the Q and K of each self-attention call, for the pseudo cross-attention terms. */
class TFIconFeatures implements Controller {
  readonly name = 'TFIconFeatures';
  private last?: { path: string; step: number; f: Features };
  constructor(private readonly rows: { background: number; object: number }) {}

  appliesTo(call: AttentionCall): boolean {
    return call.kind === 'self' && (call.place === 'down' || call.place === 'mid' || call.place === 'up');
  }

  features(call: AttentionCall, f: Features): Features {
    this.last = { path: call.path, step: call.step, f };
    return f;
  }

  /** Q of the background's and K of the object's row in the guidance branch of `row`: (1, H, T, d) each. */
  of(call: AttentionCall, row: number): { q: Tensor; k: Tensor } {
    const l = this.last;
    if (!l || l.path !== call.path || l.step !== call.step)
      throw new Error(
        `TF-ICON: no features recorded for layer ${call.path}; put TFIconAttention's controllers first`,
      );
    const g = call.batch.guidance[row];
    const at = (p: number) => {
      const r = call.batch.prompt.findIndex((x, i) => x === p && call.batch.guidance[i] === g);
      if (r < 0) throw new Error(`TF-ICON: layer ${call.path} has no row of prompt ${p} in the ${g} branch`);
      return r;
    };
    const [b, o] = [at(this.rows.background), at(this.rows.object)];
    return { q: l.f.q.slice(0, b, b + 1), k: l.f.k.slice(0, o, o + 1) };
  }
}

/**
 * TF-ICON's composite self-attention (Lu et al. 2023): the controllers that record the features and compose the
 * composite row's self-attention logits from the background's and the object's rows, in the reference's layout.
 */
export function tfIconAttention(opts: TFIconOptions): Controller[] {
  const rows = opts.rows ?? { background: 0, object: 1, composite: 2 };
  if (opts.box.size.join() !== opts.object.size.join())
    throw new Error(
      `TF-ICON: the box is on a ${opts.box.size.join('×')} grid, the object on ${opts.object.size.join('×')}; use one grid`,
    );
  for (let i = 0; i < opts.object.data.length; i++) {
    if (opts.object.data[i] && !opts.box.data[i])
      throw new Error(`TF-ICON: object token ${i} lies outside the box; the object must be inside the box`);
  }
  const feats = new TFIconFeatures(rows);
  const outside = complementRegion(opts.box);
  const tauA = opts.tauA ?? TF_ICON_TAU_A;
  const scores = (parts: CompositionPart[], steps: number) =>
    new MapComposition({ targets: [rows.composite], parts, level: 'scores', steps });
  const bgSteps = opts.backgroundSteps ?? TF_ICON_BACKGROUND_STEPS;
  return [
    feats,
    // a box over the whole grid leaves no background to inject
    ...(bgSteps > 0 && Array.from(outside.data).includes(1)
      ? [scores([{ source: rowSource(rows.background), rows: outside, cols: outside }], bgSteps)]
      : []),
    ...(tauA > 0
      ? [
          scores(
            [
              { source: new PseudoCross(feats, false), cols: opts.object },
              { source: new PseudoCross(feats, true), rows: opts.object },
              { source: rowSource(rows.object), rows: opts.object, cols: opts.object },
            ],
            tauA,
          ),
        ]
      : []),
  ];
}
