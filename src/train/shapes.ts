// `attnkit train shapes`: the two stages of the built-in Shapes model, each resumable from its folder:
//
//   <out>/vae/        stage 1 checkpoint (AutoencoderKL)
//   <out>/decoder/    optional stage 1b: the VAE's decoder trained on with the encoder frozen (same latents)
//   <out>/tokenizer/  the BPE vocabulary learned from captions
//   <out>/unet/       stage 2 checkpoint (UNet2DConditionModel + CLIP text encoder)
//
// Data: a `TrainingData` source (data.ts; the Shapes world's is src/lab/train-data.ts). Stage 1 draws the
// examples of data seed 1, stage 2 those of data seed 2, the vocabulary and the scaling factor come from data
// seed 3. In the Shapes world these are scene seeds in [10⁷, 4·10⁷); `attnkit eval` draws its held-out
// prompts from scene seeds ≥ 10⁹, never trained on.

import { join } from 'node:path';
import {
  AdamW,
  type AutoencoderKL,
  Generator,
  initParameters,
  type Module,
  readSafetensors,
} from '../index.js';
import { learnBPE, tokenizerOf, writeTokenizer } from './bpe.js';
import { hasCheckpoint, readCheckpointMeta, type TrainState } from './checkpoint.js';
import { type TrainingData, trainingBatch } from './data.js';
import { EMA } from './ema.js';
import { growFrom } from './grow.js';
import { type LoopOptions, type LoopResult, trainLoop } from './loop.js';
import {
  buildTextToImage,
  checkPrediction,
  TEXT_TO_IMAGE_DEFAULTS,
  type TextToImageConfig,
  textToImageLoss,
  trainingNoiseSchedule,
} from './text-to-image.js';
import {
  buildVAE,
  initVAE,
  measureScalingFactor,
  VAE_DEFAULTS,
  type VAELoss,
  type VAETrainConfig,
  vaeLoss,
} from './vae.js';

/**
 * How one training stage runs: steps, batch size, learning rate, warm-up and decay, time budget, initial
 * weights.
 */
export interface StageOptions {
  steps: number;
  /**
   * Unet stage, new runs only: start from the weights of another run's unet stage (its moving average when
   * it kept one), grown by the levels this config adds (grow.ts). Absent: PyTorch's default initialisation.
   */
  initFrom?: string;
  batchSize: number;
  lr: number;
  warmup: number;
  /** Learning-rate decay after warm-up (see loop.ts); constant when absent. */
  decay?: 'constant' | 'cosine';
  minutes?: number;
}

/**
 * Options of the two-stage recipe of the built-in model: output folder, seed, resuming, checkpoints, each
 * stage's config.
 */
export interface ShapesTrainOptions {
  out: string;
  seed: number;
  resume: boolean;
  checkpointMinutes: number;
  vae: VAETrainConfig & StageOptions;
  unet: TextToImageConfig & StageOptions;
  quiet?: boolean;
  /** Where progress lines go (default stderr). */
  log?: (line: string) => void;
}

/** The recipe's defaults (those the built-in model was trained with, docs/training.md). */
export const SHAPES_TRAIN_DEFAULTS: ShapesTrainOptions = {
  out: 'runs/shapes',
  seed: 0,
  resume: true,
  checkpointMinutes: 3,
  vae: { ...VAE_DEFAULTS, steps: 1000, batchSize: 4, lr: 1e-3, warmup: 50 },
  unet: { ...TEXT_TO_IMAGE_DEFAULTS, steps: 20000, batchSize: 8, lr: 5e-4, warmup: 100 },
};

/** The fields of a stage-2 config that fix its parameters' shapes. */
const ARCHITECTURE = [
  'blockOutChannels',
  'layersPerBlock',
  'heads',
  'normNumGroups',
  'textHidden',
  'textLayers',
  'textHeads',
  'maxLength',
] as const satisfies readonly (keyof TextToImageConfig)[];

function architectureOf(c: TextToImageConfig): Partial<TextToImageConfig> {
  return Object.fromEntries(ARCHITECTURE.map((k) => [k, c[k]]));
}

