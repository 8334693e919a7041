// Custom Diffusion (Kumari et al. 2023, "Multi-Concept Customization of Text-to-Image Diffusion"): a new
// concept is taught by fine-tuning only the cross-attention layers' key and value projections W_k, W_v (the
// text side, where a word meets the image) plus a new modifier token's embedding. At inference the learned
// W_k, W_v replace the model's in those layers, here through the `weights` hook; in training the first
// text token's key and value carry no gradient (diffusers' processor detaches them: the start token is
// shared by every prompt).
//
// Files: diffusers' layout, `<attention>.processor.to_k_custom_diffusion.weight` / `to_v_…` (and, when the
// queries and output were trained too, `to_q_custom_diffusion.weight`, `to_out_custom_diffusion.0.weight` /
// `.bias`), as `pytorch_custom_diffusion_weights.safetensors`.

import type { Controller, Projection, ProjectionWeights } from '../../attention/hooks.js';
import { readSafetensors, writeSafetensors } from '../../io/safetensors.js';
import type { Module } from '../../nn/index.js';
import { formatShape, recordsGrad, Tensor } from '../../tensor/index.js';

/** One layer's replaced projections (PyTorch layout (out, in)); usually k and v only. */
export type CustomDiffusionLayer = Partial<Record<keyof ProjectionWeights, Projection>>;

/** Custom Diffusion's learned projections by attention layer path (`…transformer_blocks.0.attn2`). */
export type CustomDiffusionWeights = ReadonlyMap<string, CustomDiffusionLayer>;

/**
 * Custom Diffusion on the `weights` hook (Kumari et al. 2023): the layers it holds project with its learned
 * weights instead of the model's; under autograd the first token's key and value are detached as in
 * diffusers' CustomDiffusionAttnProcessor.
 */
export function customDiffusionController(weights: CustomDiffusionWeights): Controller {
  return {
    name: 'custom-diffusion',
    appliesTo: (call) => weights.has(call.path),
    weights(call, w) {
      const l = weights.get(call.path);
      if (!l) return w;
      return { q: l.q ?? w.q, k: l.k ?? w.k, v: l.v ?? w.v, out: l.out ?? w.out };
    },
    features(_call, f) {
      if (!recordsGrad(f.k, f.v) || (f.k.shape[2] as number) < 2) return f;
      // (1, 1, Tk, 1): 0 on the first token, whose K and V keep their values but pass no gradient
      const tk = f.k.shape[2] as number;
      const keep = Tensor.from(
        Array.from({ length: tk }, (_, i) => (i === 0 ? 0 : 1)),
        [1, 1, tk, 1],
      );
      const stop = (t: Tensor) => t.mul(keep).add(t.detach().mul(keep.neg().add(1)));
      return { q: f.q, k: stop(f.k), v: stop(f.v) };
    },
  };
}

const FILE_PROJECTIONS: readonly (readonly [keyof ProjectionWeights, string])[] = [
  ['q', 'to_q_custom_diffusion'],
  ['k', 'to_k_custom_diffusion'],
  ['v', 'to_v_custom_diffusion'],
  ['out', 'to_out_custom_diffusion.0'],
];

/** The projection shapes (out, in) of every attention layer of `unet` with `to_q` … `to_out.0`. */
function attentionShapes(unet: Module): Map<string, Record<keyof ProjectionWeights, readonly number[]>> {
  const shapes = new Map<string, Record<keyof ProjectionWeights, readonly number[]>>();
  for (const [path, m] of unet.namedModules()) {
    const a = m as unknown as { projectionWeights?: () => ProjectionWeights };
    if (typeof a.projectionWeights !== 'function' || !path.endsWith('attn2')) continue;
    const w = a.projectionWeights();
    shapes.set(path, {
      q: w.q.weight.shape,
      k: w.k.weight.shape,
      v: w.v.weight.shape,
      out: w.out.weight.shape,
    });
  }
  return shapes;
}

/**
 * Reads Custom Diffusion weights in diffusers' layout, checked against `unet`'s cross-attention layers; a key
 * of another layout, a layer the UNet does not have or a wrong shape is an error naming the key.
 */
export function readCustomDiffusion(path: string, unet: Module): Map<string, CustomDiffusionLayer> {
  if (!path.endsWith('.safetensors')) {
    throw new Error(
      `${path}: attnkit reads Custom Diffusion weights as .safetensors only (pickled .bin files can run code ` +
        "when loaded); convert it, e.g. with safetensors' convert script",
    );
  }
  return customDiffusionFromTensors(readSafetensors(path).tensors, unet, path);
}

/** Custom Diffusion weights from a file's tensors (see readCustomDiffusion). */
export function customDiffusionFromTensors(
  tensors: ReadonlyMap<string, Tensor>,
  unet: Module,
  source: string,
): Map<string, CustomDiffusionLayer> {
  const shapes = attentionShapes(unet);
  const out = new Map<string, CustomDiffusionLayer>();
  for (const [key, t] of tensors) {
    const m = /^(.+)\.processor\.(to_[qkv]_custom_diffusion|to_out_custom_diffusion\.0)\.(weight|bias)$/.exec(
      key,
    );
    const [, layer, name, kind] = (m ?? []) as unknown as [string, string, string, string];
    const proj = FILE_PROJECTIONS.find(([, n]) => n === name)?.[0];
    if (!m || !proj || (kind === 'bias' && proj !== 'out')) {
      throw new Error(`${source}: key '${key}' is not part of diffusers' Custom Diffusion layout`);
    }
    const want = shapes.get(layer)?.[proj];
    if (!want)
      throw new Error(
        `${source}: key '${key}' names cross-attention layer '${layer}', which the UNet does not have`,
      );
    const shape = kind === 'bias' ? [want[0] as number] : want;
    if (t.rank !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new Error(
        `${source}: key '${key}' has shape ${formatShape(t.shape)}, the layer needs ${formatShape(shape)}`,
      );
    }
    const l = out.get(layer) ?? {};
    const p = l[proj];
    l[proj] = kind === 'bias' ? { weight: p?.weight as Tensor, bias: t } : { weight: t, bias: p?.bias };
    out.set(layer, l);
  }
  for (const [layer, l] of out) {
    for (const [proj, p] of Object.entries(l)) {
      if (!p.weight) throw new Error(`${source}: layer '${layer}' has a ${proj} bias but no weight`);
    }
  }
  return out;
}

/** Writes Custom Diffusion weights in diffusers' layout (safetensors, written whole or not at all). */
export function writeCustomDiffusion(path: string, weights: CustomDiffusionWeights): void {
  const tensors = new Map<string, Tensor>();
  for (const [layer, l] of weights) {
    for (const [proj, name] of FILE_PROJECTIONS) {
      const p = l[proj];
      if (!p) continue;
      tensors.set(`${layer}.processor.${name}.weight`, p.weight.detach());
      if (p.bias) tensors.set(`${layer}.processor.${name}.bias`, p.bias.detach());
    }
  }
  writeSafetensors(path, tensors, { metadata: { format: 'pt', method: 'custom-diffusion' } });
}
