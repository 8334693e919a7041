// Two ways to spend less compute per step, timed against the plain run: token merging (ToMe for Stable
// Diffusion, Bolya & Hoffman 2023) merges similar image tokens before self-attention and unmerges them after;
// block caching (Wimbauer et al. 2024, "Cache Me if You Can") reuses each attention block's output from the
// previous step instead of computing it. Writes out/tome-block-caching.png: plain, ToMe, cached, both.

import { BlockCaching, type Controller, imageGrid, StableDiffusion, TokenMerging, writePng } from 'attnkit';

const steps = Number(process.env.ATTNKIT_EXAMPLE_STEPS ?? 25);
const sd = StableDiffusion.fromPretrained();
const prompt = 'a red circle above a blue square';

const runs: { label: string; controllers: () => Controller[] }[] = [
  { label: 'plain', controllers: () => [] },
  { label: 'tome 0.5', controllers: () => [new TokenMerging({ ratio: 0.5 })] },
  // a fixed plan: every block computed on even steps, reused on odd ones
  { label: 'cache 1/2', controllers: () => [new BlockCaching({ plan: (call) => call.step % 2 === 1 })] },
  {
    label: 'both',
    controllers: () => [
      new TokenMerging({ ratio: 0.5 }),
      new BlockCaching({ plan: (call) => call.step % 2 === 1 }),
    ],
  },
];

sd.generate({ prompt, steps: 1, seed: 0 }); // warm-up: the first run builds the kernels' sessions
const tiles = [];
for (const run of runs) {
  const start = performance.now();
  const { images } = sd.generate({ prompt, steps, seed: 0, controllers: run.controllers() });
  console.log(`${run.label.padEnd(10)} ${((performance.now() - start) / 1000).toFixed(2)} s`);
  tiles.push(images);
}
writePng('out/tome-block-caching.png', imageGrid(tiles, { labels: runs.map((r) => r.label), zoom: 2 }));
console.log(`wrote out/tome-block-caching.png (${steps} steps each)`);
