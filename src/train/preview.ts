// What a trained VAE does to held-out images: a grid with the images on the top row and their
// reconstructions D(mean of q(z|x)) below.

import { type AutoencoderKL, imageGrid, noGrad, writePng } from '../index.js';
import type { TrainingData } from './data.js';

/**
 * Writes a grid of held-out images (top row) and the VAE's reconstructions of them (below): what a trained
 * VAE keeps.
 */
export function writeReconstructionGrid(vae: AutoencoderKL, data: TrainingData, path: string, n = 8): void {
  const images = data.heldOut(n);
  const recon = noGrad(() => vae.decode(vae.encode(images).mean).clamp(-1, 1));
  writePng(path, imageGrid([...images.split(n, 0), ...recon.split(n, 0)], { cols: n, zoom: 2 }));
}
