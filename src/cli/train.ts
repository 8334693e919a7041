// attnkit train shapes — trains the built-in Shapes model; attnkit train export-shapes — writes it as a
// diffusers folder (docs/training.md).

import { join } from 'node:path';
import type { Command } from 'commander';
import { shapesTrainingData } from '../lab/train-data.js';
import { hasCheckpoint, readCheckpointMeta } from '../train/checkpoint.js';
import { exportShapesModel } from '../train/export.js';
import { plotRun } from '../train/plot.js';
import { writeReconstructionGrid } from '../train/preview.js';
import {
  loadTrainedVAE,
  SHAPES_TRAIN_DEFAULTS,
  type ShapesTrainOptions,
  trainDecoder,
  trainTextToImage,
  trainVAE,
} from '../train/shapes.js';
import type { PredictionTarget, TimestepBias } from '../train/text-to-image.js';
import { float, int, intIn } from './args.js';
import { BATCH, CHANNELS, LAYERS } from './limits.js';
import { addRunOptions, startRun } from './options.js';
import { registerTrainAdapters } from './train-adapter.js';
import { registerExportDiT, registerTrainDiT } from './train-dit.js';
import { registerTrainMotion } from './train-motion.js';

interface TrainFlags {
  out: string;
  stage: 'vae' | 'decoder' | 'unet' | 'all';
  resume?: boolean;
  steps?: number;
  vaeSteps?: number;
  minutes?: number;
  vaeMinutes?: number;
  batch?: number;
  lr?: number;
  seed: number;
  checkpointMinutes: number;
  lrDecay?: string;
  vaeChannels?: string;
  initFrom?: string;
  latentNoise?: number;
  vaeGroups?: number;
  latentChannels?: number;
  unetChannels?: string;
  unetLayers?: number;
  textLayers?: number;
  objectWeight?: number;
  minSnr?: number;
  timestepBias?: string;
  x0Floor?: number;
  grounding?: string;
  ema?: number;
  prediction?: string;
  zeroSnr?: boolean;
}

function lrDecay(kind: string): 'constant' | 'cosine' {
  if (kind !== 'constant' && kind !== 'cosine') {
    throw new Error(`train shapes: --lr-decay must be constant or cosine, got '${kind}'`);
  }
  return kind;
}

function channelList(list: string, flag: string): number[] {
  const out = list.split(',').map((x) => Number(x.trim()));
  if (
    out.length < 2 ||
    out.length > LAYERS.max ||
    out.some((x) => !Number.isInteger(x) || x < 1 || x > CHANNELS.max)
  ) {
    throw new Error(
      `train shapes: ${flag} wants 2 to ${LAYERS.max} integers from 1 to ${CHANNELS.max} like 16,32,64, got '${list}'`,
    );
  }
  return out;
}

function timestepBias(text: string): TimestepBias {
  const [strategy, multiplier, portion, ...rest] = text.split(':');
  const m = Number(multiplier);
  const p = Number(portion);
  if ((strategy !== 'later' && strategy !== 'earlier') || rest.length > 0 || !(m > 0) || !(p > 0 && p <= 1)) {
    throw new Error(
      `train shapes: --timestep-bias wants later|earlier:multiplier:portion with multiplier > 0 and ` +
        `portion in (0, 1], e.g. later:3:0.35; got '${text}'`,
    );
  }
  return { strategy, multiplier: m, portion: p };
}

/** `--grounding token[:pixel[:place]]`. */
export function parseGrounding(text: string): { token: number; pixel: number; place?: number } {
  const [token, pixel = '0', place, ...rest] = text.split(':');
  const t = Number(token);
  const p = Number(pixel);
  const w = place === undefined ? 1 : Number(place);
  if (
    rest.length > 0 ||
    token === '' ||
    place === '' ||
    !(t >= 0) ||
    !(p >= 0) ||
    !(w >= 0) ||
    !Number.isFinite(t + p + w) ||
    t + p === 0
  ) {
    throw new Error(
      'train shapes: --grounding wants token[:pixel[:place]] — loss weights ≥ 0, not both 0, and the place ' +
        `words' weight relative to the others (default 1), e.g. 0.01:0.0005 or 0.05:0.0025:4; got '${text}'`,
    );
  }
  return { token: t, pixel: p, ...(place !== undefined ? { place: w } : {}) };
}

