// Text to image on the built-in Shapes model: classifier-free guidance (Ho & Salimans 2022), DDIM sampling.
// Run: npx tsx examples/generate.ts in a project with attnkit installed; writes out/generate.png.

import { imageGrid, StableDiffusion, writePng } from 'attnkit';

const steps = Number(process.env.ATTNKIT_EXAMPLE_STEPS ?? 25);
const sd = StableDiffusion.fromPretrained(); // the built-in model; or the path of a diffusers folder
const prompts = ['a red circle above a blue square', 'a large green triangle'];
const { images } = sd.generate({ prompt: prompts, steps, seed: 0, guidanceScale: 7.5 });

// images: (2, 3, 64, 64) in [-1, 1], one row per prompt
const tiles = prompts.map((_, i) => images.slice(0, i, i + 1));
writePng('out/generate.png', imageGrid(tiles, { labels: ['red circle', 'green triangle'], zoom: 2 }));
console.log(`wrote out/generate.png (${prompts.length} images, ${steps} steps)`);
