// What an entry of the edit command's method table is (EDIT_METHODS in edit.ts; the feature-level editors
// are in edit-features.ts): its own options, and a run that reads them with its typed parser.

import type { Option } from 'commander';
import type { StableDiffusion } from '../pipelines/stable-diffusion.js';
import type { Tensor } from '../tensor/index.js';

/** What every edit method is handed: the options all methods share, parsed. */
export interface EditContext {
  sd: StableDiffusion;
  source: string;
  target: string;
  seed: number;
  steps: number;
  guidance: number;
  /** The image to edit (1, 3, H, W) in [-1, 1], when --image was given (methods that invert it). */
  image?: { path: string; pixels: Tensor };
  log: (s: string) => void;
  onStep: (step: number) => void;
}

export interface EditMethod {
  description: string;
  /** Options only this method reads (shown in --help). */
  options?: readonly Option[];
  /** Runs the edit; `flags` are the command's parsed options, of which the method reads its own. */
  run(ctx: EditContext, flags: object): { source: Tensor; target: Tensor };
}