function positive(n: number, flag: string): number {
  if (n < 1) throw new Error(`train shapes: ${flag} must be ≥ 1, got ${n}`);
  return n;
}

export function registerTrain(program: Command): void {
  const train = program.command('train').description('train a model');
  registerTrainAdapters(train);
  registerTrainMotion(train);
  registerTrainDiT(train);
  registerExportDiT(train);
  const shapes = train
    .command('shapes')
    .description(
      'train the Shapes model: stage vae (AutoencoderKL), then stage unet (UNet + CLIP text encoder)',
    )
    .option('-o, --out <dir>', 'run folder (checkpoints, tokenizer)', SHAPES_TRAIN_DEFAULTS.out)
    .option(
      '--stage <stage>',
      'vae | unet | all, or decoder: train the VAE decoder on with the encoder frozen (same latents)',
      'all',
    )
    .option('--resume', 'continue from the checkpoints in --out')
    .option('--steps <n>', 'total steps of the stage (with --stage all: of the unet stage)', int('--steps'))
    .option('--vae-steps <n>', 'total steps of the vae stage', int('--vae-steps'))
    .option(
      '--minutes <m>',
      'time budget of this run; the stage stops and saves when it is spent',
      float('--minutes'),
    )
    .option(
      '--vae-minutes <m>',
      'with --stage all: the vae stage’s share of --minutes',
      float('--vae-minutes'),
    )
    .option('--batch <n>', 'batch size of the stage', intIn('--batch', BATCH))
    .option('--lr <x>', 'peak learning rate of the stage', float('--lr'))
    .option('--lr-decay <kind>', 'after warm-up: constant | cosine (to lr/10 at --steps)')
    .option('--vae-channels <list>', 'VAE block_out_channels, comma-separated (new runs only)')
    .option('--vae-groups <n>', 'VAE norm_num_groups (new runs only)', intIn('--vae-groups', CHANNELS))
    .option(
      '--latent-channels <n>',
      'VAE latent channels (new runs only; default 4)',
      intIn('--latent-channels', CHANNELS),
    )
    .option('--unet-channels <list>', 'UNet block_out_channels, comma-separated (new runs only)')
    .option('--unet-layers <n>', 'UNet layers_per_block (new runs only)', intIn('--unet-layers', LAYERS))
    .option('--text-layers <n>', 'text encoder layers (new runs only)', intIn('--text-layers', LAYERS))
    .option(
      '--object-weight <w>',
      'extra loss weight on object pixels (VAE: reconstruction; unet: ε at latent resolution) (0)',
      float('--object-weight'),
    )
    .option(
      '--min-snr <gamma>',
      'unet: Min-SNR-γ loss weighting (0 = none; the paper uses 5)',
      float('--min-snr'),
    )
    .option(
      '--timestep-bias <bias>',
      'unet: draw timesteps with a bias, strategy:multiplier:portion, e.g. later:3:0.35 (the noisiest ' +
        '35 % three times as often; earlier: the cleanest)',
    )
    .option(
      '--x0-floor <f>',
      "unet: every timestep's x0 error weighs at least f: the example's ε-loss weight becomes " +
        'max(min(SNR, γ), f) / SNR (the noisiest timesteps, where layout is decided, weigh SNR ≈ 0.005 otherwise)',
      float('--x0-floor'),
    )
    .option(
      '--grounding <token[:pixel[:place]]>',
      "unet: TokenCompose's grounding losses on the cross-attention maps of each object's words (size, " +
        'colour, shape, place) against its mask, with these weights (the reference: 1e-3:5e-5 for SD); ' +
        "place: the place words' terms weigh this many times the others' (default 1)",
    )
    .option(
      '--prediction <target>',
      'unet: what the UNet predicts, epsilon | v_prediction (default epsilon; a resumed run keeps its own)',
    )
    .option(
      '--zero-snr',
      'unet: rescale the betas to a zero terminal SNR (Lin et al. 2024), so t = 999 is pure noise as at ' +
        'sampling; needs --prediction v_prediction',
    )
    .option(
      '--ema <decay>',
      'unet: keep an exponential moving average of the weights (e.g. 0.999); export-shapes writes it',
      float('--ema'),
    )
    .option(
      '--latent-noise <sigma>',
      'decoder stage: noise (raw latent units) added to latents before decoding, for robustness (0)',
      float('--latent-noise'),
    )
    .option(
      '--init-from <run>',
      'unet stage, new runs: start from another run’s UNet + text encoder (a deeper UNet grows from it)',
    )
    .option('--seed <n>', 'initialisation and noise seed', int('--seed'), 0)
    .option('--checkpoint-minutes <m>', 'save a checkpoint this often', float('--checkpoint-minutes'), 3);
  addRunOptions(shapes).action((flags: TrainFlags) => {
    if (!['vae', 'decoder', 'unet', 'all'].includes(flags.stage)) {
      throw new Error(`train shapes: --stage must be vae, decoder, unet or all, got '${flags.stage}'`);
    }
    const { quiet } = startRun(flags);
    if (flags.steps !== undefined) positive(flags.steps, '--steps');
    if (flags.vaeSteps !== undefined) positive(flags.vaeSteps, '--vae-steps');
    const d = SHAPES_TRAIN_DEFAULTS;
    const t0 = Date.now();
    const pick = <T>(v: T | undefined, fallback: T): T => (v === undefined ? fallback : v);
    // the decoder stage takes the vae stage's flags
    const stage1 = flags.stage === 'decoder' ? 'vae' : flags.stage;
    const stageFlags = (stage: 'vae' | 'unet') => ({
      ...(flags.batch !== undefined && (stage1 === stage || (flags.stage === 'all' && stage === 'unet'))
        ? { batchSize: positive(flags.batch, '--batch') }
        : {}),
      ...(flags.lr !== undefined && (stage1 === stage || (flags.stage === 'all' && stage === 'unet'))
        ? { lr: flags.lr }
        : {}),
      ...(flags.lrDecay !== undefined ? { decay: lrDecay(flags.lrDecay) } : {}),
    });
    const o: ShapesTrainOptions = {
      ...d,
      out: flags.out,
      seed: flags.seed,
      resume: flags.resume ?? false,
      checkpointMinutes: flags.checkpointMinutes,
      vae: {
        ...d.vae,
        ...(flags.vaeChannels !== undefined
          ? { blockOutChannels: channelList(flags.vaeChannels, '--vae-channels') }
          : {}),
        ...(flags.vaeGroups !== undefined
          ? { normNumGroups: positive(flags.vaeGroups, '--vae-groups') }
          : {}),
        ...(flags.latentChannels !== undefined
          ? { latentChannels: positive(flags.latentChannels, '--latent-channels') }
          : {}),
        ...(flags.objectWeight !== undefined ? { objectWeight: flags.objectWeight } : {}),
        ...(flags.latentNoise !== undefined ? { latentNoise: flags.latentNoise } : {}),
        ...stageFlags('vae'),
        steps: pick(stage1 === 'vae' ? flags.steps : flags.vaeSteps, d.vae.steps),
      },
      unet: {
        ...d.unet,
        ...(flags.unetChannels !== undefined
          ? { blockOutChannels: channelList(flags.unetChannels, '--unet-channels') }
          : {}),
        ...(flags.unetLayers !== undefined
          ? { layersPerBlock: positive(flags.unetLayers, '--unet-layers') }
          : {}),
        ...(flags.textLayers !== undefined
          ? { textLayers: positive(flags.textLayers, '--text-layers') }
          : {}),
        ...stageFlags('unet'),
        ...(flags.minSnr !== undefined ? { minSnrGamma: flags.minSnr } : {}),
        ...(flags.timestepBias !== undefined ? { timestepBias: timestepBias(flags.timestepBias) } : {}),
        ...(flags.x0Floor !== undefined ? { x0WeightFloor: flags.x0Floor } : {}),
        ...(flags.grounding !== undefined ? { grounding: parseGrounding(flags.grounding) } : {}),
        ...(flags.prediction !== undefined ? { prediction: predictionTarget(flags.prediction) } : {}),
        ...(flags.zeroSnr ? { zeroTerminalSnr: true } : {}),
        ...(flags.objectWeight !== undefined ? { objectWeight: flags.objectWeight } : {}),
        ...(flags.ema !== undefined ? { ema: flags.ema } : {}),
        ...(flags.initFrom !== undefined ? { initFrom: flags.initFrom } : {}),
        steps: pick(flags.steps, d.unet.steps),
      },
      ...(quiet ? { quiet: true } : {}),
      log: (line) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`),
    };
    const left = () => (flags.minutes === undefined ? undefined : flags.minutes - (Date.now() - t0) / 60_000);
    if (flags.stage === 'decoder') {
      const r = trainDecoder(
        { ...o, vae: { ...o.vae, ...(flags.minutes !== undefined ? { minutes: flags.minutes } : {}) } },
        shapesTrainingData,
      );
      o.log?.(`decoder: stopped at step ${r.step} (${r.reason}), ${r.secondsPerStep.toFixed(2)} s/step`);
      return;
    }
    if (flags.stage !== 'unet') {
      const minutes = flags.stage === 'all' && flags.vaeMinutes !== undefined ? flags.vaeMinutes : left();
      const r = trainVAE(
        { ...o, vae: { ...o.vae, ...(minutes !== undefined ? { minutes } : {}) } },
        shapesTrainingData,
      );
      o.log?.(`vae: stopped at step ${r.step} (${r.reason}), ${r.secondsPerStep.toFixed(2)} s/step`);
    }
    if (flags.stage !== 'vae') {
      const minutes = left();
      const r = trainTextToImage(
        { ...o, unet: { ...o.unet, ...(minutes !== undefined ? { minutes } : {}) } },
        shapesTrainingData,
      );
      o.log?.(`unet: stopped at step ${r.step} (${r.reason}), ${r.secondsPerStep.toFixed(2)} s/step`);
    }
  });

  train
    .command('export-shapes')
    .description('write a Shapes run as a diffusers folder (float16) and plot its loss curves')
    .option('--run <dir>', 'run folder of `attnkit train shapes`', SHAPES_TRAIN_DEFAULTS.out)
    .option('-o, --out <dir>', 'diffusers folder to write', 'models/shapes-v1')
    .option('--plot <png>', 'loss curves PNG', 'docs/training-loss.png')
    .option('--recon <png>', 'VAE reconstructions of held-out scenes', 'docs/training-vae.png')
    .option('--no-ema', 'write the trained weights even where the run kept a moving average of them')
    .action((flags: { run: string; out: string; plot: string; recon: string; ema: boolean }) => {
      const { ema } = exportShapesModel(flags.out, flags.run, { ema: flags.ema });
      if (ema) process.stdout.write(`unet and text encoder: the moving average of ${ema} updates\n`);
      const meta = (stage: string) =>
        hasCheckpoint(join(flags.run, stage)) ? readCheckpointMeta(join(flags.run, stage)) : undefined;
      const vae = meta('vae')?.history;
      const unetMeta = meta('unet');
      const unet = unetMeta?.history;
      const prediction = (unetMeta?.extra.config as { prediction?: string } | undefined)?.prediction;
      plotRun(
        flags.plot,
        { ...(vae ? { vae } : {}), ...(unet ? { unet } : {}) },
        prediction === 'v_prediction' ? 'v' : 'eps',
      );
      writeReconstructionGrid(loadTrainedVAE(flags.run), shapesTrainingData, flags.recon);
      process.stdout.write(`wrote ${flags.out}, ${flags.plot} and ${flags.recon}\n`);
    });
}

/** --prediction, checked: epsilon | v_prediction. */
function predictionTarget(v: string): PredictionTarget {
  if (v === 'epsilon' || v === 'v_prediction') return v;
  throw new Error(`--prediction must be epsilon or v_prediction, got '${v}'`);
}
