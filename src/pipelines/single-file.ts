// Single-file Stable Diffusion checkpoints (the original LDM layout: one `.safetensors` with the UNet under
// `model.diffusion_model.`, the VAE under `first_stage_model.`, the text encoder under `cond_stage_model.`):
// the architecture is read from the tensors' names and shapes, written as the diffusers configs a folder
// would hold (so the same config checks apply), the keys renamed by models/ldm-keys.ts, and each model loaded
// strictly — every tensor of the file used, each mismatch named by its key in the file.
//
// SD 1.x: OpenAI CLIP ViT-L/14 text encoder (`cond_stage_model.transformer.`), 8 heads in every UNet
// transformer (LDM's `num_heads: 8`). SD 2.x: OpenCLIP ViT-H/14 (`cond_stage_model.model.`, fused in_proj),
// 64 channels per head (LDM's `num_head_channels: 64`), linear proj_in/proj_out. What the tensors cannot
// tell comes from diffusers' defaults for such files (SD 1.x: 512 px, ε-prediction; SD 2.x: 768 px,
// v-prediction, as SD 2.0 / 2.1 768-v — a 2-base file, 512 px and ε, needs `config` overrides) or from
// `config` overrides, merged over the inferred configs (heads of models off these conventions, too).

import { existsSync, statSync } from 'node:fs';
import { readSafetensors } from '../io/safetensors.js';
import { AutoencoderKL } from '../models/autoencoder-kl.js';
import { CLIPTextModel } from '../models/clip-text.js';
import { parseCLIPTextConfig } from '../models/clip-text-config.js';
import { CLIPTokenizer } from '../models/clip-tokenizer.js';
import type { JsonConfig } from '../models/config.js';
import {
  ldmCLIPMapKey,
  ldmUNetMapKey,
  ldmVAEMapKey,
  type MapKey,
  openCLIPMapKey,
} from '../models/ldm-keys.js';
import { UNet2DConditionModel } from '../models/unet2d-condition.js';
import { parseUNetConfig } from '../models/unet2d-config.js';
import { parseVAEConfig } from '../models/vae-config.js';
import type { Module } from '../nn/index.js';
import { checkSchedulerConfig } from '../schedulers/index.js';
import { formatShape, type Tensor } from '../tensor/index.js';
import type { StableDiffusionParts } from './parts.js';

/** The Stable Diffusion family of a single-file checkpoint: 1.x or 2.x. */
export type SingleFileFamily = 'sd1' | 'sd2';

/** Overrides merged over the configs inferred from the file (diffusers' config.json keys). */
export interface SingleFileConfigOverrides {
  unet?: JsonConfig;
  vae?: JsonConfig;
  text_encoder?: JsonConfig;
  /** SDXL files: the second text encoder (CLIPTextModelWithProjection). */
  text_encoder_2?: JsonConfig;
  scheduler?: JsonConfig;
}

/**
 * How to load a single-file checkpoint: the tokenizer folder and the config overrides the weights cannot
 * tell.
 */
export interface SingleFileOptions {
  /**
   * A CLIP tokenizer folder (vocab.json, merges.txt, optional tokenizer_config.json), e.g. the `tokenizer/`
   * of a diffusers folder of the same family. Required: a single file holds no tokenizer, and attnkit ships
   * no CLIP vocabulary.
   */
  tokenizer?: string;
  /** SDXL files: the second tokenizer's folder (diffusers' tokenizer_2/; SDXL pads with '!'). */
  tokenizer2?: string;
  config?: SingleFileConfigOverrides;
}

export const UNET_PREFIX = 'model.diffusion_model.';
export const VAE_PREFIX = 'first_stage_model.';
export const CLIP_PREFIX = 'cond_stage_model.transformer.';
export const OPENCLIP_PREFIX = 'cond_stage_model.model.';

/**
 * Tensors of a training checkpoint that are not weights: LDM's DDPM schedule buffers (recomputed by the
 * scheduler from its config) and the EMA's bookkeeping scalars. Read and set aside by name.
 */
export const NOT_WEIGHTS = new Set([
  'betas',
  'alphas_cumprod',
  'alphas_cumprod_prev',
  'sqrt_alphas_cumprod',
  'sqrt_one_minus_alphas_cumprod',
  'log_one_minus_alphas_cumprod',
  'sqrt_recip_alphas_cumprod',
  'sqrt_recipm1_alphas_cumprod',
  'posterior_variance',
  'posterior_log_variance_clipped',
  'posterior_mean_coef1',
  'posterior_mean_coef2',
  'model_ema.decay',
  'model_ema.num_updates',
]);

