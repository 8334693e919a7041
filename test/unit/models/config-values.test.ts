// Config values checked at load (issue 25 items 5 and 7): every size and count against a stated limit before
// anything is allocated, and every value with a meaning (positivity, ranges, divisibility) — each error naming
// the file, the key, the value and, for sizes, the limit.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseCLIPTextConfig } from '../../../src/models/clip-text-config.js';
import { CONFIG_LIMITS, type JsonConfig } from '../../../src/models/config.js';
import { parseUNetConfig } from '../../../src/models/unet2d-config.js';
import { parseVAEConfig } from '../../../src/models/vae-config.js';
import { repoRoot } from '../../helpers/fixtures.js';

const fixture = join(repoRoot, 'test', 'fixtures', 'tiny-sd-a');
const seed = (f: string): JsonConfig => JSON.parse(readFileSync(join(fixture, f), 'utf8')) as JsonConfig;
const UNET = seed('unet/config.json');
const VAE = seed('vae/config.json');
const CLIP = seed('text_encoder/config.json');

/** Parses with `changes` applied (undefined deletes the key), timing it: a refusal comes before any allocation. */
function refuses(
  parse: (j: JsonConfig, where: string) => unknown,
  base: JsonConfig,
  changes: JsonConfig,
  re: RegExp,
) {
  const json: JsonConfig = { ...base };
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete json[k];
    else json[k] = v;
  }
  const t0 = performance.now();
  assert.throws(
    () => parse(json, 'm/config.json'),
    (e: Error) => {
      assert.equal(e.constructor, Error, e.message);
      assert.match(e.message, /^m\/config\.json/, e.message);
      assert.match(e.message, re, JSON.stringify(changes));
      assert.ok(e.message.length < 400, e.message);
      return true;
    },
    JSON.stringify(changes),
  );
  assert.ok(performance.now() - t0 < 200, `${JSON.stringify(changes)}: ${performance.now() - t0} ms`);
}

