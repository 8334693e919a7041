// A word swap with Prompt-to-Prompt (Hertz et al. 2022): the target prompt is generated from the same noise
// while its cross-attention maps are the source's (AttentionReplace), so the layout stays; LocalBlend keeps
// the latents outside the swapped words' attention region those of the source image.
// Writes out/p2p-local-blend.png: source, target.

import { editPrompt, imageGrid, StableDiffusion, writePng } from 'attnkit';

const steps = Number(process.env.ATTNKIT_EXAMPLE_STEPS ?? 25);
const sd = StableDiffusion.fromPretrained();
const { source, target, method } = editPrompt(sd, {
  source: 'a red circle above a blue square',
  target: 'a red triangle above a blue square',
  method: 'replace',
  crossReplaceSteps: 0.8, // the maps are the source's for the first 80 % of the steps
  selfReplaceSteps: 0.4,
  blend: ['circle', 'triangle'], // LocalBlend: only this region may change
  steps,
  seed: 0,
});
writePng('out/p2p-local-blend.png', imageGrid([source, target], { labels: ['circle', 'triangle'], zoom: 2 }));
console.log(`wrote out/p2p-local-blend.png (${method} with LocalBlend, ${steps} steps)`);