/** Stable Diffusion's training schedule (LDM's linear_start / linear_end on √β, 1000 steps), as diffusers. */
export const SD_SCHEDULER_CONFIG: JsonConfig = {
  _class_name: 'DDIMScheduler',
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  num_train_timesteps: 1000,
  clip_sample: false,
  set_alpha_to_one: false,
  steps_offset: 1,
  prediction_type: 'epsilon',
};

/**
 * OpenCLIP ViT-H/14 has 24 layers; SD 2 conditions on the penultimate one (FrozenOpenCLIPEmbedder's
 * `layer: penultimate`), so its 24th block is never run and diffusers' folders hold 23 layers. A file with a
 * block at index 23 has that block dropped (by name), as diffusers' own loader does; a tower of 23 blocks (what
 * diffusers' conversion script writes) is used whole.
 */
export const OPENCLIP_SD2_LAYERS = 23;

type Shapes = ReadonlyMap<string, readonly number[]>;

/** The file's tensors by family, each with its prefix removed; keys of no family are an error naming them. */
export function splitSingleFile<T>(
  tensors: ReadonlyMap<string, T>,
  where = 'single file',
): {
  family: SingleFileFamily;
  unet: Map<string, T>;
  vae: Map<string, T>;
  text: Map<string, T>;
} {
  const unet = new Map<string, T>();
  const vae = new Map<string, T>();
  const clip = new Map<string, T>();
  const openclip = new Map<string, T>();
  const stray: string[] = [];
  const parts: [string, Map<string, T>][] = [
    [UNET_PREFIX, unet],
    [VAE_PREFIX, vae],
    [CLIP_PREFIX, clip],
    [OPENCLIP_PREFIX, openclip],
  ];
  for (const [k, t] of tensors) {
    const part = parts.find(([p]) => k.startsWith(p));
    if (part) part[1].set(k.slice(part[0].length), t);
    else if (!NOT_WEIGHTS.has(k)) stray.push(k);
  }
  if (stray.length > 0) {
    throw new Error(
      `${where}: ${stray.length} tensor(s) outside the Stable Diffusion single-file layout ` +
        `(${UNET_PREFIX}, ${VAE_PREFIX}, ${CLIP_PREFIX} or ${OPENCLIP_PREFIX}): ${stray.slice(0, 10).join(', ')}` +
        (stray.some((k) => k.startsWith('model_ema.'))
          ? ' (EMA weights: use a pruned file, which holds the EMA weights as the model weights)'
          : '') +
        (stray.some((k) => k.startsWith('conditioner.'))
          ? ' (an SDXL file: load it with StableDiffusion.fromSingleFile or readSDXLSingleFile)'
          : ''),
    );
  }
  for (const [name, m] of [
    ['UNet', unet],
    ['VAE', vae],
  ] as const) {
    if (m.size === 0)
      throw new Error(
        `${where}: no ${name} tensors (keys starting ${name === 'UNet' ? UNET_PREFIX : VAE_PREFIX})`,
      );
  }
  if (clip.size > 0 === openclip.size > 0) {
    throw new Error(
      `${where}: expected one text encoder, under ${CLIP_PREFIX} (SD 1.x) or ${OPENCLIP_PREFIX} (SD 2.x); ` +
        `found ${clip.size > 0 ? 'both' : 'neither'}`,
    );
  }
  return clip.size > 0
    ? { family: 'sd1', unet, vae, text: clip }
    : { family: 'sd2', unet, vae, text: openclip };
}

function shapeIn(shapes: Shapes, what: string, prefix: string, where: string) {
  return (key: string): readonly number[] => {
    const s = shapes.get(key);
    if (!s)
      throw new Error(
        `${where}: missing ${what} tensor '${prefix}${key}' (needed to infer the architecture)`,
      );
    return s;
  };
}

/** Sorted distinct values of the first number after `prefix` in the keys. */
function indicesAfter(shapes: Shapes, prefix: string): number[] {
  const out = new Set<number>();
  for (const k of shapes.keys()) {
    if (!k.startsWith(prefix)) continue;
    const m = /^(\d+)\./.exec(k.slice(prefix.length));
    if (m) out.add(Number(m[1]));
  }
  return [...out].sort((a, b) => a - b);
}

