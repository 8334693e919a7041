// Which model a command runs on: --model, else the built-in Shapes model shipped in models/shapes-v1.

import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { jsonPreview } from '../io/json-preview.js';
import type { CLIPTokenizer } from '../models/clip-tokenizer.js';
import { type JsonConfig, readConfig } from '../models/config.js';
import { BUILTIN_MODEL } from '../pipelines/builtin-model.js';
import type { SingleFileConfigOverrides } from '../pipelines/single-file.js';
import { StableDiffusion } from '../pipelines/stable-diffusion.js';

/** The package root (this file is src/cli/models.ts or dist/cli/models.js). */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export { BUILTIN_MODEL };

const TEST_MODEL = join(packageRoot, 'test', 'fixtures', 'tiny-sd-a');

/** Resolves the model folder (or single file); says honestly when the built-in model is not there yet. */
export function resolveModel(flag: string | undefined, log: (s: string) => void): string {
  if (flag) return resolve(flag);
  if (existsSync(join(BUILTIN_MODEL, 'model_index.json'))) return BUILTIN_MODEL;
  if (existsSync(join(TEST_MODEL, 'model_index.json'))) {
    log(
      'note: the built-in Shapes model (models/shapes-v1) is not trained yet; running the tiny random-weight ' +
        'test model test/fixtures/tiny-sd-a instead, so its outputs are noise. Pass --model <diffusers folder> ' +
        'to use real weights.',
    );
    return TEST_MODEL;
  }
  throw new Error('no model: pass --model <diffusers folder> (the built-in model is not installed)');
}

/**
 * Words of `prompt` that the built-in model never saw: its BPE vocabulary was learned until every word of
 * the training captions is a single token (docs/training.md), so a word it splits into several is new to it.
 */
export function unseenWords(tokenizer: CLIPTokenizer, prompt: string): string[] {
  const words = prompt.toLowerCase().match(/[a-z]+/g) ?? [];
  return [...new Set(words)].filter((w) => tokenizer.encode(w).length > 1);
}

/**
 * A diffusers folder, or a single-file checkpoint (a `.safetensors` file, original LDM layout). A single file
 * holds no tokenizer and attnkit ships no CLIP vocabulary: its tokenizer folder is `single.tokenizer`, else
 * $ATTNKIT_TOKENIZER, else a `tokenizer/` folder beside the file. `single.config` names a JSON file of config
 * overrides ({unet, vae, text_encoder, scheduler}: what the weights cannot tell).
 */
export function loadStableDiffusion(
  path: string,
  single: { tokenizer?: string; config?: string } = {},
): StableDiffusion {
  if (!(existsSync(path) && statSync(path).isFile())) {
    if (single.config) throw new Error(`--model-config is for a single-file --model; ${path} is a folder`);
    return StableDiffusion.fromPretrained(path);
  }
  const beside = join(dirname(path), 'tokenizer');
  const dir = single.tokenizer ?? process.env.ATTNKIT_TOKENIZER ?? (existsSync(beside) ? beside : undefined);
  if (!dir) {
    throw new Error(
      `${path} is a single-file checkpoint, which holds no tokenizer (and attnkit ships no CLIP vocabulary): ` +
        'pass --tokenizer <dir> (vocab.json, merges.txt; e.g. the tokenizer/ of a diffusers folder of the same ' +
        'family), set ATTNKIT_TOKENIZER, or put a tokenizer/ folder beside the file',
    );
  }
  // SDXL files: the second tokenizer from tokenizer_2/ beside the file (as a diffusers folder holds it)
  const beside2 = join(dirname(path), 'tokenizer_2');
  return StableDiffusion.fromSingleFile(path, {
    tokenizer: dir,
    ...(existsSync(beside2) ? { tokenizer2: beside2 } : {}),
    config: single.config ? readOverrides(single.config) : undefined,
  });
}

/**
 * A --model-config file: an object whose keys are among unet, vae, text_encoder, text_encoder_2 (SDXL),
 * scheduler, each an object.
 */
function readOverrides(file: string): SingleFileConfigOverrides {
  const json = readConfig(dirname(resolve(file)), basename(file));
  const out: SingleFileConfigOverrides = {};
  for (const [k, v] of Object.entries(json)) {
    if (
      !['unet', 'vae', 'text_encoder', 'text_encoder_2', 'scheduler'].includes(k) ||
      typeof v !== 'object' ||
      v === null ||
      Array.isArray(v)
    ) {
      throw new Error(
        `${file}: key ${jsonPreview(k)} must be one of unet, vae, text_encoder, text_encoder_2 (SDXL), scheduler, each an object of ` +
          'config values',
      );
    }
    out[k as keyof SingleFileConfigOverrides] = v as JsonConfig;
  }
  return out;
}

/**
 * `resolveModel` + `loadStableDiffusion`; on the built-in Shapes model, a note naming the prompt
 * words outside the Shapes world, which it draws as noise (there is no error: the prompt is still valid).
 */
export function loadModel(
  flag: string | undefined,
  log: (s: string) => void,
  prompts: readonly string[],
  single: { tokenizer?: string; config?: string } = {},
): StableDiffusion {
  const dir = resolveModel(flag, log);
  const sd = loadStableDiffusion(dir, single);
  if (dir === BUILTIN_MODEL) {
    const unseen = [...new Set(prompts.flatMap((p) => unseenWords(sd.tokenizer, p)))];
    if (unseen.length > 0) {
      log(
        `note: the built-in Shapes model never saw ${unseen.map((w) => `'${w}'`).join(', ')} in training; ` +
          'it knows shapes, colours, sizes, positions and backgrounds (attnkit eval lists prompts it was tested on)',
      );
    }
  }
  return sd;
}
