// MasaCtrl: Cao et al. 2023, "MasaCtrl: Tuning-Free Mutual Self-Attention Control for Consistent Image Synthesis and Editing".
//
// From step `startStep` and self-attention layer `startLayer` on, every row's self-attention queries the
// source's keys and values, Attention(Q_t, K_s, V_s), the unconditional rows the unconditional source and the
// conditional rows the conditional one (reference: TencentARC/MasaCtrl, `MutualSelfAttentionControl`; the
// source is prompt 0 of the batch roles). `MutualSelfAttentionMaskAuto` restricts this with masks from the
// cross-attention maps of the same step: the target's foreground queries attend only to the source's
// foreground keys, background to background (`MutualSelfAttentionControlMaskAuto`, threshold `thres` 0.1).

import type { AttentionCall } from '../../attention/call.js';
import type { Controller, Features, StepState } from '../../attention/hooks.js';
import { indexSelect, Tensor } from '../../tensor/index.js';
import { condRowOf, sourceRowOf } from './source-rows.js';

/** Options of MasaCtrl (Cao et al. 2023): the step and layer it starts at, or the exact layers and steps. */
export interface MutualSelfAttentionOptions {
  /** First denoising step (0-based) with mutual self-attention (reference default 4). */
  startStep?: number;
  /** First self-attention layer, by `index` over the model's self-attention layers (default 10 of SD's 16). */
  startLayer?: number;
  /** The self-attention layers by index, instead of startLayer and after (reference `layer_idx`). */
  layerIdx?: readonly number[];
  /** The steps, instead of startStep and after (reference `step_idx`). */
  stepIdx?: readonly number[];
}

/** The reference's first step with mutual self-attention (`start_step`). */
export const MASACTRL_START_STEP = 4;

export class MutualSelfAttention implements Controller {
  readonly name: string;
  readonly startStep: number;
  readonly startLayer: number;
  readonly layerIdx?: ReadonlySet<number>;
  readonly stepIdx?: ReadonlySet<number>;
  /** Self-attention layers seen (index → path), to refuse a layer choice that selects none. */
  readonly #seen = new Map<number, string>();

  constructor(opts: MutualSelfAttentionOptions = {}, name = 'MutualSelfAttention') {
    this.name = name;
    this.startStep = opts.startStep ?? MASACTRL_START_STEP;
    this.startLayer = opts.startLayer ?? 10;
    for (const [key, v] of [
      ['startStep', this.startStep],
      ['startLayer', this.startLayer],
    ] as const) {
      if (!(Number.isInteger(v) && v >= 0))
        throw new Error(`${name}: ${key} must be an integer ≥ 0, got ${v}`);
    }
    if (opts.layerIdx) this.layerIdx = new Set(opts.layerIdx);
    if (opts.stepIdx) this.stepIdx = new Set(opts.stepIdx);
  }

  protected isStep(step: number): boolean {
    return this.stepIdx ? this.stepIdx.has(step) : step >= this.startStep;
  }

  protected isLayer(index: number): boolean {
    return this.layerIdx ? this.layerIdx.has(index) : index >= this.startLayer;
  }

  appliesTo(call: AttentionCall): boolean {
    if (call.kind !== 'self') return false;
    this.#seen.set(call.index, call.path);
    return this.isStep(call.step) && this.isLayer(call.index);
  }

  /** K and V of every row ← those of the source row with the same guidance branch. */
  features(call: AttentionCall, f: Features): Features {
    const rows = sourceRowOf(call.batch, this.name);
    return { q: f.q, k: indexSelect(f.k, 0, rows), v: indexSelect(f.v, 0, rows) };
  }

