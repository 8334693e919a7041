// What a trained VAE does to held-out scenes: a grid with the scenes on the top row and their
// reconstructions D(mean of q(z|x)) below (scene seeds ≥ 10⁹, never trained on).

import { writePng } from '../io/png.js';
import { imageGrid } from '../io/render.js';
import { renderScene } from '../lab/shapes/render.js';
import { sampleScene } from '../lab/shapes/scene.js';
import { heldOutSeed } from '../lab/shapes-eval.js';
import type { AutoencoderKL } from '../models/autoencoder-kl.js';
import { concat, noGrad } from '../tensor/index.js';

export function writeReconstructionGrid(vae: AutoencoderKL, path: string, n = 8): void {
  const scenes = Array.from({ length: n }, (_, i) => renderScene(sampleScene(heldOutSeed(i))).image);
  const recon = noGrad(() => vae.decode(vae.encode(concat(scenes, 0)).mean).clamp(-1, 1));
  writePng(path, imageGrid([...scenes, ...recon.split(n, 0)], { cols: n, zoom: 2 }));
}
