// Training AnimateDiff's motion modules (Guo et al. 2024, "AnimateDiff", §4.2) on clips, with the image model
// frozen: the clip's frames are encoded by the frozen VAE, one timestep t per clip noises all its frames, and the
// UNet with the motion modules inserted predicts the model's target (ε, or v = √ᾱ ε − √(1 − ᾱ) z₀ for a
// v-prediction model, as its scheduler config says) for every frame; only the motion modules learn, from
//
//   L = E ‖target − f_θ(z_t^{1:F}, t, c)‖²,
//
// with the caption dropped (empty) with probability 0.1 as the image model was trained. The modules start with
// zero output projections, so step 0 is the image model exactly. Runs through trainLoop (checkpoints, resume,
// progress bar); the data come through `ClipData` (the CLI hands it Moving Shapes clips).

import {
  AdamW,
  concat,
  DDPMScheduler,
  Generator,
  initParameters,
  MotionAdapter,
  type MotionAdapterConfig,
  noGrad,
  type StableDiffusion,
  Tensor,
} from '../index.js';
import type { TrainState } from './checkpoint.js';
import { type LoopResult, trainLoop } from './loop.js';

/** Clips to train on: clip `k` of the run, its frames (F, 3, H, W) in [-1, 1] and its caption. */
export interface ClipData {
  frames: number;
  clip(k: number): { images: Tensor; caption: string };
}

export interface MotionTrainOptions {
  /** Checkpoint folder. */
  out: string;
  steps: number;
  minutes?: number;
  /** Clips per step (default 2). */
  clips?: number;
  /** Default 3e-4. */
  lr?: number;
  /** Attention heads of the motion modules (default 4). */
  heads?: number;
  /** Share of clips whose timestep is drawn from the noisier half [T/2, T) (default 0: uniform, AnimateDiff's). */
  highNoise?: number;
  seed?: number;
  resume?: boolean;
  checkpointMinutes?: number;
  quiet?: boolean;
  log?: (line: string) => void;
}

/** A MotionAdapter config that fits the image UNet: its channels, one module per resnet. */
export function motionConfigFor(sd: StableDiffusion, heads = 4): MotionAdapterConfig {
  const c = sd.unet.config;
  return {
    blockOutChannels: [...c.blockOutChannels],
    layersPerBlock: c.layersPerBlock,
    transformerLayers: 1,
    midLayers: 1,
    midTransformerLayers: 1,
    heads,
    normGroups: 8,
    maxSeqLength: 32,
  };
}

/**
 * A training timestep in [0, T): uniform (AnimateDiff's), or with probability `highNoise` uniform over the noisier
 * half [T/2, T), where this zero-terminal-SNR model decides a clip's layout — and so where the frames' motion
 * and identity are made (the image model's last steps only refine each frame).
 */
export function drawTimestep(gen: Generator, T: number, highNoise = 0): number {
  if (!(highNoise >= 0 && highNoise <= 1))
    throw new Error(`train motion: highNoise must be in [0, 1] (a share of clips), got ${highNoise}`);
  const high = highNoise > 0 && (gen.rand([1]).data[0] as number) < highNoise;
  const lo = high ? Math.ceil(T / 2) : 0;
  return gen.randint([1], lo, T).data[0] as number;
}

/** Trains a MotionAdapter for `sd` (frozen) on `data`; `<out>` holds the checkpoint (weights in diffusers' names). */
export function trainMotion(
  sd: StableDiffusion,
  data: ClipData,
  o: MotionTrainOptions,
): { result: LoopResult; adapter: MotionAdapter; history: Record<string, number>[] } {
  const seed = o.seed ?? 0;
  const clips = o.clips ?? 2;
  const config = motionConfigFor(sd, o.heads ?? 4);
  const adapter = new MotionAdapter(config);
  initParameters(adapter, new Generator(seed));
  adapter.zeroOutputs();
  adapter.requiresGrad();
  sd.unet.requiresGrad(false);
  const state: TrainState = {
    modules: { motion: adapter },
    optimizer: new AdamW(adapter.parameters(), { lr: o.lr ?? 3e-4 }),
    gen: new Generator(seed + 1),
    history: [],
  };
  const scheduler = DDPMScheduler.fromConfig(sd.schedulerConfig);
  const v = scheduler.config.prediction_type === 'v_prediction';
  if (!v && scheduler.config.prediction_type !== 'epsilon')
    throw new Error(
      `train motion: the model predicts '${scheduler.config.prediction_type}'; only epsilon and v_prediction are trained`,
    );
  const abar = scheduler.alphasCumprod;
  const f = data.frames;
  const empty = noGrad(() => sd.encodePrompt(['']));

  const lossAt = (step: number) => {
    const gen = state.gen;
    const z0: Tensor[] = [];
    const text: Tensor[] = [];
    const ts: number[] = [];
    for (let b = 0; b < clips; b++) {
      const { images, caption } = data.clip(step * clips + b);
      z0.push(sd.encodeImage(images));
      const drop = (gen.rand([1]).data[0] as number) < 0.1;
      const states = drop ? empty : noGrad(() => sd.encodePrompt([caption]));
      text.push(concat(new Array<Tensor>(f).fill(states), 0));
      const t = drawTimestep(gen, abar.length, o.highNoise ?? 0);
      ts.push(...new Array<number>(f).fill(t));
    }
    const x0 = concat(z0, 0); // (clips·F, C, h, w)
    const noise = gen.randn(x0.shape);
    const xt = scheduler.addNoise(x0, noise, ts);
    const a = ts.map((t) => Math.sqrt(abar[t] as number));
    const s = ts.map((t) => Math.sqrt(1 - (abar[t] as number)));
    const perRow = (xs: number[]) => new Tensor(Float32Array.from(xs), [xs.length, 1, 1, 1]);
    const target = v ? noise.mul(perRow(a)).sub(x0.mul(perRow(s))) : noise;
    const pred = sd.unet.forward(xt, ts, concat(text, 0), { motion: { adapter, frames: f } });
    const loss = pred.sub(target).pow(2).mean();
    return { loss, logs: { t: ts[0] as number } };
  };
  const result = trainLoop(state, lossAt, {
    dir: o.out,
    label: 'motion',
    steps: o.steps,
    ...(o.minutes !== undefined ? { minutes: o.minutes } : {}),
    lr: o.lr ?? 3e-4,
    warmup: 20,
    clip: 1,
    checkpointMinutes: o.checkpointMinutes ?? 5,
    resume: o.resume ?? false,
    extra: { config },
    quiet: o.quiet ?? false,
    ...(o.log ? { log: o.log, logEvery: 10 } : {}),
  });
  return { result, adapter, history: state.history };
}

/** diffusers' MotionAdapter config.json of a config. */
export function motionAdapterConfigJson(c: MotionAdapterConfig): Record<string, unknown> {
  return {
    _class_name: 'MotionAdapter',
    block_out_channels: c.blockOutChannels,
    motion_layers_per_block: c.layersPerBlock,
    motion_transformer_layers_per_block: c.transformerLayers,
    motion_mid_block_layers_per_block: Math.max(1, c.midLayers),
    motion_transformer_layers_per_mid_block: c.midTransformerLayers,
    motion_num_attention_heads: c.heads,
    motion_norm_num_groups: c.normGroups,
    motion_max_seq_length: c.maxSeqLength,
    use_motion_mid_block: c.midLayers > 0,
  };
}
