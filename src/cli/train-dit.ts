// attnkit train dit — trains an SD3-style MM-DiT with flow matching (src/train/dit.ts) on the Shapes world, on
// the frozen VAE and CLIP text encoder of an image model (the built-in Shapes model by default), and, with
// --export, writes the built-in DiT model folder (models/shapes-dit-v1: model_index.json, transformer/ in
// float16, the base model's vae/, text_encoder/ and tokenizer/, a flow-matching scheduler/).
//
// Examples come from the UNet stage's data seed (2: scene seeds 2·10⁷ + k), never the held-out ≥ 10⁹.

import { join } from 'node:path';
import type { Command } from 'commander';
import { writeOutput } from '../io/output.js';
import { readSafetensors } from '../io/safetensors.js';
import { shapesTrainingData } from '../lab/train-data.js';
import { readCheckpointMeta } from '../train/checkpoint.js';
import { DIT_DATA, DIT_DEFAULTS, type DiTConfig, ditTransformerConfigJson, trainDiT } from '../train/dit.js';
import { exportDiTModel } from '../train/dit-export.js';
import { plotCurves } from '../train/plot.js';
import { floatIn, intIn } from './args.js';
import { loadModel, resolveModel } from './models.js';
import { addModelOption, addRunOptions, log, parseModel, startRun } from './options.js';

interface TrainDiTFlags {
  out: string;
  steps: number;
  minutes?: number;
  batch: number;
  lr: number;
  decay: 'constant' | 'cosine';
  layers: number;
  heads: number;
  headDim: number;
  shift: number;
  timesteps: DiTConfig['timesteps'];
  ema?: number;
  seed: number;
  checkpointMinutes: number;
  resume?: boolean;
  initFrom?: string;
}

