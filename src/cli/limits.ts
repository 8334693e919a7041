// The limits of the CLI's options that size an allocation or a loop, checked when the command line is read
// (args.ts' intIn / floatIn). docs/bad-input.md lists them with the messages they give.

import type { Bounds } from './args.js';

/** An image side in pixels: 4096 px is 512 latent pixels on Stable Diffusion, 1024 on the built-in model. */
export const IMAGE_SIDE: Bounds = {
  min: 1,
  max: 4096,
  unit: 'pixels',
  hint: "ask for a smaller image, a multiple of the model's VAE factor (8 for Stable Diffusion)",
};

/** Denoising or inversion steps: a scheduler has at most num_train_timesteps (1000 in Stable Diffusion). */
export const STEPS: Bounds = { min: 1, max: 1000, hint: '25 to 50 is usual' };

/** The batch of an exported graph (2 for classifier-free guidance). */
export const EXPORT_BATCH: Bounds = { min: 1, max: 64, hint: 'export with 2 for classifier-free guidance' };

/** Prompts or examples per generate call / training step. */
export const BATCH: Bounds = { min: 1, max: 256, hint: 'a smaller batch runs the same work in more calls' };

/** Prompts, scenes or runs a command works through. */
export const COUNT: Bounds = { min: 1, max: 100_000 };

/** Layers per block or of the text encoder, and the channel counts of a new training run's models. */
export const LAYERS: Bounds = { min: 1, max: 16 };
export const CHANNELS: Bounds = { min: 1, max: 4096 };

/** onnxruntime threads: the upper bound is setThreads' (src/kernels). */
export const THREADS: Bounds = {
  min: 1,
  max: Number.POSITIVE_INFINITY,
  hint: 'leave it out to use every core',
};

/** A seed of the Philox generator given as a JavaScript number. */
export const SEED: Bounds = { min: 0, max: Number.MAX_SAFE_INTEGER };

/** The classifier-free guidance scale. */
export const GUIDANCE: Bounds = {
  min: 0,
  max: Number.POSITIVE_INFINITY,
  hint: '1 or less turns guidance off; Stable Diffusion uses 7.5',
};

/** A threshold on maps normalised to [0, 1]. */
export const UNIT: Bounds = { min: 0, max: 1 };

/** Self-attention components drawn by `maps --self-components`. */
export const COMPONENTS: Bounds = { min: 1, max: 64 };
