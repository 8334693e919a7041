// attnkit generate "<prompt>" — text to image.

import type { Command } from 'commander';
import { writePng } from '../io/png.js';
import { progressBar } from '../io/progress.js';
import { isSD3Folder } from '../pipelines/sd3.js';
import type { SchedulerName } from '../schedulers/index.js';
import { float, intIn, intPairIn } from './args.js';
import { addEfficiencyOptions, type EfficiencyFlags, efficiencyControllers } from './efficiency.js';
import { checkDiTFlags, generateDiT } from './generate-dit.js';
import { addGuidanceOptions, type GuidanceFlags, guidanceFromFlags } from './guidance-options.js';
import { IMAGE_SIDE } from './limits.js';
import { addLoraOptions, applyLoras, type LoraFlags } from './lora-options.js';
import { loadModel } from './models.js';
import {
  addModelOption,
  addRunOptions,
  addSamplingOptions,
  log,
  parseModel,
  parseSampling,
  parseSingleFile,
  startRun,
} from './options.js';

interface GenerateFlags extends EfficiencyFlags, LoraFlags, GuidanceFlags {
  out: string;
  guidanceRescale?: number;
  width?: number;
  height?: number;
  negative?: string;
  scheduler?: SchedulerName;
  originalSize?: [number, number];
  cropTopLeft?: [number, number];
  targetSize?: [number, number];
}

/** SDXL's micro-conditioning sizes and crop, in pixels (a photo's original size may exceed IMAGE_SIDE). */
const MICRO = { min: 0, max: 65_536, unit: 'pixels' };

export function registerGenerate(program: Command): void {
  const cmd = program
    .command('generate')
    .description('generate an image from a prompt')
    .argument('<prompt>', 'the text prompt');
  addModelOption(cmd).option('-o, --out <file>', 'output PNG', 'out.png');
  addSamplingOptions(cmd, { steps: 25, guidance: 7.5 })
    .option(
      '--guidance-rescale <phi>',
      'rescale the guided prediction toward the conditional one’s spread (0–1; 0.7 in Lin et al. 2024)',
      float('--guidance-rescale'),
    )
    .option('--width <px>', 'image width', intIn('--width', IMAGE_SIDE))
    .option('--height <px>', 'image height', intIn('--height', IMAGE_SIDE))
    .option('--negative <text>', 'negative prompt')
    .option('--scheduler <name>', 'ddim | ddpm | euler | dpmpp2m | pndm (default: the model folder’s)')
    .option(
      '--original-size <h,w>',
      'SDXL micro-conditioning: original image size (default: the image size)',
      intPairIn('--original-size', MICRO),
    )
    .option(
      '--crop-top-left <y,x>',
      'SDXL micro-conditioning: crop top-left corner (default: 0,0)',
      intPairIn('--crop-top-left', MICRO),
    )
    .option(
      '--target-size <h,w>',
      'SDXL micro-conditioning: target size (default: the image size)',
      intPairIn('--target-size', MICRO),
    );
  addRunOptions(cmd);
  addLoraOptions(cmd);
  addGuidanceOptions(cmd);
  addEfficiencyOptions(cmd).action((prompt: string, f: GenerateFlags) => {
    const run = startRun(f, { '--out': f.out });
    const { seed, steps, guidance } = parseSampling(f);
    const dir = parseModel(f);
    if (dir && isSD3Folder(dir)) {
      checkDiTFlags(f);
      const { negative, width, height, attention, tome, blockCache } = f;
      return generateDiT({
        dir,
        prompt,
        out: f.out,
        seed,
        steps,
        guidance,
        quiet: run.quiet,
        negative,
        width,
        height,
        attention,
        tome,
        blockCache,
      });
    }
    const controllers = efficiencyControllers(f);
    const t0 = performance.now();
    const sd = loadModel(parseModel(f), log, [prompt], parseSingleFile(f));
    applyLoras(sd, f, log);
    const size = [f.height ?? sd.defaultSize, f.width ?? sd.defaultSize] as const;
    const steer = guidanceFromFlags(sd, prompt, f, size);
    const bar = progressBar('denoising', steps, { quiet: run.quiet });
    const { images } = sd.generate({
      prompt,
      negativePrompt: f.negative,
      steps,
      guidanceScale: guidance,
      ...(f.guidanceRescale !== undefined ? { guidanceRescale: f.guidanceRescale } : {}),
      seed,
      width: f.width,
      height: f.height,
      scheduler: f.scheduler,
      ...(f.originalSize ? { originalSize: f.originalSize } : {}),
      ...(f.cropTopLeft ? { cropsCoordsTopLeft: f.cropTopLeft } : {}),
      ...(f.targetSize ? { targetSize: f.targetSize } : {}),
      controllers: [...controllers, ...steer.controllers],
      guidance: steer.guidance,
      onStep: (e) => bar.update(e.step + 1),
    });
    bar.stop();
    writePng(f.out, images);
    log(
      `wrote ${f.out} (${images.shape[3]}×${images.shape[2]}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
  });
}
