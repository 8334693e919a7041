// The tiny two-stage Shapes run the training tests share: a few-kilobyte VAE and UNet that train in seconds,
// and the recipe's stages bound to the Shapes world's data.

import { shapesTrainingData } from '../../src/lab/train-data.js';
import * as recipe from '../../src/train/shapes.js';
import { SHAPES_TRAIN_DEFAULTS, type ShapesTrainOptions } from '../../src/train/shapes.js';

/** A tiny run in `out`: `vaeSteps` and `unetSteps` steps of batch 2. */
export function tiny(out: string, vaeSteps: number, unetSteps: number, resume = false): ShapesTrainOptions {
  const d = SHAPES_TRAIN_DEFAULTS;
  return {
    ...d,
    out,
    resume,
    quiet: true,
    vae: {
      ...d.vae,
      blockOutChannels: [8, 16],
      normNumGroups: 8,
      latentChannels: 6,
      steps: vaeSteps,
      batchSize: 2,
      lr: 3e-3,
      warmup: 1,
    },
    unet: {
      ...d.unet,
      blockOutChannels: [16, 32],
      normNumGroups: 8,
      heads: 2,
      textHidden: 16,
      textLayers: 1,
      textHeads: 2,
      steps: unetSteps,
      batchSize: 2,
      lr: 2e-3,
      warmup: 1,
      scalingImages: 8,
      ema: 0.9,
    },
  };
}

/** The recipe's stages on the Shapes world's data. */
export const trainVAE = (o: ShapesTrainOptions) => recipe.trainVAE(o, shapesTrainingData);
export const trainDecoder = (o: ShapesTrainOptions) => recipe.trainDecoder(o, shapesTrainingData);
export const trainTextToImage = (o: ShapesTrainOptions) => recipe.trainTextToImage(o, shapesTrainingData);
