// Where a word lands in the image: DAAM's heat-map (Tang et al. 2023, "What the DAAM: Interpreting Stable
// Diffusion Using Cross Attention") — the cross-attention maps of the word's tokens, summed over layers, heads
// and steps, upsampled to the image. Writes out/heatmaps.png: the image, then one overlay per word.

import {
  expandAs,
  generateWithHeatMaps,
  imageGrid,
  overlayHeatMap,
  StableDiffusion,
  writePng,
} from 'attnkit';

const steps = Number(process.env.ATTNKIT_EXAMPLE_STEPS ?? 25);
const sd = StableDiffusion.fromPretrained();
const prompt = 'a red circle above a blue square';
const run = generateWithHeatMaps(sd, { prompt, steps, seed: 0 });

const [, , h, w] = run.image.shape as [number, number, number, number];
const words = ['circle', 'square'];
const overlays = words.map((word) => {
  const heat = expandAs(run.heatMap.wordHeatMap(word), [h, w]); // (h, w) in [0, 1]
  return overlayHeatMap(run.image, heat);
});
writePng('out/heatmaps.png', imageGrid([run.image, ...overlays], { labels: ['image', ...words], zoom: 2 }));
console.log(`wrote out/heatmaps.png (${words.join(', ')}; ${run.store.numSteps} steps aggregated)`);