export interface InferredUNet {
  config: JsonConfig;
  layersPerBlock: number;
}

/** The UNet's diffusers config from LDM-named shapes (prefix removed). */
export function inferUNetConfig(
  shapes: Shapes,
  family: SingleFileFamily,
  where = 'single file',
  given: JsonConfig = {},
): InferredUNet {
  const shape = shapeIn(shapes, 'UNet', UNET_PREFIX, where);
  const [c0, inChannels] = shape('input_blocks.0.0.weight') as [number, number];
  const nIn = (indicesAfter(shapes, 'input_blocks.').at(-1) ?? 0) + 1;
  const ops = indicesAfter(shapes, 'input_blocks.').filter((k) =>
    shapes.has(`input_blocks.${k}.0.op.weight`),
  );
  const step = ops.length > 0 ? (ops[0] as number) : nIn;
  const layersPerBlock = step - 1;
  // n blocks: 1 + n·L resnet steps + (n − 1) downsamplers = n·(L + 1) entries
  const nBlocks = ops.length > 0 ? nIn / step : 1;
  if (
    layersPerBlock < 1 ||
    !Number.isInteger(nBlocks) ||
    ops.some((k, i) => k !== (i + 1) * step) ||
    ops.length !== nBlocks - 1
  ) {
    throw new Error(
      `${where}: the UNet's input_blocks (${nIn}, downsamplers at ${ops.join(', ') || 'none'}) do not form ` +
        'blocks of equal depth; not an LDM UNet attnkit can read',
    );
  }
  const nOut = (indicesAfter(shapes, 'output_blocks.').at(-1) ?? -1) + 1;
  if (nOut !== nBlocks * step) {
    throw new Error(
      `${where}: the UNet has ${nOut} output_blocks; ${nBlocks} blocks of ${layersPerBlock} layers need ${nBlocks * step}`,
    );
  }
  if (!shapes.has('middle_block.1.proj_in.weight')) {
    throw new Error(`${where}: the UNet has no middle_block.1 (cross-attention) transformer`);
  }
  const blockOut: number[] = [];
  const down: string[] = [];
  const up: string[] = [];
  const depth: number[] = [];
  let contextDim: number | undefined;
  let linear: boolean | undefined;
  for (let i = 0; i < nBlocks; i++) {
    const first = i * step + 1;
    blockOut.push(shape(`input_blocks.${first}.0.out_layers.3.weight`)[0] as number);
    const downAttn = shapes.has(`input_blocks.${first}.1.proj_in.weight`);
    const upIndex = (nBlocks - 1 - i) * step; // up block mirroring down block i
    const upAttn = shapes.has(`output_blocks.${upIndex}.1.proj_in.weight`);
    down.push(downAttn ? 'CrossAttnDownBlock2D' : 'DownBlock2D');
    const attn = downAttn ? `input_blocks.${first}.1.` : upAttn ? `output_blocks.${upIndex}.1.` : undefined;
    depth.push(attn ? indicesAfter(shapes, `${attn}transformer_blocks.`).length : 1);
  }
  for (let i = 0; i < nBlocks; i++) {
    up.push(shapes.has(`output_blocks.${i * step}.1.proj_in.weight`) ? 'CrossAttnUpBlock2D' : 'UpBlock2D');
  }
  for (const [k, s] of shapes) {
    if (contextDim === undefined && k.endsWith('.attn2.to_k.weight')) contextDim = s[1];
    if (linear === undefined && k.endsWith('.proj_in.weight')) linear = s.length === 2;
  }
  const config: JsonConfig = {
    _class_name: 'UNet2DConditionModel',
    sample_size: family === 'sd1' ? 64 : 96,
    in_channels: inChannels,
    out_channels: shape('out.2.weight')[0],
    down_block_types: down,
    up_block_types: up,
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    block_out_channels: blockOut,
    layers_per_block: layersPerBlock,
    transformer_layers_per_block: depth.every((d) => d === depth[0]) ? depth[0] : depth,
    cross_attention_dim: contextDim ?? null,
    use_linear_projection: linear ?? false,
    norm_num_groups: 32,
    norm_eps: 1e-5,
    flip_sin_to_cos: true,
    freq_shift: 0,
    downsample_padding: 1,
  };
  if (c0 !== blockOut[0])
    throw new Error(`${where}: input_blocks.0.0 has ${c0} channels, block 0 ${blockOut[0]}`);
  if (!('attention_head_dim' in given) && !('num_attention_heads' in given)) {
    // diffusers' naming slip: attention_head_dim with num_attention_heads null is the number of heads
    if (family === 'sd1') config.attention_head_dim = 8;
    else {
      const bad = blockOut.find((ch) => ch % 64 !== 0);
      if (bad !== undefined) {
        throw new Error(
          `${where}: SD 2.x UNets have 64 channels per head, but a block has ${bad} channels; give the heads ` +
            'as config.unet.attention_head_dim (one number or one per block)',
        );
      }
      config.attention_head_dim = blockOut.map((ch) => ch / 64);
    }
  }
  return { config, layersPerBlock };
}

