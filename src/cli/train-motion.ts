// attnkit train motion — trains AnimateDiff-style motion modules for the image model (frozen) on Moving Shapes
// clips, then writes them as a diffusers MotionAdapter folder (float16 weights) and the loss curve.
//
// Clips come from data seed 5 (scene seeds 5·10⁷ + k, below the held-out seeds ≥ 10⁹ and apart from the image
// model's training seeds 1–3·10⁷); each clip is rendered with its motion caption ("a red circle moving right").

import { join } from 'node:path';
import type { Command } from 'commander';
import { writeFolderAtomic } from '../io/atomic.js';
import { writeOutput } from '../io/output.js';
import { writeSafetensors } from '../io/safetensors.js';
import { captionOfClip } from '../lab/motion/caption.js';
import { renderClip, sampleClip } from '../lab/motion/clip.js';
import { TRAINING_SEED_STRIDE } from '../lab/seeds.js';
import { concat } from '../tensor/index.js';
import { type ClipData, motionAdapterConfigJson, trainMotion } from '../train/motion.js';
import { floatIn, intIn } from './args.js';
import { loadModel } from './models.js';
import { addModelOption, addRunOptions, log, parseModel, parseSingleFile, startRun } from './options.js';

/** The data seed of motion training clips. */
export const MOTION_DATA_SEED = 5;

interface TrainMotionFlags {
  out: string;
  adapter: string;
  steps: number;
  minutes?: number;
  clips: number;
  frames: number;
  lr: number;
  highNoise: number;
  seed: number;
  resume?: boolean;
}

/** Moving Shapes clips of the training seed range as motion training data. */
export function movingShapesData(frames: number): ClipData {
  return {
    frames,
    clip: (k) => {
      const clip = sampleClip(MOTION_DATA_SEED * TRAINING_SEED_STRIDE + (k % TRAINING_SEED_STRIDE), {
        frames,
      });
      return {
        images: concat(
          renderClip(clip).map((r) => r.image),
          0,
        ),
        caption: captionOfClip(clip).text,
      };
    },
  };
}

export function registerTrainMotion(train: Command): void {
  const cmd = train
    .command('motion')
    .description('train motion modules (AnimateDiff) for the image model, frozen, on Moving Shapes clips');
  addModelOption(cmd)
    .option('--out <dir>', 'checkpoint folder (resumable)', 'runs/motion')
    .option('--adapter <dir>', 'where the trained MotionAdapter folder is written', 'runs/motion/adapter')
    .option('--steps <n>', 'optimizer steps', intIn('--steps', { min: 1, max: 10_000_000 }), 2000)
    .option(
      '--minutes <m>',
      'stop (and save) after this many minutes',
      floatIn('--minutes', { min: 0, max: 1e6 }),
    )
    .option('--clips <n>', 'clips per step', intIn('--clips', { min: 1, max: 64 }), 2)
    .option('--frames <n>', 'frames per clip', intIn('--frames', { min: 2, max: 32 }), 8)
    .option('--lr <x>', 'learning rate', floatIn('--lr', { min: 0, max: 1 }), 3e-4)
    .option(
      '--high-noise <f>',
      'share of clips whose timestep comes from the noisier half (where layout and motion are decided)',
      floatIn('--high-noise', { min: 0, max: 1 }),
      0,
    )
    .option('--seed <n>', 'initialisation and noise seed', intIn('--seed', { min: 0, max: 2 ** 31 }), 0)
    .option('--resume', 'continue the checkpoint in --out');
  addRunOptions(cmd).action((f: TrainMotionFlags) => {
    const run = startRun(f);
    const sd = loadModel(parseModel(f), log, [], parseSingleFile(f));
    const { result, adapter, history } = trainMotion(sd, movingShapesData(f.frames), {
      out: f.out,
      steps: f.steps,
      ...(f.minutes !== undefined ? { minutes: f.minutes } : {}),
      clips: f.clips,
      lr: f.lr,
      highNoise: f.highNoise,
      seed: f.seed,
      resume: f.resume ?? false,
      quiet: run.quiet,
      log,
    });
    writeFolderAtomic(f.adapter, (dir) => {
      writeOutput(
        join(dir, 'config.json'),
        `${JSON.stringify(motionAdapterConfigJson(adapter.config), null, 1)}\n`,
      );
      writeSafetensors(
        join(dir, 'diffusion_pytorch_model.safetensors'),
        new Map([...adapter.namedParameters()].map(([k, p]) => [k, p.value])),
        {
          dtype: 'float16',
        },
      );
    });
    writeOutput(join(f.out, 'loss.json'), `${JSON.stringify(history.map((h) => h.loss))}\n`);
    log(
      `train motion: ${result.step} steps (${result.reason}), ${result.secondsPerStep.toFixed(2)} s/step; ` +
        `adapter in ${f.adapter}, loss curve in ${join(f.out, 'loss.json')}`,
    );
  });
}
