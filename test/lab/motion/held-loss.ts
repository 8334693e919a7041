// The motion training's held-constant loss (docs/video.md, "Second run"): the v-loss of 4 fixed training-range
// clips at fixed timesteps and noise, for the adapter with its outputs zeroed (= the image model) and as trained.
// The per-step training loss swings with the timestep drawn; this one moves only with the weights.
//   node --import tsx test/lab/motion/held-loss.ts runs/motion/adapter

import { movingShapesData } from '../../../src/cli/train-motion.js';
import {
  concat,
  DDPMScheduler,
  Generator,
  MotionAdapter,
  noGrad,
  StableDiffusion,
  type Tensor,
} from '../../../src/index.js';

const dir = process.argv[2];
if (!dir) throw new Error('held-loss: give the MotionAdapter folder, e.g. runs/motion/adapter');
const sd = StableDiffusion.fromPretrained();
const trained = MotionAdapter.fromPretrained(dir);
const zero = MotionAdapter.fromPretrained(dir).zeroOutputs();
const scheduler = DDPMScheduler.fromConfig(sd.schedulerConfig);
const abar = scheduler.alphasCumprod;
const data = movingShapesData(8);
// (clip k of the training range, timestep)
const items = [
  [900_001, 750],
  [900_002, 600],
  [900_003, 850],
  [900_004, 450],
] as const;
const gen = new Generator(77);
const losses = { zero: [] as number[], trained: [] as number[] };
noGrad(() => {
  for (const [k, t] of items) {
    const { images, caption } = data.clip(k);
    const x0 = sd.encodeImage(images);
    const noise = gen.randn(x0.shape);
    const ts = new Array<number>(8).fill(t);
    const xt = scheduler.addNoise(x0, noise, ts);
    // v = √ᾱ ε − √(1 − ᾱ) x0
    const target = noise.mul(Math.sqrt(abar[t] as number)).sub(x0.mul(Math.sqrt(1 - (abar[t] as number))));
    const text = concat(new Array<Tensor>(8).fill(sd.encodePrompt([caption])), 0);
    for (const [name, adapter] of [
      ['zero', zero],
      ['trained', trained],
    ] as const) {
      const pred = sd.unet.forward(xt, ts, text, { motion: { adapter, frames: 8 } });
      losses[name].push(pred.sub(target).pow(2).mean().item());
    }
    console.log(k, t, losses.zero.at(-1), losses.trained.at(-1));
  }
});
const mean = (x: number[]) => x.reduce((a, b) => a + b, 0) / x.length;
console.log('mean zero', mean(losses.zero), 'trained', mean(losses.trained));
