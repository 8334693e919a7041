// attnkit generate on an SD3-style folder (model_index.json StableDiffusion3Pipeline): the MM-DiT with flow
// matching (pipelines/sd3.ts). generate.ts dispatches here; the flags that only a UNet model takes are refused,
// each by name.

import type { Controller } from '../attention/index.js';
import { writePng } from '../io/png.js';
import { progressBar } from '../io/progress.js';
import { TokenMerging } from '../methods/application/token-merging.js';
import { StableDiffusion3 } from '../pipelines/sd3.js';
import { efficiencyControllers } from './efficiency.js';
import { log } from './options.js';

/** What generate's flags give an SD3-style model. */
export interface DiTGenerateRequest {
  dir: string;
  prompt: string;
  out: string;
  seed: number;
  steps: number;
  guidance: number;
  negative?: string | undefined;
  width?: number | undefined;
  height?: number | undefined;
  attention?: string | undefined;
  /** Token merging ratio (ToMe on the image stream of every joint block). */
  tome?: number | undefined;
  /** Reuse every joint block for n − 1 of each n steps (block caching). */
  blockCache?: number | undefined;
  quiet: boolean;
}

/** Flags of `generate` that an SD3-style model does not take (UNet samplers, SDXL, LoRA, guidance…). */
const UNET_ONLY: readonly [string, string][] = [
  ['scheduler', '--scheduler (it samples with its flow-matching scheduler)'],
  ['guidanceRescale', '--guidance-rescale'],
  ['originalSize', '--original-size'],
  ['cropTopLeft', '--crop-top-left'],
  ['targetSize', '--target-size'],
  ['lora', '--lora'],
  ['excite', '--excite'],
  ['box', '--box'],
  ['paint', '--paint'],
];

/** Refuses the UNet-only flags that were given, naming them. */
export function checkDiTFlags(flags: object): void {
  const given = UNET_ONLY.filter(([k]) => (flags as Record<string, unknown>)[k] !== undefined).map(
    ([, s]) => s,
  );
  if (given.length > 0)
    throw new Error(`generate: an SD3-style (MM-DiT) model does not take ${given.join(', ')}; drop them`);
}

/**
 * A controller made for the UNet, set up for a DiT: ToMe (tomesd) counts a block's downsampling from the UNet's
 * input latents, read at its first ResNet block, which an MM-DiT has none of; its joint blocks all run on the one
 * patch grid, so counting from the largest attention merges in every block, as tomesd merges in a UNet's
 * full-resolution blocks. Every other controller is returned as it is.
 */
export function forDiT(c: Controller): Controller {
  if (!(c instanceof TokenMerging) || c.downsampleFrom !== 'input') return c;
  return new TokenMerging({
    ratio: c.ratio,
    maxDownsample: c.maxDownsample,
    downsampleFrom: 'largest-attention',
    sx: c.sx,
    sy: c.sy,
    useRand: c.useRand,
    seed: c.seed,
    mergeAttn: c.branches.includes('attn1'),
    mergeCrossattn: c.branches.includes('attn2'),
    mergeMlp: c.branches.includes('ff'),
  });
}

/** Text to image with the SD3 pipeline, written as a PNG. */
export function generateDiT(r: DiTGenerateRequest): void {
  const t0 = performance.now();
  const model = StableDiffusion3.fromPretrained(r.dir);
  const bar = progressBar('denoising', r.steps, { quiet: r.quiet });
  const { images } = model.generate({
    prompt: r.prompt,
    ...(r.negative !== undefined ? { negativePrompt: r.negative } : {}),
    seed: r.seed,
    steps: r.steps,
    guidanceScale: r.guidance,
    ...(r.width !== undefined ? { width: r.width } : {}),
    ...(r.height !== undefined ? { height: r.height } : {}),
    controllers: efficiencyControllers({
      ...(r.attention !== undefined ? { attention: r.attention } : {}),
      ...(r.tome !== undefined ? { tome: r.tome } : {}),
      ...(r.blockCache !== undefined ? { blockCache: r.blockCache } : {}),
    }).map(forDiT),
    onStep: (e) => bar.update(e.step + 1),
  });
  bar.stop();
  writePng(r.out, images);
  log(
    `wrote ${r.out} (${images.shape[3]}×${images.shape[2]}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
}