/**
 * A resumed run keeps what its UNet was trained to predict, and on which schedule; asking for another is an
 * error (a new run started with --init-from changes them).
 */
function objectiveOf(saved: TextToImageConfig, asked: TextToImageConfig): Partial<TextToImageConfig> {
  const was = { prediction: saved.prediction ?? 'epsilon', zeroTerminalSnr: saved.zeroTerminalSnr ?? false };
  for (const [k, v] of Object.entries(was) as [keyof typeof was, string | boolean][]) {
    if (asked[k] !== undefined && asked[k] !== v)
      throw new Error(
        `train shapes: this run was trained with ${k} ${v}, asked for ${asked[k]}; a resumed run keeps its ` +
          'objective — start a new run from it with --init-from to change it',
      );
  }
  return was;
}

const VAE_DATA = 1;
const UNET_DATA = 2;
const VOCAB_DATA = 3;

/** `c` with the architecture (the fields that fix parameter shapes) of a saved VAE config. */
function withVAEArchitecture<C extends VAETrainConfig>(c: C, saved: VAETrainConfig): C {
  return {
    ...c,
    blockOutChannels: saved.blockOutChannels,
    normNumGroups: saved.normNumGroups,
    layersPerBlock: saved.layersPerBlock,
    latentChannels: saved.latentChannels,
  };
}

/** The loss of a VAE stage at `step`: a batch of stage-1 data through `vaeLoss`. */
function vaeStageLoss(
  vae: AutoencoderKL,
  c: VAETrainConfig & StageOptions,
  data: TrainingData,
  gen: Generator,
  latentNoise = 0,
): (step: number) => VAELoss {
  return (step) => {
    const batch = trainingBatch(data, VAE_DATA, step, c.batchSize);
    const weighting = { objects: batch.objects, objectWeight: c.objectWeight ?? 0 };
    return vaeLoss(vae, batch.images, gen, c.klWeight, weighting, latentNoise);
  };
}

/** The training-loop options every stage shares: its schedule, checkpoints and logging. */
function stageLoop(
  o: ShapesTrainOptions,
  c: StageOptions,
  dir: string,
  label: string,
  extra: Record<string, unknown>,
): LoopOptions {
  return {
    dir,
    label,
    steps: c.steps,
    ...(c.minutes !== undefined ? { minutes: c.minutes } : {}),
    lr: c.lr,
    warmup: c.warmup,
    ...(c.decay ? { decay: c.decay } : {}),
    clip: 1,
    checkpointMinutes: o.checkpointMinutes,
    resume: o.resume,
    extra,
    ...(o.quiet !== undefined ? { quiet: o.quiet } : {}),
    ...(o.log ? { log: o.log } : {}),
  };
}

/** Stage 1, on the examples of `data`. */
export function trainVAE(o: ShapesTrainOptions, data: TrainingData): LoopResult {
  const dir = join(o.out, 'vae');
  // A resumed run keeps the architecture it was started with.
  const saved =
    o.resume && hasCheckpoint(dir) ? (readCheckpointMeta(dir).extra.config as VAETrainConfig) : null;
  const c = saved ? withVAEArchitecture(o.vae, saved) : o.vae;
  const vae = buildVAE(c);
  initVAE(vae, new Generator(o.seed + 1));
  vae.requiresGrad();
  const state: TrainState = {
    modules: { vae },
    optimizer: new AdamW(vae.parameters(), { lr: c.lr }),
    gen: new Generator(o.seed + 2),
    history: [],
  };
  return trainLoop(state, vaeStageLoss(vae, c, data, state.gen), stageLoop(o, c, dir, 'vae', { config: c }));
}

/**
 * Stage 1b: trains the decoder (post_quant_conv + decoder) of the stage-1 VAE on, with the encoder frozen.
 * The latent space stays exactly what the UNet stage learned on, so a UNet trained on `<out>/vae` keeps
 * working with the new decoder; a better decoder raises the ceiling of every generation (and of inversion's
 * reconstructions). Starts from `<out>/vae`, checkpoints in `<out>/decoder`.
 */
