// What a StableDiffusion pipeline is made of, as the loaders (folders, single files) hand it over.

import type { AutoencoderKL } from '../models/autoencoder-kl.js';
import type { CLIPTextModel } from '../models/clip-text.js';
import type { CLIPTokenizer } from '../models/clip-tokenizer.js';
import type { JsonConfig } from '../models/config.js';
import type { UNet2DConditionModel } from '../models/unet2d-condition.js';
import type { SDXLParts } from './sdxl.js';

/**
 * The loaded components of a Stable Diffusion model: UNet, VAE, text encoder, tokenizer, scheduler config,
 * and SDXL's second encoder.
 */
export interface StableDiffusionParts {
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  textEncoder: CLIPTextModel;
  tokenizer: CLIPTokenizer;
  schedulerConfig: JsonConfig;
  /** SDXL's second text encoder and tokenizer (absent for SD 1.x / 2.x). */
  xl?: SDXLParts;
}
