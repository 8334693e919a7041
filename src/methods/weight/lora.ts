// LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"), the survey's weight level:
// a layer's weight W (out, in) becomes W + s · α/r · B·A with A (r, in) "down" and B (out, r) "up", r ≪ in.
// For a convolution (LoCon) A is itself a convolution (r, in, kh, kw) and B a 1×1 one (out, r, 1, 1), so
// B·A, flattened on the kernel, is again a (out, in, kh, kw) kernel.
//
// Unmerged, as a controller on the `weights` hook: each attention call projects with W + Σ sᵢ·ΔWᵢ, so every
// LoRA can be switched or rescaled per step and per layer (sᵢ is a function of the call) and gradients flow
// into A and B under autograd. The hook sees attention projections only (q, k, v, out of every attention
// layer); the feed-forward, proj_in / proj_out, ResNet convolutions and the text encoder's MLP have no hook,
// and are merged into the weights instead (lora-merge.ts).

import type { AttentionCall } from '../../attention/call.js';
import type { Controller, Projection, ProjectionWeights } from '../../attention/hooks.js';
import { formatShape, recordsGrad, type Shape, type Tensor } from '../../tensor/index.js';

/**
 * One low-rank update ΔW = α/r · B·A of a module's weight (LoRA, Hu et al. 2021), as a LoRA file holds it.
 */
export interface LoraDelta {
  /** The module's path in its model, diffusers naming: `down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q`. */
  readonly module: string;
  /** A ("down"): (r, in) for a linear layer, (r, in, kh, kw) for a convolution. */
  readonly down: Tensor;
  /** B ("up"): (out, r), or (out, r, 1, 1) for a convolution. */
  readonly up: Tensor;
  /** α / r as the file's layout defines it (1 where the file has no α). */
  readonly alphaScale: number;
}

/** A LoRA's deltas per model part, as read from one file. */
export interface LoraAdapter {
  /** Where it came from (shown in errors and logs). */
  readonly name: string;
  readonly unet: readonly LoraDelta[];
  readonly textEncoder: readonly LoraDelta[];
  /** SDXL's second text encoder (kohya `lora_te2_`, diffusers `text_encoder_2.`). */
  readonly textEncoder2: readonly LoraDelta[];
}

/** The rank r of a delta (the rows of A). */
export function loraRank(d: LoraDelta): number {
  return d.down.shape[0] as number;
}

/**
 * Checks that a delta fits a weight of shape `weight` ((out, in) or (out, in, kh, kw)): A and B agree on the
 * rank, B's rows are the weight's outputs and A's columns (times its kernel) its inputs. A 1×1 convolution
 * delta fits a linear weight and the other way round (LDM's proj_in is a 1×1 convolution, diffusers' a
 * linear layer in some models). The error names the module and every shape.
 */
export function checkLoraDelta(d: LoraDelta, weight: Shape, what = d.module): void {
  const bad = (why: string) =>
    new Error(
      `LoRA delta for ${what}: ${why} (down ${formatShape(d.down.shape)}, up ${formatShape(d.up.shape)}, ` +
        `weight ${formatShape(weight)}); is the LoRA made for another model?`,
    );
  if (d.down.rank !== 2 && d.down.rank !== 4) throw bad('down must be (r, in) or (r, in, kh, kw)');
  if (d.up.rank !== 2 && !(d.up.rank === 4 && d.up.shape[2] === 1 && d.up.shape[3] === 1)) {
    throw bad('up must be (out, r) or (out, r, 1, 1)');
  }
  if (d.up.shape[1] !== d.down.shape[0]) throw bad('rank mismatch: up has a different rank than down');
  if (!Number.isFinite(d.alphaScale)) throw bad(`alpha / rank is ${d.alphaScale}`);
  if (weight.length !== 2 && weight.length !== 4) throw bad('the module has no linear or convolution weight');
  const kernel = (s: Shape) => (s.length === 4 ? [s[2], s[3]] : [1, 1]);
  const [wk, dk] = [kernel(weight), kernel(d.down.shape)];
  if (d.up.shape[0] !== weight[0]) throw bad('up rows are not the weight outputs');
  if (d.down.shape[1] !== weight[1]) throw bad('down columns are not the weight inputs');
  if (wk[0] !== dk[0] || wk[1] !== dk[1]) throw bad('kernel sizes differ');
}

/** ΔW = α/r · B·A in the weight's own layout `weight` (checked with checkLoraDelta first). */
export function loraDeltaWeight(d: LoraDelta, weight: Shape): Tensor {
  const r = loraRank(d);
  const out = d.up.shape[0] as number;
  const a = d.down.reshape([r, d.down.size / r]); // (r, in·kh·kw)
  const b = d.up.reshape([out, r]); // (out, r)
  return b.matmul(a).mul(d.alphaScale).reshape(weight);
}