export function trainDecoder(o: ShapesTrainOptions, data: TrainingData): LoopResult {
  const dir = join(o.out, 'decoder');
  const source = join(o.out, 'vae');
  if (!hasCheckpoint(source)) throw new Error(`no VAE checkpoint in ${source}: run stage 'vae' first`);
  const c = withVAEArchitecture(o.vae, readCheckpointMeta(source).extra.config as VAETrainConfig);
  const vae = loadVAEWeights(source);
  const params = [...vae.post_quant_conv.parameters(), ...vae.decoder.parameters()];
  vae.requiresGrad(false);
  for (const p of params) p.value.requiresGrad = true;
  const state: TrainState = {
    modules: { vae },
    optimizer: new AdamW(params, { lr: c.lr }),
    gen: new Generator(o.seed + 7),
    history: [],
  };
  // the encoder's parameters need no gradient, so only the decoder's part of the graph is recorded
  return trainLoop(
    state,
    vaeStageLoss(vae, c, data, state.gen, c.latentNoise ?? 0),
    stageLoop(o, c, dir, 'decoder', { config: c, encoderFrom: source }),
  );
}

/** The VAE checkpoint folder of a run: `decoder/` when stage 1b has run, else `vae/`. */
export function vaeCheckpointDir(out: string): string {
  const decoder = join(out, 'decoder');
  return hasCheckpoint(decoder) ? decoder : join(out, 'vae');
}

/** The AutoencoderKL saved in the checkpoint folder `dir`. */
function loadVAEWeights(dir: string): AutoencoderKL {
  const meta = readCheckpointMeta(dir);
  const vae = buildVAE(meta.extra.config as VAETrainConfig);
  const { tensors } = readSafetensors(join(dir, 'checkpoint.safetensors'));
  vae.load(new Map([...tensors].filter(([k]) => k.startsWith('vae.')).map(([k, t]) => [k.slice(4), t])));
  return vae;
}

/** The trained VAE of a run folder (frozen): stage 1b's when it has run (its encoder is stage 1's). */
export function loadTrainedVAE(out: string): AutoencoderKL {
  const dir = vaeCheckpointDir(out);
  if (!hasCheckpoint(dir)) throw new Error(`no VAE checkpoint in ${dir}: run stage 'vae' first`);
  return loadVAEWeights(dir);
}

const vocabularyCache = new WeakMap<TrainingData, Map<number, string[]>>();

/** Captions that the vocabulary is learned from (in the Shapes world 1000 cover every word several times). */
export function vocabularyCaptions(data: TrainingData, n = 1000): string[] {
  let cache = vocabularyCache.get(data);
  if (!cache) {
    cache = new Map();
    vocabularyCache.set(data, cache);
  }
  let captions = cache.get(n);
  if (!captions) {
    captions = data.captions(VOCAB_DATA, n);
    cache.set(n, captions);
  }
  return captions;
}

/** Loads another run's unet-stage weights into a (possibly deeper) new model; returns a log line. */
function initFromRun(
  modules: { unet: Module; text_encoder: Module },
  c: TextToImageConfig,
  run: string,
): string {
  const dir = join(run, 'unet');
  if (!hasCheckpoint(dir)) throw new Error(`--init-from: no unet checkpoint in ${dir}`);
  const meta = readCheckpointMeta(dir);
  const from = meta.extra.config as TextToImageConfig;
  const levels = c.blockOutChannels.length - from.blockOutChannels.length;
  if (levels < 0 || (from.sampleSize ?? 16) !== (c.sampleSize ?? 16))
    throw new Error(
      `--init-from: ${run} has UNet levels [${from.blockOutChannels.join(', ')}] at latent size ` +
        `${from.sampleSize ?? 16}; this run needs as many or more levels at latent size ${c.sampleSize ?? 16}`,
    );
  const { tensors } = readSafetensors(join(dir, 'checkpoint.safetensors'));
  // the moving average when the run kept one: the weights it exported
  const prefix = meta.emaUpdates ? 'ema.' : '';
  const source = new Map(
    [...tensors]
      .filter(([k]) => (prefix ? k.startsWith(prefix) : !k.startsWith('adamw.') && !k.startsWith('ema.')))
      .map(([k, t]) => [k.slice(prefix.length), t]),
  );
  const r = growFrom(modules, source, levels);
  return (
    `initialised from ${dir} (step ${meta.step}${prefix ? ', moving average' : ''}), ${levels} level(s) added: ` +
    `${r.copied} tensors copied, ${r.fresh.length} new, ${r.unused.length} unused`
  );
}