/** The VAE's diffusers config from LDM-named shapes (prefix removed). */
export function inferVAEConfig(
  shapes: Shapes,
  family: SingleFileFamily = 'sd1',
  where = 'single file',
): { config: JsonConfig; numBlocks: number } {
  const shape = shapeIn(shapes, 'VAE', VAE_PREFIX, where);
  const down = indicesAfter(shapes, 'encoder.down.');
  const up = indicesAfter(shapes, 'decoder.up.');
  const n = down.length;
  if (n === 0 || down.some((d, i) => d !== i) || up.length !== n || up.some((u, i) => u !== i)) {
    throw new Error(
      `${where}: the VAE's encoder.down (${down.join(', ')}) and decoder.up (${up.join(', ')}) must both be ` +
        '0, 1, …, n−1 (one entry per resolution)',
    );
  }
  const layers = indicesAfter(shapes, 'encoder.down.0.block.').length;
  const blockOut = down.map((i) => shape(`encoder.down.${i}.block.0.conv2.weight`)[0] as number);
  const config: JsonConfig = {
    _class_name: 'AutoencoderKL',
    in_channels: shape('encoder.conv_in.weight')[1],
    out_channels: shape('decoder.conv_out.weight')[0],
    latent_channels: shape('post_quant_conv.weight')[0],
    block_out_channels: blockOut,
    down_block_types: blockOut.map(() => 'DownEncoderBlock2D'),
    up_block_types: blockOut.map(() => 'UpDecoderBlock2D'),
    layers_per_block: layers,
    norm_num_groups: 32,
    sample_size: family === 'sd1' ? 512 : 768,
    scaling_factor: 0.18215,
  };
  return { config, numBlocks: n };
}

/**
 * The text encoder's transformers config from the file's names and shapes (prefix removed): SD 1.x's are
 * transformers' names already, SD 2.x's OpenCLIP's (`textLayers` counts the blocks kept, see
 * OPENCLIP_SD2_LAYERS).
 */
export function inferTextConfig(
  shapes: Shapes,
  family: SingleFileFamily,
  where = 'single file',
  given: JsonConfig = {},
): { config: JsonConfig; dropFrom?: number } {
  const sd1 = family === 'sd1';
  const shape = shapeIn(shapes, 'text encoder', sd1 ? CLIP_PREFIX : OPENCLIP_PREFIX, where);
  const t = sd1 && !shapes.has('text_model.embeddings.token_embedding.weight') ? '' : 'text_model.';
  const [vocab, hidden] = shape(sd1 ? `${t}embeddings.token_embedding.weight` : 'token_embedding.weight') as [
    number,
    number,
  ];
  let layers = indicesAfter(shapes, sd1 ? `${t}encoder.layers.` : 'transformer.resblocks.').length;
  const dropFrom = !sd1 && layers > OPENCLIP_SD2_LAYERS ? OPENCLIP_SD2_LAYERS : undefined;
  if (dropFrom !== undefined) layers = dropFrom;
  const config: JsonConfig = {
    model_type: 'clip_text_model',
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: shape(
      sd1 ? `${t}encoder.layers.0.mlp.fc1.weight` : 'transformer.resblocks.0.mlp.c_fc.weight',
    )[0],
    num_hidden_layers: layers,
    // CLIP ViT-L/14's 12 heads and OpenCLIP ViT-H/14's 16: 64 channels each
    num_attention_heads: hidden / 64,
    max_position_embeddings: shape(
      sd1 ? `${t}embeddings.position_embedding.weight` : 'positional_embedding',
    )[0],
    hidden_act: sd1 ? 'quick_gelu' : 'gelu',
    layer_norm_eps: 1e-5,
    // the configs diffusers ships with SD 1.x / 2.x folders: legacy ids (end-of-text is found as the largest id)
    bos_token_id: 0,
    eos_token_id: 2,
    pad_token_id: 1,
  };
  if (hidden % 64 !== 0 && !('num_attention_heads' in given)) {
    throw new Error(
      `${where}: SD's text encoders have 64 channels per head, but this one has ${hidden} channels; give the ` +
        'heads as config.text_encoder.num_attention_heads',
    );
  }
  return { config, dropFrom };
}