  /** After the first step: refuses a layer choice that selects no layer, then steps that select no step. */
  afterStep(state: StepState): undefined {
    if (state.step !== 0) return undefined;
    if (![...this.#seen.keys()].some((i) => this.isLayer(i))) {
      const layers = [...this.#seen].map(([i, p]) => `${i} ${p}`).join(', ');
      throw new Error(
        `${this.name}: no self-attention layer has index ${this.layerIdx ? `in [${[...this.layerIdx]}]` : `≥ startLayer ${this.startLayer}`}; this model's are ${layers}`,
      );
    }
    if (!this.stepIdx && this.startStep >= state.numSteps) {
      throw new Error(
        `${this.name}: startStep ${this.startStep} is past the last of the ${state.numSteps} denoising steps, so ` +
          'it would never act; give a smaller startStep or more steps',
      );
    }
    return undefined;
  }
}

/**
 * Options of MasaCtrl's MaskAuto variant: its options, plus the tokens whose maps give the source and target
 * foreground masks, their resolution and threshold.
 */
export interface MutualSelfAttentionMaskOptions extends MutualSelfAttentionOptions {
  /** Threshold on the min–max normalised cross-attention map (reference `thres` 0.1). */
  thres?: number;
  /** Tokens whose maps (summed) give the source's foreground (reference `ref_token_idx`, [1]). */
  refTokenIdx?: readonly number[];
  /** Tokens whose maps give each target's foreground (reference `cur_token_idx`, [1]). */
  curTokenIdx?: readonly number[];
  /** Side of the cross-attention maps aggregated (reference 16: SD's 64² latents / 4). */
  maskResolution?: number;
}

export class MutualSelfAttentionMaskAuto extends MutualSelfAttention {
  readonly thres: number;
  readonly refTokenIdx: readonly number[];
  readonly curTokenIdx: readonly number[];
  readonly maskResolution: number;
  /** Head-averaged cross-attention probabilities (B, Tq, Tk) at maskResolution, of the current step. */
  #cross: Tensor[] = [];
  readonly #crossSizes = new Set<number>();

  constructor(opts: MutualSelfAttentionMaskOptions = {}) {
    super(opts, 'MutualSelfAttentionMaskAuto');
    this.thres = opts.thres ?? 0.1;
    this.refTokenIdx = opts.refTokenIdx ?? [1];
    this.curTokenIdx = opts.curTokenIdx ?? [1];
    this.maskResolution = opts.maskResolution ?? 16;
  }

  override appliesTo(call: AttentionCall): boolean {
    if (call.kind !== 'cross' || !call.size) return super.appliesTo(call);
    if (call.size[0] === call.size[1]) this.#crossSizes.add(call.size[0]);
    return (
      call.size[0] === this.maskResolution && call.size[1] === this.maskResolution && this.isStep(call.step)
    );
  }

  /** Records the cross-attention maps (mean over heads) that MaskAuto's masks are made from. */
  map(call: AttentionCall, p: Tensor): Tensor {
    if (call.kind === 'cross') this.#cross.push(p.mean({ axes: 1 })); // (B, Tq, Tk)
    return p;
  }

  /** Target rows: logits of keys on the other side of the source's mask → −∞. */
  scores(call: AttentionCall, s: Tensor): Tensor {
    if (call.kind !== 'self' || this.#cross.length === 0 || !call.size) return s;
    const { batch, size } = call;
    const source = sourceRowOf(batch, this.name);
    const cond = condRowOf(batch);
    const t = size[0] * size[1];
    const bias = new Float32Array(batch.prompt.length * t * t);
    const ref = this.#mask(cond[source[0] as number] as number, this.refTokenIdx, size);
    const fgKeys = ref.reduce((n, m) => n + m, 0);
    if (fgKeys === 0 || fgKeys === t) return s; // no foreground / background to match
    batch.prompt.forEach((prompt, r) => {
      if (prompt === 0) return;
      const cur = this.#mask(cond[r] as number, this.curTokenIdx, size);
      for (let q = 0; q < t; q++) {
        for (let k = 0; k < t; k++) if (cur[q] !== ref[k]) bias[(r * t + q) * t + k] = -Infinity;
      }
    });
    return s.add(new Tensor(bias, [batch.prompt.length, 1, t, t]));
  }

  /** Binary mask (h·w) of a row: tokens' maps summed, averaged over layers, min–max normalised, ≥ thres. */
  #mask(row: number, tokens: readonly number[], [h, w]: readonly [number, number]): Uint8Array {
    const res = this.maskResolution;
    const img = new Float64Array(res * res);
    for (const m of this.#cross) {
      const [, tq, tk] = m.shape as [number, number, number];
      for (let q = 0; q < tq; q++) {
        for (const i of tokens) img[q] = (img[q] as number) + (m.data[(row * tq + q) * tk + i] as number);
      }
    }
    let [lo, hi] = [Infinity, -Infinity];
    for (const v of img) [lo, hi] = [Math.min(lo, v), Math.max(hi, v)];
    // nearest resize to (h, w), as F.interpolate: source index ⌊i·in/out⌋
    const out = new Uint8Array(h * w);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const v = img[Math.floor((y * res) / h) * res + Math.floor((x * res) / w)] as number;
        out[y * w + x] = (v - lo) / (hi - lo) >= this.thres ? 1 : 0;
      }
    }
    return out;
  }

  /** Forgets the previous step's cross-attention maps. */
  beforeStep(): void {
    this.#cross = [];
  }

  override afterStep(state: StepState): undefined {
    if (state.step === 0 && !this.#crossSizes.has(this.maskResolution)) {
      throw new Error(
        `${this.name}: no cross-attention layer at ${this.maskResolution}×${this.maskResolution}; set maskResolution to one of ${[...this.#crossSizes].join(', ')}`,
      );
    }
    return super.afterStep(state);
  }
}