/** One LoRA as a controller uses it: its deltas and how strongly it applies. */
export interface LoraUse {
  readonly deltas: readonly LoraDelta[];
  /** The strength s, fixed or per call (per step, per layer); 0 switches it off for that call. */
  readonly scale: number | ((call: AttentionCall) => number);
}

/** The projection names of the attention modules the hook sees: diffusers' Attention, then CLIP's. */
const PROJECTIONS: readonly (readonly [keyof ProjectionWeights, readonly string[]])[] = [
  ['q', ['to_q', 'q_proj']],
  ['k', ['to_k', 'k_proj']],
  ['v', ['to_v', 'v_proj']],
  ['out', ['to_out.0', 'out_proj']],
];

/** The attention layer and projection a module path names, or undefined when it is no projection. */
function projectionOf(module: string): { layer: string; proj: keyof ProjectionWeights } | undefined {
  for (const [proj, names] of PROJECTIONS) {
    for (const n of names) {
      if (module.endsWith(`.${n}`)) return { layer: module.slice(0, -n.length - 1), proj };
    }
  }
  return undefined;
}

type Slot = { delta: LoraDelta; scale: LoraUse['scale'] };

/**
 * Unmerged LoRA on the `weights` hook: each attention call's projections become W + Σ sᵢ·α/r·BᵢAᵢ, the
 * LoRAs stacking in the order given. Only attention projections are reachable this way: a delta on any
 * other module (feed-forward, proj_in, a convolution, an MLP) is refused, naming it; merge those with
 * `mergeLora`. Under autograd the update is recorded, so A and B receive gradients (training). At inference
 * each α/r·B·A is formed once and kept (memory: one weight-sized tensor per delta), so a call costs one
 * add per LoRA.
 */
export function loraController(uses: readonly LoraUse[], opts: { name?: string } = {}): Controller {
  const byLayer = new Map<string, Map<keyof ProjectionWeights, Slot[]>>();
  for (const use of uses) {
    for (const delta of use.deltas) {
      const at = projectionOf(delta.module);
      if (!at) {
        throw new Error(
          `LoRA: '${delta.module}' is not an attention projection (to_q, to_k, to_v, to_out.0, q_proj, ` +
            'k_proj, v_proj, out_proj), which the weights hook cannot reach; merge it with mergeLora',
        );
      }
      const layer = byLayer.get(at.layer) ?? new Map<keyof ProjectionWeights, Slot[]>();
      byLayer.set(at.layer, layer);
      layer.set(at.proj, [...(layer.get(at.proj) ?? []), { delta, scale: use.scale }]);
    }
  }
  // α/r·B·A of each delta, formed once (inference) so a call costs one add per LoRA, not a product too;
  // under autograd (A or B trained) it is formed in every call so that gradients reach A and B
  const formed = new Map<LoraDelta, Tensor>();
  const deltaWeight = (delta: LoraDelta, shape: Shape): Tensor => {
    if (recordsGrad(delta.down, delta.up)) return loraDeltaWeight(delta, shape);
    let dw = formed.get(delta);
    if (!dw) {
      checkLoraDelta(delta, shape);
      dw = loraDeltaWeight(delta, shape);
      formed.set(delta, dw);
    }
    return dw;
  };
  const project = (call: AttentionCall, p: Projection, slots: readonly Slot[] | undefined): Projection => {
    let weight = p.weight;
    for (const { delta, scale } of slots ?? []) {
      const s = typeof scale === 'number' ? scale : scale(call);
      if (s === 0) continue;
      checkLoraDelta(delta, p.weight.shape);
      const dw = deltaWeight(delta, p.weight.shape);
      weight = weight.add(s === 1 ? dw : dw.mul(s));
    }
    return weight === p.weight ? p : { weight, bias: p.bias };
  };
  return {
    name: opts.name ?? 'lora',
    appliesTo: (call) => byLayer.has(call.path),
    weights(call, w) {
      const layer = byLayer.get(call.path);
      if (!layer) return w;
      return {
        q: project(call, w.q, layer.get('q')),
        k: project(call, w.k, layer.get('k')),
        v: project(call, w.v, layer.get('v')),
        out: project(call, w.out, layer.get('out')),
      };
    },
  };
}

/** Whether the weights hook can carry a delta (an attention projection), else it must be merged. */
export function isAttentionProjection(d: LoraDelta): boolean {
  return projectionOf(d.module) !== undefined;
}