export function registerTrainDiT(train: Command): void {
  const cmd = train
    .command('dit')
    .description(
      'train an SD3-style MM-DiT with flow matching on the Shapes world, on the (frozen) VAE and text encoder of --model',
    );
  addModelOption(cmd)
    .option('--out <dir>', 'checkpoint folder (resumable)', 'runs/dit')
    .option('--steps <n>', 'total optimizer steps', intIn('--steps', { min: 1, max: 10_000_000 }), 20_000)
    .option(
      '--minutes <m>',
      'stop (and save) after this many minutes',
      floatIn('--minutes', { min: 0, max: 1e6 }),
    )
    .option('--batch <n>', 'images per step', intIn('--batch', { min: 1, max: 256 }), 8)
    .option('--lr <x>', 'peak learning rate', floatIn('--lr', { min: 0, max: 1 }), 3e-4)
    .option('--decay <kind>', 'learning-rate decay after warm-up: constant or cosine', 'constant')
    .option(
      '--layers <n>',
      'joint transformer blocks (new runs)',
      intIn('--layers', { min: 1, max: 64 }),
      DIT_DEFAULTS.layers,
    )
    .option(
      '--heads <n>',
      'attention heads (new runs)',
      intIn('--heads', { min: 1, max: 64 }),
      DIT_DEFAULTS.heads,
    )
    .option(
      '--head-dim <n>',
      'channels per head (new runs)',
      intIn('--head-dim', { min: 4, max: 256 }),
      DIT_DEFAULTS.headDim,
    )
    .option(
      '--shift <s>',
      "SD3's timestep shift in training and sampling",
      floatIn('--shift', { min: 0.1, max: 20 }),
      DIT_DEFAULTS.shift,
    )
    .option('--timesteps <kind>', 'σ sampling: logit-normal (SD3) or uniform', DIT_DEFAULTS.timesteps)
    .option(
      '--ema <decay>',
      'keep a moving average of the weights (exported instead of them)',
      floatIn('--ema', { min: 0, max: 1 }),
    )
    .option('--seed <n>', 'initialisation and noise seed', intIn('--seed', { min: 0, max: 2 ** 31 }), 0)
    .option(
      '--checkpoint-minutes <m>',
      'save a checkpoint this often',
      floatIn('--checkpoint-minutes', { min: 0.1, max: 1e6 }),
      5,
    )
    .option('--resume', 'continue the checkpoint in --out (same total --steps)')
    .option(
      '--init-from <dir>',
      'new runs: start from the transformer of an exported DiT folder (e.g. models/shapes-dit-v1); AdamW starts afresh',
    );
  addRunOptions(cmd).action((f: TrainDiTFlags) => {
    if (f.timesteps !== 'logit-normal' && f.timesteps !== 'uniform')
      throw new Error(`train dit: --timesteps must be logit-normal or uniform, got '${f.timesteps}'`);
    if (f.decay !== 'constant' && f.decay !== 'cosine')
      throw new Error(`train dit: --decay must be constant or cosine, got '${f.decay}'`);
    const run = startRun(f);
    const model = parseModel(f);
    const sd = loadModel(model, log, []);
    const config: DiTConfig = {
      ...DIT_DEFAULTS,
      layers: f.layers,
      heads: f.heads,
      headDim: f.headDim,
      shift: f.shift,
      timesteps: f.timesteps,
      ...(f.ema !== undefined ? { ema: f.ema } : {}),
    };
    const latentSize = sd.unet.config.sampleSize;
    const { result, history } = trainDiT(
      sd,
      (step, b) => {
        const { images, captions } = shapesTrainingData.examples(DIT_DATA, step * b, b);
        return { images, captions };
      },
      latentSize,
      config,
      {
        out: f.out,
        steps: f.steps,
        batchSize: f.batch,
        lr: f.lr,
        warmup: 100,
        decay: f.decay,
        ...(f.minutes !== undefined ? { minutes: f.minutes } : {}),
        seed: f.seed,
        resume: f.resume ?? false,
        ...(f.initFrom
          ? {
              initFrom: readSafetensors(
                join(f.initFrom, 'transformer', 'diffusion_pytorch_model.safetensors'),
              ).tensors,
            }
          : {}),
        checkpointMinutes: f.checkpointMinutes,
        quiet: run.quiet,
        log,
      },
    );
    writeOutput(join(f.out, 'loss.json'), `${JSON.stringify(history.map((h) => h.loss))}\n`);
    log(
      `train dit: at step ${result.step} (${result.reason}), ${result.secondsPerStep.toFixed(2)} s/step this run`,
    );
  });
}

/** `attnkit train export-dit`: a DiT run as an SD3 folder (e.g. the built-in models/shapes-dit-v1). */
export function registerExportDiT(train: Command): void {
  const cmd = train
    .command('export-dit')
    .description(
      'write a DiT run as a diffusers SD3 folder (float16), with the base model’s VAE and text encoder',
    );
  addModelOption(cmd)
    .option('--run <dir>', 'the DiT checkpoint folder', 'runs/dit')
    .requiredOption('--out <dir>', 'the model folder to write (replaced whole), e.g. models/shapes-dit-v1')
    .option('--plot <png>', 'also write the run’s loss curve as a PNG')
    .action((f: { run: string; out: string; plot?: string }) => {
      const base = resolveModel(parseModel(f), log);
      const sd = loadModel(base, log, []);
      const meta = readCheckpointMeta(f.run);
      const json = ditTransformerConfigJson(
        meta.extra.config as DiTConfig,
        sd,
        meta.extra.latentSize as number,
      );
      const { step, ema } = exportDiTModel(f.run, base, f.out, json);
      log(`export-dit: step ${step}${ema ? `, moving average of ${ema} updates` : ''} → ${f.out}`);
      if (f.plot) {
        const values = meta.history.map((h) => h.loss as number);
        plotCurves(f.plot, [{ title: 'dit v mse', values, colour: [40, 90, 200] }]);
        log(`export-dit: loss curve (${values.length} steps) → ${f.plot}`);
      }
    });
}