/**
 * What a single-file checkpoint's names and shapes give: its family and the diffusers configs of its
 * components.
 */
export interface SingleFileConfigs {
  family: SingleFileFamily;
  /** diffusers / transformers configs, overrides merged in. */
  unet: JsonConfig;
  vae: JsonConfig;
  text_encoder: JsonConfig;
  scheduler: JsonConfig;
  /** What the key maps need: LDM UNet layers per block, VAE blocks, first OpenCLIP block dropped. */
  unetLayersPerBlock: number;
  vaeBlocks: number;
  textDropFrom?: number;
}

/** Every config of a single file, from its tensors' names and shapes alone (no weights read). */
export function singleFileConfigs(
  shapes: Shapes,
  opts: { config?: SingleFileConfigOverrides; where?: string } = {},
): SingleFileConfigs {
  const where = opts.where ?? 'single file';
  const over = opts.config ?? {};
  const split = splitSingleFile(shapes, where);
  const u = inferUNetConfig(split.unet, split.family, where, over.unet);
  const v = inferVAEConfig(split.vae, split.family, where);
  const t = inferTextConfig(split.text, split.family, where, over.text_encoder);
  return {
    family: split.family,
    unet: { ...u.config, ...over.unet },
    vae: { ...v.config, ...over.vae },
    text_encoder: { ...t.config, ...over.text_encoder },
    scheduler: {
      ...SD_SCHEDULER_CONFIG,
      ...(split.family === 'sd2' ? { prediction_type: 'v_prediction' } : {}),
      ...over.scheduler,
    },
    unetLayersPerBlock: u.layersPerBlock,
    vaeBlocks: v.numBlocks,
    textDropFrom: t.dropFrom,
  };
}

/** Each tensor's shape, by key. */
export function shapesOf(m: ReadonlyMap<string, Tensor>): Map<string, readonly number[]> {
  return new Map([...m].map(([k, t]) => [k, t.shape]));
}

/**
 * Maps a family's tensors and loads them into `model`, strictly: each missing, unexpected or wrongly shaped
 * tensor is named by its key in the file (with the model's name beside it).
 */
export function loadMapped<M extends Module>(
  model: M,
  tensors: ReadonlyMap<string, Tensor>,
  mapKey: MapKey,
  prefix: string,
  what: string,
  where: string,
): M {
  const mapped = new Map<string, Tensor>();
  const origin = new Map<string, string>();
  for (const [k, t] of tensors) {
    for (const [key, value] of mapKey(k, t)) {
      if (mapped.has(key))
        throw new Error(
          `${where}: ${prefix}${k} and ${prefix}${origin.get(key)} both map to ${what} '${key}'`,
        );
      mapped.set(key, value);
      origin.set(key, k);
    }
  }
  const params = new Map(model.namedParameters());
  const named = (k: string) => `${prefix}${origin.get(k)} (${what} ${k})`;
  const missing = [...params.keys()].filter((k) => !mapped.has(k));
  const unexpected = [...mapped.keys()].filter((k) => !params.has(k)).map(named);
  const wrong: string[] = [];
  for (const [k, p] of params) {
    const t = mapped.get(k);
    if (t && (t.rank !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i]))) {
      wrong.push(`${named(k)}: file ${formatShape(t.shape)}, model ${formatShape(p.shape)}`);
    }
  }
  if (missing.length + unexpected.length + wrong.length > 0) {
    const list = (xs: string[]) =>
      xs.slice(0, 10).join(', ') + (xs.length > 10 ? `, … (${xs.length} in all)` : '');
    const parts = [`${where}: the ${what} tensors do not match the architecture inferred from them`];
    if (missing.length) parts.push(`missing: ${list(missing)}`);
    if (unexpected.length) parts.push(`unexpected: ${list(unexpected)}`);
    if (wrong.length) parts.push(`wrong shapes: ${list(wrong)}`);
    throw new Error(parts.join('\n  '));
  }
  for (const [k, p] of params) {
    const t = mapped.get(k) as Tensor;
    p.value = t.dtype === 'float32' ? t : t.cast('float32');
  }
  return model;
}

