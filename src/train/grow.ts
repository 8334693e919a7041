// Starting a deeper UNet from a trained shallower one (progressive growing, as in Net2Net: Chen et al. 2016,
// and the "grow the network" schedules of progressive GANs, Karras et al. 2018).
//
// A UNet2DConditionModel with block_out_channels [c₀, …, c_{n−1}] and one more level appended
// [c₀, …, c_{n−1}, c_{n−1}] keeps every tensor shape of the shallower one under this name map:
//
//   down_blocks.i  → down_blocks.i          (the old last block gains a down-sampler: new)
//   down_blocks.n  → new (the added level)
//   mid_block      → mid_block               (now one resolution lower)
//   up_blocks.0    → new (the added level)
//   up_blocks.i    → up_blocks.(i + 1)
//   conv_in, time_embedding, conv_norm_out, conv_out, and the text encoder: unchanged
//
// because an up block's ResNets see (previous output, skip) channel pairs that depend only on its own and its
// neighbours' widths, which the appended level repeats. Everything that maps is copied; the rest keeps its
// fresh initialisation. The new path (down-sampler, 4 × 4 level, up block 0) starts untrained, so the grown
// model must be trained on before it draws well; what it saves is relearning colours, shapes and words.

import type { Module, Tensor } from '../index.js';

export interface GrowReport {
  /** Parameters copied from the source (new name ← old name where they differ). */
  copied: number;
  /** Parameters of the new model with no source tensor (fresh initialisation). */
  fresh: string[];
  /** Source tensors that found no place in the new model. */
  unused: string[];
}

/** The name a parameter of the grown UNet had in the UNet it grew from (`levels` added), or null if new. */
export function sourceName(name: string, levels: number): string | null {
  const up = /^(.*?unet\.)up_blocks\.(\d+)\.(.*)$/.exec(name);
  if (up) {
    const i = Number(up[2]) - levels;
    return i < 0 ? null : `${up[1]}up_blocks.${i}.${up[3]}`;
  }
  return name;
}

/**
 * Copies `source` tensors (checkpoint names, e.g. 'unet.conv_in.weight' or 'text_encoder.…') into the
 * modules' parameters, for a UNet grown by `levels` levels (0: same architecture). A source tensor whose
 * shape differs from its target is an error: the map above would be wrong for this pair of configs.
 */
export function growFrom(
  modules: Record<string, Module>,
  source: Map<string, Tensor>,
  levels: number,
): GrowReport {
  const used = new Set<string>();
  const fresh: string[] = [];
  let copied = 0;
  for (const [prefix, m] of Object.entries(modules)) {
    for (const [name, p] of m.namedParameters(prefix)) {
      const from = sourceName(name, levels);
      const t = from === null ? undefined : source.get(from);
      if (!t) {
        fresh.push(name);
        continue;
      }
      if (t.shape.join() !== p.value.shape.join()) {
        throw new Error(
          `growFrom: ${name} has shape [${p.value.shape.join(', ')}] but its source ${from} has ` +
            `[${t.shape.join(', ')}]; a grown UNet must repeat its last width (e.g. [32, 64] → [32, 64, 64])`,
        );
      }
      p.value = t.requireGrad(p.value.requiresGrad);
      used.add(from as string);
      copied++;
    }
  }
  const unused = [...source.keys()].filter((k) => !used.has(k));
  return { copied, fresh, unused };
}
