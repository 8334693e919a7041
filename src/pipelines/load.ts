// Reading a diffusers model folder: model_index.json, then each component's config and weights.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonPreview } from '../io/json-preview.js';
import { type JsonConfig, readConfig } from '../models/config.js';
import { checkSchedulerConfig, parseSchedulerConfig } from '../schedulers/index.js';

export const SUPPORTED_PIPELINES = ['StableDiffusionPipeline', 'StableDiffusionXLPipeline'];

export interface ModelIndex {
  className: string;
  components: Record<string, [string, string]>;
  /** SDXL only: `force_zeros_for_empty_prompt` (diffusers' default true). */
  forceZerosForEmptyPrompt?: boolean;
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
  const xl = className === 'StableDiffusionXLPipeline';
  const names = ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler'];
  for (const name of xl ? [...names, 'text_encoder_2', 'tokenizer_2'] : names) {
    const entry = json[name];
    if (!Array.isArray(entry) || entry.length !== 2 || entry.some((x) => typeof x !== 'string')) {
      throw new Error(
        `${path}: component '${name}' is ${entry === undefined ? 'missing' : jsonPreview(entry)} ` +
          '(expected ["library", "ClassName"])',
      );
    }
    components[name] = entry as [string, string];
  }
  if (!xl) return { className, components };
  const zeros = json['force_zeros_for_empty_prompt'] ?? true;
  if (typeof zeros !== 'boolean') {
    throw new Error(`${path}: force_zeros_for_empty_prompt must be true or false, got ${jsonPreview(zeros)}`);
  }
  return { className, components, forceZerosForEmptyPrompt: zeros };
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
