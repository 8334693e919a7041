// Reading a diffusers model folder: model_index.json, then each component's config and weights.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonPreview } from '../io/json-preview.js';
import { readSafetensors } from '../io/safetensors.js';
import { type JsonConfig, readConfig } from '../models/config.js';
import { checkSchedulerConfig, parseSchedulerConfig } from '../schedulers/index.js';
import type { Tensor } from '../tensor/index.js';

export const SUPPORTED_PIPELINES = ['StableDiffusionPipeline'];

export interface ModelIndex {
  className: string;
  components: Record<string, [string, string]>;
}

export function readModelIndex(dir: string): ModelIndex {
  if (!existsSync(dir)) throw new Error(`model folder ${dir} does not exist`);
  const path = join(dir, 'model_index.json');
  if (!existsSync(path)) {
    throw new Error(
      `${dir} has no model_index.json: attnkit loads diffusers model folders ` +
        '(model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)',
    );
  }
  const json = readConfig(dir, 'model_index.json');
  const className = json['_class_name'];
  if (typeof className !== 'string' || !SUPPORTED_PIPELINES.includes(className)) {
    throw new Error(
      `${path}: _class_name ${jsonPreview(className)} is not a pipeline attnkit can load ` +
        `(supported: ${SUPPORTED_PIPELINES.join(', ')})`,
    );
  }
  const components: Record<string, [string, string]> = {};
  for (const name of ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler']) {
    const entry = json[name];
    if (!Array.isArray(entry) || entry.length !== 2 || entry.some((x) => typeof x !== 'string')) {
      throw new Error(
        `${path}: component '${name}' is ${entry === undefined ? 'missing' : jsonPreview(entry)} ` +
          '(expected ["library", "ClassName"])',
      );
    }
    components[name] = entry as [string, string];
  }
  return { className, components };
}

/** Weights of one component: `<name>.safetensors` (or a sharded set), with an optional variant (fp16). */
export function readComponentWeights(dir: string, baseName: string, variant?: string): Map<string, Tensor> {
  const file = variant ? `${baseName}.${variant}.safetensors` : `${baseName}.safetensors`;
  const path = join(dir, file);
  if (existsSync(path)) return readSafetensors(path).tensors;
  const files = existsSync(dir) ? readdirSync(dir) : [];
  const shards = files.filter((f) => f.startsWith(`${baseName}-`) && f.endsWith('.safetensors')).sort();
  if (shards.length > 0) {
    const all = new Map<string, Tensor>();
    for (const s of shards) for (const [k, v] of readSafetensors(join(dir, s)).tensors) all.set(k, v);
    return all;
  }
  const pickle = files.find((f) => f.endsWith('.bin') || f.endsWith('.ckpt') || f.endsWith('.pt'));
  throw new Error(
    pickle
      ? `${dir}: found ${pickle} but attnkit reads only safetensors weights; convert it ` +
          '(e.g. with diffusers: pipe.save_pretrained(dir, safe_serialization=True))'
      : `${dir}: no weights file ${file}`,
  );
}

/**
 * One component's config. The scheduler's `scheduler_config.json` is read as diffusers writes it (Python's
 * `-Infinity` / `NaN`) and checked now, naming the file and the key (checkSchedulerConfig), not when sampling.
 */
export function componentConfig(dir: string, name: string, file = 'config.json'): JsonConfig {
  if (file !== 'scheduler_config.json') return readConfig(join(dir, name), file);
  const path = join(dir, name, file);
  if (!existsSync(path))
    throw new Error(`missing ${path}: a diffusers model folder needs ${file} in ${join(dir, name)}`);
  const config = parseSchedulerConfig(readFileSync(path, 'utf8'), path);
  checkSchedulerConfig(config, path);
  return config as JsonConfig;
}