/** Everything `StableDiffusion` needs, from a single file's tensors and a tokenizer. */
export function singleFileParts(
  tensors: ReadonlyMap<string, Tensor>,
  tokenizer: CLIPTokenizer,
  opts: { config?: SingleFileConfigOverrides; where?: string } = {},
): StableDiffusionParts & { configs: SingleFileConfigs } {
  const where = opts.where ?? 'single file';
  const configs = singleFileConfigs(shapesOf(tensors), opts);
  const split = splitSingleFile(tensors, where);
  const sd1 = configs.family === 'sd1';
  const inferred = (what: string) => `${where} (${what} config inferred from the weights)`;
  const unet = loadMapped(
    new UNet2DConditionModel(parseUNetConfig(configs.unet, inferred('UNet'))),
    split.unet,
    ldmUNetMapKey(configs.unetLayersPerBlock),
    UNET_PREFIX,
    'unet',
    where,
  );
  const vae = loadMapped(
    new AutoencoderKL(parseVAEConfig(configs.vae, inferred('VAE'))),
    split.vae,
    ldmVAEMapKey(configs.vaeBlocks),
    VAE_PREFIX,
    'vae',
    where,
  );
  const textEncoder = loadMapped(
    new CLIPTextModel(parseCLIPTextConfig(configs.text_encoder, inferred('text encoder'))),
    split.text,
    sd1 ? ldmCLIPMapKey : openCLIPMapKey(configs.textDropFrom),
    sd1 ? CLIP_PREFIX : OPENCLIP_PREFIX,
    'text_encoder',
    where,
  );
  checkSchedulerConfig(configs.scheduler, `${where} (built-in scheduler config)`);
  const betas = tensors.get('betas');
  if (betas && !opts.config?.scheduler) checkTrainingSchedule(betas, where);
  return { unet, vae, textEncoder, tokenizer, schedulerConfig: configs.scheduler, configs };
}

/**
 * A training checkpoint's `betas` (LDM's DDPM buffer) must be the schedule the built-in scheduler config
 * gives — Stable Diffusion's, √β linear from √0.00085 to √0.012 over 1000 steps — unless the caller gives
 * the scheduler config.
 */
export function checkTrainingSchedule(betas: Tensor, where = 'single file'): void {
  const n = SD_SCHEDULER_CONFIG.num_train_timesteps as number;
  const [a, b] = [
    Math.sqrt(SD_SCHEDULER_CONFIG.beta_start as number),
    Math.sqrt(SD_SCHEDULER_CONFIG.beta_end as number),
  ];
  const got = betas.toArray();
  const off =
    got.length !== n ||
    got.some((v, i) => {
      const want = (a + ((b - a) * i) / (n - 1)) ** 2;
      return !(Math.abs(v - want) <= 1e-5 * want);
    });
  if (off) {
    throw new Error(
      `${where}: the file's 'betas' (${got.length} steps, ${got[0]} … ${got[got.length - 1]}) are not Stable ` +
        "Diffusion's training schedule (scaled_linear 0.00085–0.012, 1000 steps) that attnkit would sample with; " +
        'give the scheduler config as config.scheduler (--model-config)',
    );
  }
}

/** Reads a single-file checkpoint (`.safetensors`) and the tokenizer folder it needs. */
export function readSingleFile(
  path: string,
  opts: SingleFileOptions = {},
): StableDiffusionParts & { configs: SingleFileConfigs } {
  if (!existsSync(path) || !statSync(path).isFile()) throw new Error(`single file ${path} does not exist`);
  if (!path.endsWith('.safetensors')) {
    throw new Error(
      `${path}: attnkit reads single-file checkpoints as .safetensors only (pickled .ckpt files can run code ` +
        "when loaded); convert it, e.g. with safetensors' convert script",
    );
  }
  if (!opts.tokenizer) {
    throw new Error(
      `${path}: a single-file checkpoint holds no tokenizer, and attnkit ships no CLIP vocabulary: give a ` +
        'tokenizer folder (vocab.json, merges.txt), e.g. the tokenizer/ of a diffusers folder of the same ' +
        "family (SD 1.x and 2.x both use CLIP's 49,408-token BPE)",
    );
  }
  const tokenizer = CLIPTokenizer.fromDirectorySync(opts.tokenizer);
  return singleFileParts(readSafetensors(path).tensors, tokenizer, { config: opts.config, where: path });
}
