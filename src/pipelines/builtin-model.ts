// Where the built-in Shapes model lives: models/shapes-v1 at the package root, shipped in the npm package, so
// `StableDiffusion.fromPretrained()` runs on a fresh machine with no download.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder of the built-in model: a small text-to-image Stable Diffusion (UNet, VAE, CLIP text encoder,
 * BPE tokenizer, DDIM scheduler) that attnkit trains itself on the Shapes world (docs/training.md), in
 * diffusers layout. `StableDiffusion.fromPretrained()` with no folder loads it.
 */
export const BUILTIN_MODEL: string = resolve(
  dirname(fileURLToPath(import.meta.url)), // src/pipelines or dist/pipelines
  '..',
  '..',
  'models',
  'shapes-v1',
);
