// Where a model's files are, as diffusers' and transformers' `from_pretrained(dir, subfolder=, variant=)` find
// them: `config.json` and `<weights>[.<variant>].safetensors` in `dir/subfolder`, or a sharded set named by
// `<weights>.safetensors.index[.<variant>].json` (the variant goes before the last extension, as both libraries'
// `_add_variant` puts it). Only safetensors are read; pickled weights get a message saying how to convert.

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { jsonPreview } from '../io/json-preview.js';
import { readSafetensors } from '../io/safetensors.js';
import type { Tensor } from '../tensor/index.js';
import { readConfig } from './config.js';

/** Options of every model class's `fromPretrained`. */
export interface FromPretrainedOptions {
  /** The component's folder inside `dir` (a pipeline folder's `unet`, `vae`, `text_encoder`, `tokenizer`). */
  subfolder?: string;
  /** Weights variant, e.g. `fp16`: reads `<weights>.fp16.safetensors`. */
  variant?: string;
}

/** The component folder of `dir` and `opts.subfolder`, checked to exist. */
export function pretrainedFolder(dir: string, opts: FromPretrainedOptions = {}): string {
  const folder = opts.subfolder ? join(dir, opts.subfolder) : dir;
  if (!existsSync(folder)) throw new Error(`model folder ${folder} does not exist`);
  return folder;
}

/** `name` with the variant before its last extension (diffusers' and transformers' `_add_variant`). */
export function withVariant(name: string, variant?: string): string {
  if (!variant) return name;
  const parts = name.split('.');
  return [...parts.slice(0, -1), variant, ...parts.slice(-1)].join('.');
}

/**
 * The weights of one component folder: `<baseName>[.variant].safetensors`, else the shards its index file
 * `<baseName>.safetensors.index[.variant].json` names (each key read from the shard the index gives for it).
 */
export function readPretrainedWeights(
  folder: string,
  baseName: string,
  variant?: string,
): Map<string, Tensor> {
  if (variant !== undefined && !/^[\w-]+$/.test(variant)) {
    throw new Error(
      `variant ${jsonPreview(variant)} must be a plain name such as "fp16" (letters, digits, _ or -)`,
    );
  }
  const file = withVariant(`${baseName}.safetensors`, variant);
  const path = join(folder, file);
  if (existsSync(path)) return readSafetensors(path).tensors;
  const index = withVariant(`${baseName}.safetensors.index.json`, variant);
  if (existsSync(join(folder, index))) return readShards(folder, index);
  const files = readdirSync(folder);
  const pickle = files.find((f) => f.endsWith('.bin') || f.endsWith('.ckpt') || f.endsWith('.pt'));
  const others = files.filter((f) => f.startsWith(`${baseName}.`) && f.endsWith('.safetensors'));
  throw new Error(
    pickle && others.length === 0
      ? `${folder}: found ${pickle} but attnkit reads only safetensors weights; convert it ` +
          '(e.g. with diffusers: pipe.save_pretrained(dir, safe_serialization=True))'
      : `${folder}: no weights file ${file} (nor ${index})` +
          (others.length > 0 ? `; found ${others.join(', ')}: give the matching variant` : ''),
  );
}

/** A sharded set: the index's `weight_map` (key → shard file), every shard read once, every key checked. */
function readShards(folder: string, index: string): Map<string, Tensor> {
  const where = join(folder, index);
  const map = readConfig(folder, index)['weight_map'];
  if (typeof map !== 'object' || map === null || Array.isArray(map)) {
    throw new Error(`${where}: 'weight_map' must be an object mapping each weight's key to its shard file`);
  }
  const byFile = new Map<string, string[]>();
  for (const [key, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || !/^[\w.-]+\.safetensors$/.test(shard) || shard.startsWith('.')) {
      throw new Error(
        `${where}: the shard of ${jsonPreview(key)} is ${jsonPreview(shard)}, expected a .safetensors file name ` +
          'in the same folder',
      );
    }
    byFile.set(shard, [...(byFile.get(shard) ?? []), key]);
  }
  const all = new Map<string, Tensor>();
  for (const [shard, keys] of byFile) {
    if (!existsSync(join(folder, shard)))
      throw new Error(`${where}: shard ${shard} is missing from ${folder}`);
    const tensors = readSafetensors(join(folder, shard)).tensors;
    for (const key of keys) {
      const t = tensors.get(key);
      if (!t) throw new Error(`${where}: ${jsonPreview(key)} is not in its shard ${shard}`);
      all.set(key, t);
    }
    const extra = [...tensors.keys()].find((k) => map[k as keyof typeof map] !== shard);
    if (extra !== undefined) {
      throw new Error(`${where}: ${shard} holds ${jsonPreview(extra)}, which the index does not map to it`);
    }
  }
  return all;
}
