// Reading LoRA files (safetensors only) in the three layouts people share (lora-keys.ts) into a LoraAdapter:
// every key parsed, every module resolved against the model it adapts, every delta checked against that
// module's weight, before anything is returned. Reading never changes the model; merging it is a separate,
// all-or-nothing step (methods/weight/lora-merge.ts).

import { existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { readSafetensors } from '../io/safetensors.js';
import { checkLoraDelta, type LoraAdapter, type LoraDelta } from '../methods/weight/lora.js';
import type { Module } from '../nn/index.js';
import { Parameter } from '../nn/index.js';
import { Tensor } from '../tensor/index.js';
import { ldmUNetMapKey } from './ldm-keys.js';
import {
  type LoraKey,
  type LoraLayout,
  type LoraPart,
  loraGroup,
  loraLayoutOf,
  parseLoraKey,
} from './lora-keys.js';

/** The model parts a LoRA file is read against; `unetLayersPerBlock` resolves kohya's LDM-style names. */
export interface LoraReadTargets {
  unet: Module;
  textEncoder?: Module;
  textEncoder2?: Module;
  /** The UNet's `layers_per_block` (LDM's flat block indices need it); default 2, as Stable Diffusion. */
  unetLayersPerBlock?: number;
}

const PART_NAMES: Record<LoraPart, string> = {
  unet: 'the UNet',
  textEncoder: 'the text encoder',
  textEncoder2: 'the second text encoder',
};

/** Every module with a weight, by its path and by kohya's flattened name ('.' → '_'). */
function weightedModules(model: Module): { byPath: Map<string, Parameter>; byFlat: Map<string, string> } {
  const byPath = new Map<string, Parameter>();
  const byFlat = new Map<string, string>();
  for (const [path, m] of model.namedModules()) {
    const w = (m as unknown as { weight?: unknown }).weight;
    if (!(w instanceof Parameter)) continue;
    byPath.set(path, w);
    byFlat.set(path.replaceAll('.', '_'), path);
  }
  return { byPath, byFlat };
}

/** LDM ResBlock / sampler parts as kohya flattens them → the LDM key's dotted part. */
const LDM_FLAT_PARTS: readonly (readonly [string, string])[] = [
  ['in_layers_2', 'in_layers.2'],
  ['out_layers_3', 'out_layers.3'],
  ['emb_layers_1', 'emb_layers.1'],
  ['skip_connection', 'skip_connection'],
  ['op', 'op'],
  ['conv', 'conv'],
];

/**
 * kohya's LDM-style UNet name (`input_blocks_4_1_transformer_blocks_0_attn1_to_q`, `input_blocks_1_0_in_layers_2`)
 * → the diffusers module path, through the LDM key map single files use; undefined when it is none.
 */
function ldmModule(
  flat: string,
  layersPerBlock: number,
  byFlat: ReadonlyMap<string, string>,
): string | undefined {
  const m =
    /^(input_blocks|output_blocks)_(\d+)_(\d+)_(.+)$/.exec(flat) ?? /^(middle_block)_(\d+)_(.+)$/.exec(flat);
  if (!m) return undefined;
  const head = m[1] === 'middle_block' ? `middle_block.${m[2]}` : `${m[1]}.${m[2]}.${m[3]}`;
  const rest = (m[1] === 'middle_block' ? m[3] : m[4]) as string;
  const map = ldmUNetMapKey(layersPerBlock);
  const probe = Tensor.zeros([1]);
  try {
    const part = LDM_FLAT_PARTS.find(([f]) => f === rest);
    if (part) return (map(`${head}.${part[1]}.weight`, probe)[0]?.[0] ?? '').replace(/\.weight$/, '');
    const prefix = (map(`${head}.x.weight`, probe)[0]?.[0] ?? '').replace(/\.x\.weight$/, '');
    return byFlat.get(`${prefix.replaceAll('.', '_')}_${rest}`);
  } catch {
    return undefined;
  }
}

function pickled(path: string): Error {
  return new Error(
    `${path}: attnkit reads LoRA files as .safetensors only (pickled .bin / .pt / .ckpt files can run code ` +
      "when loaded); convert it, e.g. with safetensors' convert script",
  );
}

/**
 * Reads a LoRA file (kohya-ss, PEFT / diffusers, or diffusers ≤ 0.23 layout) against the model parts it
 * adapts. Errors name the key and the module: a key of no known layout, a module the model does not have
 * (a LoRA for another architecture), a missing A or B, a rank mismatch or a shape that does not fit.
 */
export function readLora(path: string, targets: LoraReadTargets): LoraAdapter & { layout: LoraLayout } {
  if (!path.endsWith('.safetensors')) throw pickled(path);
  if (!existsSync(path) || !statSync(path).isFile()) throw new Error(`LoRA file ${path} does not exist`);
  const { tensors } = readSafetensors(path);
  return loraFromTensors(tensors, targets, basename(path));
}

/** A LoraAdapter from a LoRA file's tensors (see readLora); `source` names the file in errors. */
export function loraFromTensors(
  tensors: ReadonlyMap<string, Tensor>,
  targets: LoraReadTargets,
  source: string,
): LoraAdapter & { layout: LoraLayout } {
  const layout = loraLayoutOf([...tensors.keys()], source);
  const groups = new Map<
    string,
    { key: LoraKey; down?: Tensor; up?: Tensor; alpha?: Tensor; names: string[] }
  >();
  for (const [name, t] of tensors) {
    const k = parseLoraKey(name, layout, source);
    const g = groups.get(loraGroup(k)) ?? { key: k, names: [] };
    g[k.tensor] = t;
    g.names.push(name);
    groups.set(loraGroup(k), g);
  }
  const models = new Map<LoraPart, ReturnType<typeof weightedModules>>();
  const deltas: Record<LoraPart, LoraDelta[]> = { unet: [], textEncoder: [], textEncoder2: [] };
  for (const g of groups.values()) {
    const { part } = g.key;
    const first = g.names[0] as string;
    const model = targets[part];
    if (!model)
      throw new Error(`${source}: key '${first}' adapts ${PART_NAMES[part]}, which this model does not have`);
    const mods = models.get(part) ?? weightedModules(model);
    models.set(part, mods);
    const module = g.key.flat
      ? (mods.byFlat.get(g.key.module) ??
        (part === 'unet' ? ldmModule(g.key.module, targets.unetLayersPerBlock ?? 2, mods.byFlat) : undefined))
      : g.key.module;
    const weight = module === undefined ? undefined : mods.byPath.get(module);
    if (module === undefined || !weight) {
      throw new Error(
        `${source}: key '${first}' names module '${module ?? g.key.module}', which ${PART_NAMES[part]} does not ` +
          'have; is the LoRA made for another model?',
      );
    }
    if (!g.down || !g.up) {
      throw new Error(
        `${source}: module '${module}' has ${g.down ? 'no up (B)' : 'no down (A)'} tensor (key '${first}')`,
      );
    }
    const alphaScale = g.alpha ? alphaOf(g.alpha, g.down, source, first) : 1;
    const delta: LoraDelta = { module, down: g.down, up: g.up, alphaScale };
    try {
      checkLoraDelta(delta, weight.shape, `${PART_NAMES[part]} module '${module}' (key '${first}')`);
    } catch (e) {
      throw new Error(`${source}: ${(e as Error).message}`);
    }
    deltas[part].push(delta);
  }
  return { name: source, layout, ...deltas };
}

function alphaOf(alpha: Tensor, down: Tensor, source: string, key: string): number {
  if (alpha.size !== 1)
    throw new Error(`${source}: alpha of '${key}' has ${alpha.size} values, expected one`);
  const a = alpha.item();
  if (!Number.isFinite(a)) throw new Error(`${source}: alpha of '${key}' is ${a}`);
  return a / (down.shape[0] as number);
}
