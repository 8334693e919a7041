// The config of AutoencoderKL (diffusers' `AutoencoderKL` config.json): read once into a typed config the model
// (autoencoder-kl.ts) is built from; any value attnkit does not implement is an error naming the key.

import { ConfigReader, type JsonConfig } from './config.js';

export interface VAEConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  normNumGroups: number;
  sampleSize: number;
  scalingFactor: number;
}

export function parseVAEConfig(json: JsonConfig, where = 'vae/config.json'): VAEConfig {
  const r = new ConfigReader(json, where);
  r.require('_class_name', ['AutoencoderKL']);
  r.require('act_fn', ['silu']);
  r.require('use_quant_conv', [true]);
  r.require('use_post_quant_conv', [true]);
  r.require('mid_block_add_attention', [true]);
  r.require('shift_factor', [null]);
  r.require('latents_mean', [null]);
  r.require('latents_std', [null]);
  const boc = r.ints('block_out_channels');
  const down = r.strings('down_block_types');
  const up = r.strings('up_block_types');
  if (down.some((t) => t !== 'DownEncoderBlock2D') || down.length !== boc.length) {
    throw new Error(
      `${where}: 'down_block_types' must be ${boc.length} × DownEncoderBlock2D, got ${JSON.stringify(down)}`,
    );
  }
  if (up.some((t) => t !== 'UpDecoderBlock2D') || up.length !== boc.length) {
    throw new Error(
      `${where}: 'up_block_types' must be ${boc.length} × UpDecoderBlock2D, got ${JSON.stringify(up)}`,
    );
  }
  return {
    inChannels: r.int('in_channels', 3),
    outChannels: r.int('out_channels', 3),
    latentChannels: r.int('latent_channels', 4),
    blockOutChannels: boc,
    layersPerBlock: r.int('layers_per_block', 1),
    normNumGroups: r.int('norm_num_groups', 32),
    sampleSize: r.int('sample_size', 32),
    scalingFactor: r.number('scaling_factor', 0.18215),
  };
}
