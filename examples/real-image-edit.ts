// Editing a given image: DDIM inversion (Song et al. 2021) with the source prompt finds the noise that
// regenerates it; Prompt-to-Prompt (Hertz et al. 2022) then generates the target prompt from that noise with
// the source's attention maps, the source row pinned to the inversion's trajectory. The image here is a scene
// drawn by the Shapes world's renderer (attnkit/lab), not by the model; pass a 64×64 PNG and its caption to
// edit your own: node real-image-edit.js in.png "a red circle". Writes out/real-image-edit.png: input, edit.

import { editPrompt, imageGrid, readPng, StableDiffusion, writePng } from 'attnkit';
import { captionOf, isColorName, renderScene, sampleScene } from 'attnkit/lab';

const steps = Number(process.env.ATTNKIT_EXAMPLE_STEPS ?? 25);
const sd = StableDiffusion.fromPretrained();
const [path, caption] = process.argv.slice(2);
const scene = sampleScene(7, { objects: 1 });
const image = path ? readPng(path) : renderScene(scene).image; // (1, 3, 64, 64) in [-1, 1]
const sourcePrompt = caption ?? captionOf(scene).text;
// the edit: every colour word becomes another colour
const targetPrompt = sourcePrompt
  .split(' ')
  .map((word) => (isColorName(word) ? (word === 'blue' ? 'red' : 'blue') : word))
  .join(' ');

const { target } = editPrompt(sd, { image, source: sourcePrompt, target: targetPrompt, steps });
writePng('out/real-image-edit.png', imageGrid([image, target], { labels: ['input', 'edit'], zoom: 2 }));
console.log(`wrote out/real-image-edit.png ("${sourcePrompt}" → "${targetPrompt}", ${steps} steps)`);
