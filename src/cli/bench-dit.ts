// `attnkit bench` on the built-in DiT Shapes model (an SD3-style folder, models/shapes-dit-v1): the same held-out
// prompts, seed, steps and guidance as the UNet model's rows (bench-shapes.ts), the same methods by name — the
// function level on the joint calls, ToMe on the image stream of each joint block, block caching of whole joint
// blocks — sampled with the model's flow-matching scheduler; scored by the same ShapesEval code.

import type { AttentionCall, Controller } from '../attention/index.js';
import { linearAttention, useAttention } from '../methods/function/index.js';
import { StableDiffusion3 } from '../pipelines/sd3.js';
import { type Measured, method } from './bench-methods.js';
import { timeShapes } from './bench-shapes.js';
import { forDiT } from './generate-dit.js';

/** The UNet's generate() default guidance, which the UNet rows run with. */
const GUIDANCE = 7.5;

const joint = (c: AttentionCall) => c.kind === 'joint';

/**
 * The bench's controllers of method `name` on the DiT: the UNet's, set up for a DiT (`forDiT`), except the linear
 * functions, which the UNet rows restrict to self-attention — on the DiT they act on the joint calls, the image's
 * self-attention and its attention to the text in one (the function level takes whole calls).
 */
export function ditControllers(name: string): Controller[] {
  if (name === 'linear-elu' || name === 'linear-relu') {
    const featureMap = name === 'linear-elu' ? 'elu' : 'relu';
    return [useAttention(linearAttention({ featureMap }), { appliesTo: joint })];
  }
  return method(name).controllers().map(forDiT);
}

/** `measureShapes` for a DiT folder: one batched guided generation of every prompt; seconds per step. */
export function measureShapesDiT(
  name: string,
  dir: string,
  prompts: number,
  steps: number,
  out: string,
): Measured {
  const sd = StableDiffusion3.fromPretrained(dir);
  const controllers = ditControllers(name);
  const generate = (prompt: string[], n: number, seed: number) =>
    sd.generate({ prompt, steps: n, seed, guidanceScale: GUIDANCE, controllers });
  return timeShapes(generate, controllers, prompts, steps, out, 'DiT, flow matching');
}
