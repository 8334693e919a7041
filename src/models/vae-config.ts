// The config of AutoencoderKL (diffusers' `AutoencoderKL` config.json): read once into a typed config the model
// (autoencoder-kl.ts) is built from; any value attnkit does not implement is an error naming the key.

import { jsonPreview } from '../io/json-preview.js';
import { CONFIG_LIMITS, ConfigReader, type JsonConfig } from './config.js';

/** A VAE's `config.json` read into typed fields. */
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

/** Reads a diffusers `AutoencoderKL` config; errors name the key and `where`. */
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
  // force_upcast (diffusers ≥ 0.21) tells a float16 pipeline to run the VAE in float32; attnkit computes in
  // float32 throughout, so true and false give the same result. Accepted either way, checked to be a boolean
  // (docs/design.md, Model formats).
  r.bool('force_upcast', true);
  const boc = r.sizes('block_out_channels', 'channels');
  if (boc.length < 1 || boc.length > CONFIG_LIMITS.blocks) {
    throw new Error(
      `${where}: config key 'block_out_channels' has ${boc.length} entries; attnkit's limit is 1 to ` +
        `${CONFIG_LIMITS.blocks} blocks (CONFIG_LIMITS.blocks), far above any real model: fix the file`,
    );
  }
  for (const [key, type] of [
    ['down_block_types', 'DownEncoderBlock2D'],
    ['up_block_types', 'UpDecoderBlock2D'],
  ] as const) {
    const types = r.strings(key);
    if (types.some((t) => t !== type) || types.length !== boc.length) {
      throw new Error(`${where}: '${key}' must be ${boc.length} × ${type}, got ${jsonPreview(types)}`);
    }
  }
  const c: VAEConfig = {
    inChannels: r.size('in_channels', 'channels', 3),
    outChannels: r.size('out_channels', 'channels', 3),
    latentChannels: r.size('latent_channels', 'channels', 4),
    blockOutChannels: boc,
    layersPerBlock: r.size('layers_per_block', 'layers', 1),
    normNumGroups: r.size('norm_num_groups', 'channels', 32),
    sampleSize: r.size('sample_size', 'imageSampleSize', 32),
    scalingFactor: r.positive('scaling_factor', 0.18215),
  };
  const bad = boc.find((ch) => ch % c.normNumGroups !== 0);
  if (bad !== undefined) {
    throw r.invalid(
      'norm_num_groups',
      c.normNumGroups,
      `must divide every entry of 'block_out_channels' (${bad})`,
    );
  }
  return c;
}
