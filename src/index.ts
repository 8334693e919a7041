// attnkit: Stable-Diffusion-family models in Node.js with every attention layer open to change.

export * from './attention/index.js';
export { readPng, writeGrayPng, writePng } from './io/png.js';
export { readSafetensors, writeSafetensors } from './io/safetensors.js';
export { setThreads } from './kernels/ort.js';
export { AutoencoderKL } from './models/autoencoder-kl.js';
export { CLIPTextModel } from './models/clip-text.js';
export { CLIPTokenizer } from './models/clip-tokenizer.js';
export { UNet2DConditionModel } from './models/unet2d-condition.js';
export * from './nn/index.js';
export { exportTextEncoder, exportUNet, exportVAEDecoder, exportVAEEncoder } from './pipelines/export.js';
export { type GenerateOptions, type GenerateResult, StableDiffusion } from './pipelines/stable-diffusion.js';
export * from './schedulers/index.js';
export * from './tensor/index.js';
export { Generator, rand, randn } from './tensor/random.js';