test('huge sizes and counts are refused by key, value and limit (issue 25 item 5)', () => {
  const over = /is over attnkit's limit of/;
  const unet: [JsonConfig, RegExp][] = [
    [{ layers_per_block: 100_000 }, /'layers_per_block' = 100000 is over attnkit's limit of 256/],
    [{ sample_size: 4096 }, /'sample_size' = 4096 is over attnkit's limit of 1024/],
    [{ sample_size: 100_000 }, /'sample_size'/],
    [{ block_out_channels: [32, 1e6] }, /'block_out_channels' = 1000000 is over/],
    [{ in_channels: 1e7 }, /'in_channels'/],
    [{ cross_attention_dim: 1e8 }, /'cross_attention_dim'/],
    [{ transformer_layers_per_block: 1e5 }, /'transformer_layers_per_block'/],
    [{ down_block_types: new Array(100).fill('DownBlock2D') }, /'down_block_types' has 100 entries/],
    [{ conv_in_kernel: 1001 }, /'conv_in_kernel'/],
  ];
  for (const [c, re] of unet) refuses(parseUNetConfig, UNET, c, re);
  refuses(parseUNetConfig, UNET, { layers_per_block: 100_000 }, over);
  const vae: [JsonConfig, RegExp][] = [
    [{ layers_per_block: 100_000 }, /'layers_per_block' = 100000 is over/],
    [{ sample_size: 1e9 }, /'sample_size' = 1000000000 is over/],
    [{ latent_channels: 1e6 }, /'latent_channels'/],
    [{ block_out_channels: [32, 64, 1e6] }, /'block_out_channels'/],
  ];
  for (const [c, re] of vae) refuses(parseVAEConfig, VAE, c, re);
  const clip: [JsonConfig, RegExp][] = [
    [{ num_hidden_layers: 1e6 }, /'num_hidden_layers' = 1000000 is over attnkit's limit of 256/],
    [{ vocab_size: 1e9 }, /'vocab_size' = 1000000000 is over/],
    [{ hidden_size: 1e6, num_attention_heads: 1 }, /'hidden_size'/],
    [{ intermediate_size: 1e7 }, /'intermediate_size'/],
    [{ max_position_embeddings: 1e7 }, /'max_position_embeddings'/],
    [{ num_attention_heads: 32768, hidden_size: 32768 }, /'hidden_size'|'num_attention_heads'/],
  ];
  for (const [c, re] of clip) refuses(parseCLIPTextConfig, CLIP, c, re);
});

test('limits admit the largest real models: SDXL UNet, SD 2.x, CLIP ViT-bigG text encoder', () => {
  const sdxl = {
    ...UNET,
    sample_size: 128,
    block_out_channels: [320, 640, 1280],
    down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
    up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
    attention_head_dim: [5, 10, 20],
    transformer_layers_per_block: [1, 2, 10],
    cross_attention_dim: 2048,
    use_linear_projection: true,
  };
  assert.equal(parseUNetConfig(sdxl).sampleSize, 128);
  const sd2 = { ...sdxl, sample_size: 96, cross_attention_dim: 1024, attention_head_dim: [5, 10, 20] };
  assert.equal(parseUNetConfig(sd2).sampleSize, 96);
  const bigG = {
    ...CLIP,
    hidden_size: 1280,
    intermediate_size: 5120,
    num_attention_heads: 20,
    num_hidden_layers: 32,
    vocab_size: 49408,
    max_position_embeddings: 77,
    hidden_act: 'gelu',
    bos_token_id: 0,
    eos_token_id: 2,
    pad_token_id: 1,
  };
  assert.equal(parseCLIPTextConfig(bigG).numHiddenLayers, 32);
  const sdxlVae = {
    ...VAE,
    block_out_channels: [128, 256, 512, 512],
    down_block_types: new Array(4).fill('DownEncoderBlock2D'),
    up_block_types: new Array(4).fill('UpDecoderBlock2D'),
    sample_size: 1024,
    scaling_factor: 0.13025,
  };
  assert.equal(parseVAEConfig(sdxlVae).sampleSize, 1024);
  assert.ok(CONFIG_LIMITS.channels >= 16384 && CONFIG_LIMITS.layers >= 256);
});

test('values with a meaning are checked at load, naming the key (issue 25 item 7)', () => {
  const unet: [JsonConfig, RegExp][] = [
    [{ norm_num_groups: 0 }, /'norm_num_groups' = 0/],
    [{ norm_num_groups: 24 }, /'norm_num_groups' = 24 must divide .*'block_out_channels'/],
    [{ block_out_channels: [32, 0] }, /'block_out_channels'/],
    [{ block_out_channels: [-32, 64] }, /'block_out_channels'/],
    [{ attention_head_dim: 7 }, /'attention_head_dim' = 7 .*must divide/],
    [{ num_attention_heads: 0 }, /'num_attention_heads'/],
    [{ norm_eps: 0 }, /'norm_eps' = 0 must be a number > 0/],
    [{ norm_eps: -1e-5 }, /'norm_eps'/],
    [{ layers_per_block: 0 }, /'layers_per_block' = 0/],
    [{ in_channels: 0 }, /'in_channels'/],
    [{ out_channels: -4 }, /'out_channels'/],
    [{ sample_size: 0 }, /'sample_size'/],
    [{ sample_size: 15 }, /'sample_size' = 15 must be a multiple of 2/],
    [{ cross_attention_dim: 0 }, /'cross_attention_dim'/],
    [{ transformer_layers_per_block: 0 }, /'transformer_layers_per_block'/],
    [{ conv_in_kernel: 4 }, /'conv_in_kernel' = 4 must be an odd/],
    [{ conv_out_kernel: 0 }, /'conv_out_kernel'/],
    [{ downsample_padding: -1 }, /'downsample_padding'/],
    [{ block_out_channels: [], down_block_types: [], up_block_types: [] }, /'down_block_types'/],
  ];
  for (const [c, re] of unet) refuses(parseUNetConfig, UNET, c, re);
  const vae: [JsonConfig, RegExp][] = [
    [{ scaling_factor: 0 }, /'scaling_factor' = 0 must be a number > 0/],
    [{ scaling_factor: -0.18 }, /'scaling_factor'/],
    [{ norm_num_groups: 5 }, /'norm_num_groups' = 5 must divide/],
    [{ latent_channels: 0 }, /'latent_channels'/],
    [{ layers_per_block: 0 }, /'layers_per_block'/],
    [{ in_channels: 0 }, /'in_channels'/],
    [{ block_out_channels: [32, 0] }, /'block_out_channels'/],
    [{ sample_size: -2 }, /'sample_size'/],
  ];
  for (const [c, re] of vae) refuses(parseVAEConfig, VAE, c, re);
  const clip: [JsonConfig, RegExp][] = [
    [{ layer_norm_eps: 0 }, /'layer_norm_eps' = 0 must be a number > 0/],
    [{ layer_norm_eps: -1 }, /'layer_norm_eps'/],
    [{ eos_token_id: 1000 }, /'eos_token_id' = 1000 must be a token id in \[0, 1000\)/],
    [{ bos_token_id: -1 }, /'bos_token_id'/],
    [{ pad_token_id: 5000 }, /'pad_token_id'/],
  ];
  for (const [c, re] of clip) refuses(parseCLIPTextConfig, CLIP, c, re);
});

test('quoted values in block-type messages are bounded', () => {
  const long = 'x'.repeat(5000);
  refuses(parseUNetConfig, UNET, { down_block_types: [long, 'DownBlock2D'] }, /'down_block_types'/);
  refuses(parseUNetConfig, UNET, { up_block_types: ['UpBlock2D', long] }, /'up_block_types'/);
  refuses(parseVAEConfig, VAE, { down_block_types: [long, long] }, /'down_block_types'/);
  refuses(parseVAEConfig, VAE, { up_block_types: new Array(2).fill(long) }, /'up_block_types'/);
});
