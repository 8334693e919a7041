// Stable Diffusion 1.5's architecture with seeded random weights, for measurements that need the real model's
// shapes and cost but not its weights: `attnkit bench` and `npm run bench` (bench/unet.ts) build the same
// model from here.

import { GroupNorm, LayerNorm } from '../nn/index.js';
import { Tensor } from '../tensor/index.js';
import type { JsonConfig } from './config.js';
import { UNet2DConditionModel } from './unet2d-condition.js';
import { parseUNetConfig } from './unet2d-config.js';

/** Stable Diffusion 1.5's unet/config.json (the architecture; the weights here are random). */
export const SD15_UNET_CONFIG = {
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
};

/** SD 1.x's scheduler_config.json, as DDIM. */
export const SD15_SCHEDULER_CONFIG = {
  _class_name: 'DDIMScheduler',
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  num_train_timesteps: 1000,
  steps_offset: 1,
  clip_sample: false,
  set_alpha_to_one: false,
};

/**
 * A UNet of the given diffusers config with seeded random weights: conv / linear weights and biases ~ U(±0.02·√3)
 * from a fast LCG per parameter (seeded by its index), norm scales 1 and shifts 0 — deterministic, so every
 * process builds the same model (the SD1.5 one in ~2 s).
 */
export function randomUNet(config: JsonConfig): UNet2DConditionModel {
  const unet = new UNet2DConditionModel(parseUNetConfig(config));
  const norms = new Set<unknown>();
  for (const [, m] of unet.namedModules()) {
    if (m instanceof GroupNorm || m instanceof LayerNorm) {
      m.weight.value = Tensor.ones(m.weight.shape);
      m.bias.value = Tensor.zeros(m.bias.shape);
      norms.add(m.weight);
      norms.add(m.bias);
    }
  }
  const a = 0.02 * Math.sqrt(3);
  let index = 0;
  for (const [, p] of unet.namedParameters()) {
    index++;
    if (norms.has(p)) continue;
    const data = new Float32Array(p.shape.reduce((x, y) => x * y, 1));
    let s = (Math.imul(index, 0x9e3779b1) ^ 0x5bd1e995) >>> 0;
    for (let i = 0; i < data.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      data[i] = (s * 2 ** -31 - 1) * a;
    }
    p.value = new Tensor(data, p.shape);
  }
  return unet;
}

/** The SD1.5 UNet with seeded random weights (`randomUNet` of SD1.5's config). */
export function randomSD15UNet(): UNet2DConditionModel {
  return randomUNet(SD15_UNET_CONFIG);
}
