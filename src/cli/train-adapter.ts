// attnkit train lora / custom-diffusion / full — fit a weight-level adapter (or, as the baseline, every UNet
// weight) to a model (the built-in one by default) on a folder of images + captions or on Shapes scenes,
// resumably, and write the adapter file `generate --lora` (LoRA) or the API (Custom Diffusion) reads.

import type { Command } from 'commander';
import { shapesTrainingData } from '../lab/train-data.js';
import { type AdapterMethod, trainAdapter } from '../train/adapter.js';
import { folderTrainingData } from '../train/folder-data.js';
import { float, floatIn, intIn } from './args.js';
import { BATCH } from './limits.js';
import { loadModel } from './models.js';
import { addModelOption, addRunOptions, log, parseModel, parseSingleFile, startRun } from './options.js';

interface AdapterFlags {
  data?: string;
  shapes?: number;
  out: string;
  run: string;
  rank: number;
  steps: number;
  lr: number;
  batch: number;
  seed: number;
  minutes?: number;
  resume?: boolean;
  priorData?: string;
  priorShapes?: number;
  priorWeight: number;
  captionDropout: number;
  modifierToken?: string;
}

const STEPS = { min: 1, max: 1_000_000 };
const RANK = { min: 1, max: 1024, hint: 'LoRA ranks are usually 4–128' };

function register(train: Command, method: AdapterMethod, description: string, lr: string): void {
  const cmd = train.command(method).description(description);
  addModelOption(cmd)
    .option(
      '--data <folder>',
      'a folder of name.png images with name.txt captions, at the model’s image size',
    )
    .option(
      '--shapes <seed>',
      'train on Shapes scenes of this data seed instead',
      intIn('--shapes', { min: 0, max: 2 ** 31 }),
    )
    .option('-o, --out <file>', 'adapter file to write (.safetensors)', `${method}.safetensors`)
    .option('--run <dir>', 'checkpoint folder (resume with --resume)', `runs/${method}`)
    .option('--rank <r>', 'LoRA rank', intIn('--rank', RANK), 4)
    .option('--steps <n>', 'optimizer steps', intIn('--steps', STEPS), 500)
    .option('--lr <rate>', 'learning rate', float('--lr'), Number(lr))
    .option('--batch <n>', 'images per step', intIn('--batch', BATCH), 4)
    .option('--seed <n>', 'seed of the start and the noise', intIn('--seed', { min: 0, max: 2 ** 31 }), 0)
    .option('--minutes <m>', 'stop (and save) after this many minutes', float('--minutes'))
    .option('--resume', 'continue the run in --run')
    .option(
      '--modifier-token <word>',
      'custom-diffusion: also learn the embedding of this one-token word (V*)',
    )
    .option(
      '--prior-data <folder>',
      'prior preservation: as many images per step from this folder (class images)',
    )
    .option(
      '--prior-shapes <seed>',
      'prior preservation from Shapes scenes of this data seed',
      intIn('--prior-shapes', { min: 0, max: 2 ** 31 }),
    )
    .option('--prior-weight <w>', 'weight of the prior-preservation loss', float('--prior-weight'), 1)
    .option(
      '--caption-dropout <p>',
      'replace each caption by "" with this probability (the base model’s own training used 0.1)',
      floatIn('--caption-dropout', { min: 0, max: 1 }),
      0,
    );
  addRunOptions(cmd).action((f: AdapterFlags) => {
    const run = startRun(f, { '--out': f.out });
    if ((f.data === undefined) === (f.shapes === undefined)) {
      throw new Error(`train ${method}: give either --data <folder> or --shapes <seed>`);
    }
    if (!f.out.endsWith('.safetensors'))
      throw new Error(`train ${method}: --out must end in .safetensors, got ${f.out}`);
    if (f.modifierToken !== undefined && method !== 'custom-diffusion') {
      throw new Error(`train ${method}: --modifier-token belongs to custom-diffusion`);
    }
    const sd = loadModel(parseModel(f), log, [], parseSingleFile(f));
    const size = sd.unet.config.sampleSize * 2 ** (sd.vae.config.blockOutChannels.length - 1);
    const data = f.data !== undefined ? folderTrainingData(f.data, size) : shapesTrainingData;
    if (data.imageSize !== size) {
      throw new Error(
        `train ${method}: the Shapes scenes are ${data.imageSize} px, the model makes ${size} px images`,
      );
    }
    if (f.priorData !== undefined && f.priorShapes !== undefined) {
      throw new Error(`train ${method}: give at most one of --prior-data and --prior-shapes`);
    }
    const priorSource =
      f.priorData !== undefined
        ? folderTrainingData(f.priorData, size)
        : f.priorShapes !== undefined
          ? shapesTrainingData
          : undefined;
    if (priorSource && priorSource.imageSize !== size) {
      throw new Error(
        `train ${method}: the prior images are ${priorSource.imageSize} px, the model makes ${size} px images`,
      );
    }
    const prior = priorSource && { data: priorSource, dataSeed: f.priorShapes ?? 0, weight: f.priorWeight };
    const r = trainAdapter(sd, data, {
      ...(prior ? { prior } : {}),
      ...(f.modifierToken !== undefined ? { modifierToken: f.modifierToken } : {}),
      method,
      captionDropout: f.captionDropout,
      rank: f.rank,
      batchSize: f.batch,
      dataSeed: f.shapes ?? 0,
      seed: f.seed,
      out: f.out,
      dir: f.run,
      steps: f.steps,
      lr: f.lr,
      warmup: Math.min(50, Math.floor(f.steps / 10)),
      clip: 1,
      checkpointMinutes: 5,
      resume: f.resume ?? false,
      ...(f.minutes !== undefined ? { minutes: f.minutes } : {}),
      quiet: run.quiet,
    });
    log(
      `${method}: stopped at step ${r.step} (${r.reason}), ${r.secondsPerStep.toFixed(2)} s/step; wrote ${f.out}`,
    );
  });
}

/** Registers `train lora`, `train custom-diffusion` and `train full` under the `train` command. */
export function registerTrainAdapters(train: Command): void {
  register(
    train,
    'lora',
    'fit a LoRA (rank --rank on every UNet attention projection) to images + captions',
    '1e-4',
  );
  register(
    train,
    'custom-diffusion',
    'fit Custom Diffusion (the UNet’s cross-attention K and V) to images + captions',
    '1e-5',
  );
  register(
    train,
    'full',
    'fine-tune every UNet weight on images + captions (writes the UNet’s weights, diffusers names)',
    '1e-5',
  );
}
