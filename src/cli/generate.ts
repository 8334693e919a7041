// attnkit generate "<prompt>" — text to image.

import type { Command } from 'commander';
import { writePng } from '../io/png.js';
import { progressBar } from '../io/progress.js';
import { setThreads } from '../kernels/ort.js';
import type { SchedulerName } from '../schedulers/index.js';
import { float, int } from './args.js';
import { addEfficiencyOptions, type EfficiencyFlags, efficiencyControllers } from './efficiency.js';
import { loadModel } from './models.js';

interface GenerateFlags extends EfficiencyFlags {
  model?: string;
  out: string;
  seed: number;
  steps: number;
  guidance: number;
  guidanceRescale?: number;
  width?: number;
  height?: number;
  negative?: string;
  scheduler?: SchedulerName;
  threads?: number;
  quiet?: boolean;
}

export function registerGenerate(program: Command): void {
  const cmd = program
    .command('generate')
    .description('generate an image from a prompt')
    .argument('<prompt>', 'the text prompt')
    .option('-m, --model <dir>', 'diffusers model folder (default: the built-in Shapes model)')
    .option('-o, --out <file>', 'output PNG', 'out.png')
    .option('--seed <n>', 'random seed', int('--seed'), 0)
    .option('--steps <n>', 'denoising steps', int('--steps'), 25)
    .option('--guidance <w>', 'classifier-free guidance scale', float('--guidance'), 7.5)
    .option(
      '--guidance-rescale <phi>',
      'rescale the guided prediction toward the conditional one’s spread (0–1; 0.7 in Lin et al. 2024)',
      float('--guidance-rescale'),
    )
    .option('--width <px>', 'image width', int('--width'))
    .option('--height <px>', 'image height', int('--height'))
    .option('--negative <text>', 'negative prompt')
    .option('--scheduler <name>', 'ddim | ddpm | euler | dpmpp2m | pndm (default: the model folder’s)')
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', int('--threads'))
    .option('-q, --quiet', 'no progress bar');
  addEfficiencyOptions(cmd).action((prompt: string, f: GenerateFlags) => {
    if (f.threads) setThreads(f.threads);
    const controllers = efficiencyControllers(f);
    const log = (s: string) => process.stderr.write(`${s}\n`);
    const t0 = performance.now();
    const sd = loadModel(f.model, log, [prompt]);
    const bar = progressBar('denoising', f.steps, { quiet: f.quiet });
    const { images } = sd.generate({
      prompt,
      negativePrompt: f.negative,
      steps: f.steps,
      guidanceScale: f.guidance,
      ...(f.guidanceRescale !== undefined ? { guidanceRescale: f.guidanceRescale } : {}),
      seed: f.seed,
      width: f.width,
      height: f.height,
      scheduler: f.scheduler,
      controllers,
      onStep: (e) => bar.update(e.step + 1),
    });
    bar.stop();
    writePng(f.out, images);
    log(
      `wrote ${f.out} (${images.shape[3]}×${images.shape[2]}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
  });
}
