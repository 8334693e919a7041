// LoRA merged into the weights (the fast path: a merged LoRA costs nothing per step): W ← W + s·α/r·B·A for
// every module a LoRA names, attention or not (feed-forward, proj_in / proj_out, ResNet convolutions = LoCon,
// the text encoder's MLP). Every delta is checked before any weight changes, so a failed merge leaves the
// model as it was; unmerging puts the very tensors back that were there before (bit for bit).

import { type Module, Parameter } from '../../nn/index.js';
import type { Tensor } from '../../tensor/index.js';
import { checkLoraDelta, type LoraAdapter, type LoraDelta, loraDeltaWeight } from './lora.js';

/** A merge that can be undone. */
export interface MergedLora {
  /** The modules whose weights changed. */
  readonly modules: readonly string[];
  /**
   * Restores the weights: the original tensors where nothing changed them since the merge (bit for bit),
   * else the current weight minus this merge's update.
   */
  unmerge(): void;
}

/** The `weight` parameter of every module of `model`, by module path. */
function weightsByPath(model: Module): Map<string, Parameter> {
  const out = new Map<string, Parameter>();
  for (const [path, m] of model.namedModules()) {
    const w = (m as unknown as { weight?: unknown }).weight;
    if (w instanceof Parameter) out.set(path, w);
  }
  return out;
}

/**
 * Merges LoRAs into `model` (one part: the UNet or a text encoder): W ← W + Σ sᵢ·α/r·BᵢAᵢ, several LoRAs
 * stacking with their own scales. All deltas are checked against their modules first; on any error nothing
 * has changed. `what` names the model part in errors.
 */
export function mergeLora(
  model: Module,
  uses: readonly { deltas: readonly LoraDelta[]; scale: number }[],
  what = 'the model',
): MergedLora {
  // check everything and compute the new weights before touching any
  const weights = weightsByPath(model);
  const updates = new Map<Parameter, { path: string; delta: Tensor | undefined }>();
  for (const { deltas, scale } of uses) {
    if (!Number.isFinite(scale)) throw new Error(`LoRA: scale ${scale} is not a finite number`);
    for (const d of deltas) {
      const p = weights.get(d.module);
      if (!p)
        throw new Error(
          `LoRA: ${what} has no module '${d.module}' with a weight; is the LoRA made for another model?`,
        );
      checkLoraDelta(d, p.shape, `${what} '${d.module}'`);
      const u = updates.get(p) ?? { path: d.module, delta: undefined };
      const dw = loraDeltaWeight(d, p.shape).mul(scale);
      u.delta = u.delta ? u.delta.add(dw) : dw;
      updates.set(p, u);
    }
  }
  const done: { p: Parameter; before: Tensor; after: Tensor; delta: Tensor }[] = [];
  for (const [p, { delta }] of updates) {
    if (!delta) continue;
    const before = p.value;
    const after = before.add(delta);
    done.push({ p, before, after, delta });
  }
  for (const { p, after } of done) p.value = after;
  return {
    modules: [...updates.values()].map((u) => u.path),
    unmerge() {
      for (const { p, before, after, delta } of done)
        p.value = p.value === after ? before : p.value.sub(delta);
      done.length = 0;
    },
  };
}

/** The parts of a Stable Diffusion model a LoRA file can adapt. */
export interface LoraTargets {
  unet: Module;
  textEncoder?: Module;
  textEncoder2?: Module;
}

/**
 * Merges LoRA files' deltas into each model part they adapt (UNet, text encoder(s)); one undo for all.
 * A part the LoRAs adapt but `targets` lacks is an error; nothing is merged then.
 */
export function mergeLoraAdapters(
  targets: LoraTargets,
  uses: readonly {
    adapter: LoraAdapter;
    scale: number;
  }[],
): MergedLora {
  const parts = [
    ['unet', 'the UNet', targets.unet],
    ['textEncoder', 'the text encoder', targets.textEncoder],
    ['textEncoder2', 'the second text encoder', targets.textEncoder2],
  ] as const;
  for (const { adapter } of uses) {
    for (const [key, what, model] of parts) {
      if (adapter[key].length > 0 && !model) {
        throw new Error(`LoRA ${adapter.name}: adapts ${what}, which this model does not have`);
      }
    }
  }
  const merged: MergedLora[] = [];
  try {
    for (const [key, what, model] of parts) {
      if (!model) continue;
      merged.push(
        mergeLora(
          model,
          uses.map((u) => ({ deltas: u.adapter[key], scale: u.scale })),
          what,
        ),
      );
    }
  } catch (e) {
    for (const m of [...merged].reverse()) m.unmerge();
    throw e;
  }
  return {
    modules: merged.flatMap((m) => m.modules),
    unmerge: () => {
      for (const m of [...merged].reverse()) m.unmerge();
    },
  };
}
