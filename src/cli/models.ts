// Which model a command runs on: --model, else the built-in Shapes model shipped in models/shapes-v1.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CLIPTokenizer } from '../models/clip-tokenizer.js';
import { StableDiffusion } from '../pipelines/stable-diffusion.js';

/** The package root (this file is src/cli/models.ts or dist/cli/models.js). */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const BUILTIN_MODEL = join(packageRoot, 'models', 'shapes-v1');
const TEST_MODEL = join(packageRoot, 'test', 'fixtures', 'tiny-sd-a');

/** Resolves the model folder; says honestly when the built-in model is not there yet. */
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
 * `resolveModel` + `StableDiffusion.fromPretrained`; on the built-in Shapes model, a note naming the prompt
 * words outside the Shapes world, which it draws as noise (there is no error: the prompt is still valid).
 */
export function loadModel(
  flag: string | undefined,
  log: (s: string) => void,
  prompts: readonly string[],
): StableDiffusion {
  const dir = resolveModel(flag, log);
  const sd = StableDiffusion.fromPretrained(dir);
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
