// MasaCtrl (Cao et al. 2023, "MasaCtrl: Tuning-Free Mutual Self-Attention Control"): from a start step and
// layer on, the target's self-attention queries the source's keys and values, so the target keeps the source's
// objects and look while its prompt changes them. Writes out/masactrl.png: source, target.

import { editFeatures, imageGrid, MASACTRL_START_STEP, StableDiffusion, writePng } from 'attnkit';

const steps = Number(process.env.ATTNKIT_EXAMPLE_STEPS ?? 25);
const sd = StableDiffusion.fromPretrained();
const { source, target } = editFeatures(sd, {
  method: 'masactrl',
  source: 'a small yellow circle',
  target: 'a large yellow circle',
  // the reference starts at step 4; on a short run, before the last step
  masactrl: { startStep: Math.min(MASACTRL_START_STEP, steps - 1) },
  steps,
  seed: 0,
});
writePng('out/masactrl.png', imageGrid([source, target], { labels: ['small', 'large'], zoom: 2 }));
console.log(`wrote out/masactrl.png (${steps} steps)`);
