// Loads the tiny-sd-a golden model parts and tensors once per test file.

import { join } from 'node:path';
import { readSafetensors } from '../../src/io/safetensors.js';
import { AutoencoderKL } from '../../src/models/autoencoder-kl.js';
import { readConfig } from '../../src/models/config.js';
import { UNet2DConditionModel } from '../../src/models/unet2d-condition.js';
import type { Tensor } from '../../src/tensor/index.js';
import { goldenDir } from './fixtures.js';

let goldens: Map<string, Tensor> | undefined;

export function golden(key: string): Tensor {
  goldens ??= readSafetensors(join(goldenDir(), 'goldens.safetensors')).tensors;
  const t = goldens.get(key);
  if (!t) throw new Error(`golden tensor '${key}' not found`);
  return t;
}

export function goldenKeys(prefix: string): string[] {
  golden('unet.in.sample');
  return [...(goldens as Map<string, Tensor>).keys()].filter((k) => k.startsWith(prefix));
}

export function goldenUNet(): UNet2DConditionModel {
  const dir = join(goldenDir(), 'unet');
  return UNet2DConditionModel.fromConfig(readConfig(dir)).load(
    readSafetensors(join(dir, 'diffusion_pytorch_model.safetensors')).tensors,
  );
}

export function goldenVAE(): AutoencoderKL {
  const dir = join(goldenDir(), 'vae');
  return AutoencoderKL.fromConfig(readConfig(dir)).load(
    readSafetensors(join(dir, 'diffusion_pytorch_model.safetensors')).tensors,
  );
}