/** Stage 2, on the examples of `data`. */
export function trainTextToImage(o: ShapesTrainOptions, data: TrainingData): LoopResult {
  const dir = join(o.out, 'unet');
  const vae = loadTrainedVAE(o.out);
  // the UNet works at the VAE's latent size; a resumed run keeps the architecture it was started with
  const resuming = o.resume && hasCheckpoint(dir);
  const saved = resuming ? readCheckpointMeta(dir).extra : null;
  const c: TextToImageConfig & StageOptions = {
    ...o.unet,
    ...(saved ? architectureOf(saved.config as TextToImageConfig) : {}),
    ...(saved ? objectiveOf(saved.config as TextToImageConfig, o.unet) : {}),
    sampleSize: data.imageSize / 2 ** (vae.config.blockOutChannels.length - 1),
    latentChannels: vae.config.latentChannels,
  };
  checkPrediction(c);
  const bpe = learnBPE(vocabularyCaptions(data));
  writeTokenizer(join(o.out, 'tokenizer'), bpe, c.maxLength);
  const tokenizer = tokenizerOf(bpe, c.maxLength);
  const vocabSize = Object.keys(bpe.vocab).length;
  const scalingFactor = saved
    ? (saved.scalingFactor as number)
    : measureScalingFactor(
        vae,
        data.examples(VOCAB_DATA, 0, c.scalingImages).images,
        new Generator(o.seed + 3),
      );
  o.log?.(`latent scaling factor ${scalingFactor.toFixed(5)}, vocabulary ${vocabSize} tokens`);
  const { unet, textEncoder } = buildTextToImage(c, vocabSize);
  initParameters(unet, new Generator(o.seed + 4));
  initParameters(textEncoder, new Generator(o.seed + 5), { embeddingStd: 0.02 });
  const grown =
    c.initFrom && !resuming ? initFromRun({ unet, text_encoder: textEncoder }, c, c.initFrom) : null;
  if (grown) o.log?.(grown);
  unet.requiresGrad();
  textEncoder.requiresGrad();
  const params = [...unet.parameters(), ...textEncoder.parameters()];
  const state: TrainState = {
    modules: { unet, text_encoder: textEncoder },
    optimizer: new AdamW(params, { lr: c.lr }),
    gen: new Generator(o.seed + 6),
    history: [],
    ...(c.ema ? { ema: new EMA(params, c.ema) } : {}),
  };
  const noise = trainingNoiseSchedule(c);
  const models = { unet, textEncoder, tokenizer, vae, scalingFactor, noise };
  return trainLoop(
    state,
    (step) => {
      const { images, captions, objects, words } = trainingBatch(data, UNET_DATA, step, c.batchSize);
      return textToImageLoss(models, images, captions, state.gen, {
        captionDropout: c.captionDropout,
        ...(c.prediction ? { prediction: c.prediction } : {}),
        weighting: { objects, objectWeight: c.objectWeight ?? 0 },
        ...(c.minSnrGamma !== undefined ? { minSnrGamma: c.minSnrGamma } : {}),
        ...(c.timestepBias ? { timestepBias: c.timestepBias } : {}),
        ...(c.x0WeightFloor !== undefined ? { x0WeightFloor: c.x0WeightFloor } : {}),
        ...(c.grounding
          ? {
              grounding: {
                words,
                tokenWeight: c.grounding.token,
                pixelWeight: c.grounding.pixel,
                ...(c.grounding.place !== undefined ? { placeWeight: c.grounding.place } : {}),
              },
            }
          : {}),
      });
    },
    stageLoop(o, c, dir, 'unet', {
      config: c,
      scalingFactor,
      vocabSize,
      ...(grown ? { grownFrom: c.initFrom } : {}),
    }),
  );
}
