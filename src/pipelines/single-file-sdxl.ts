// SDXL single-file checkpoints (Stability's SGM layout, as `generative-models` and diffusers' conversion script
// write them): the UNet under `model.diffusion_model.` (LDM's layout plus `label_emb`, the add-embedding of the
// pooled text and time ids), the VAE under `first_stage_model.`, OpenAI CLIP ViT-L under
// `conditioner.embedders.0.transformer.` (transformers' names) and OpenCLIP bigG under
// `conditioner.embedders.1.model.` (fused in_proj, with its text projection). The architecture is read from the
// names and shapes as for SD 1.x / 2.x (pipelines/single-file.ts), SDXL's conventions fill in the rest: 64
// channels per UNet head, linear proj_in/out, the add-embedding's time-id width from label_emb's input less the
// projection, 1024 px, the VAE's scaling 0.13025, the whole OpenCLIP tower kept (SDXL reads its penultimate
// state at run time and pools the last). Loading is strict, every key named as in the file.

import { existsSync, statSync } from 'node:fs';
import { readSafetensors, readSafetensorsHeader } from '../io/safetensors.js';
import { AutoencoderKL } from '../models/autoencoder-kl.js';
import { CLIPTextModel } from '../models/clip-text.js';
import { parseCLIPTextConfig } from '../models/clip-text-config.js';
import { CLIPTextModelWithProjection } from '../models/clip-text-projection.js';
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
import { checkSchedulerConfig } from '../schedulers/index.js';
import type { Tensor } from '../tensor/index.js';
import type { StableDiffusionParts } from './parts.js';
import { checkSDXLParts } from './sdxl.js';
import {
  inferTextConfig,
  inferUNetConfig,
  inferVAEConfig,
  loadMapped,
  NOT_WEIGHTS,
  SD_SCHEDULER_CONFIG,
  type SingleFileConfigOverrides,
  type SingleFileOptions,
  shapesOf,
  UNET_PREFIX,
  VAE_PREFIX,
} from './single-file.js';

/** Key prefix of an SDXL file's first text encoder, OpenAI CLIP ViT-L (SGM's FrozenCLIPEmbedder). */
export const SDXL_CLIP_PREFIX = 'conditioner.embedders.0.transformer.';
/** Key prefix of an SDXL file's second text encoder, OpenCLIP ViT-bigG (SGM's FrozenOpenCLIPEmbedder2). */
export const SDXL_OPENCLIP_PREFIX = 'conditioner.embedders.1.model.';

/**
 * True when a `.safetensors` file's keys are SDXL's (its text encoders sit under `conditioner.`); false for
 * anything else, which the SD 1.x / 2.x reader then checks and names.
 */
export function isSDXLSingleFile(path: string): boolean {
  if (!path.endsWith('.safetensors') || !existsSync(path) || !statSync(path).isFile()) return false;
  try {
    for (const k of readSafetensorsHeader(path).tensors.keys()) if (k.startsWith('conditioner.')) return true;
  } catch {
    return false;
  }
  return false;
}

/** The diffusers configs of an SDXL single file, from its tensors' names and shapes (overrides merged in). */
export interface SDXLSingleFileConfigs {
  unet: JsonConfig;
  vae: JsonConfig;
  text_encoder: JsonConfig;
  text_encoder_2: JsonConfig;
  scheduler: JsonConfig;
  unetLayersPerBlock: number;
  vaeBlocks: number;
}

/** The file's tensors by component, prefixes removed; a key of no component is an error naming it. */
function splitSDXL<T>(tensors: ReadonlyMap<string, T>, where: string) {
  const parts = {
    unet: [UNET_PREFIX, new Map<string, T>()],
    vae: [VAE_PREFIX, new Map<string, T>()],
    text: [SDXL_CLIP_PREFIX, new Map<string, T>()],
    text2: [SDXL_OPENCLIP_PREFIX, new Map<string, T>()],
  } as const;
  const stray: string[] = [];
  for (const [k, t] of tensors) {
    const part = Object.values(parts).find(([p]) => k.startsWith(p));
    if (part) part[1].set(k.slice(part[0].length), t);
    else if (!NOT_WEIGHTS.has(k)) stray.push(k);
  }
  if (stray.length > 0) {
    throw new Error(
      `${where}: ${stray.length} tensor(s) outside the SDXL single-file layout (${Object.values(parts)
        .map(([p]) => p)
        .join(', ')}): ${stray.slice(0, 10).join(', ')}`,
    );
  }
  for (const [name, [prefix, m]] of Object.entries(parts)) {
    if (m.size === 0)
      throw new Error(`${where}: no ${name} tensors (keys starting ${prefix}) in an SDXL file`);
  }
  return { unet: parts.unet[1], vae: parts.vae[1], text: parts.text[1], text2: parts.text2[1] };
}

/** OpenCLIP's text projection as diffusers names it: `text_projection.weight` (Linear) or SGM's matrix (x · P). */
function openCLIPProjectionMapKey(key: string, tensor: Tensor): [string, Tensor][] {
  if (key === 'text_projection.weight') return [[key, tensor]];
  if (key === 'text_projection') return [['text_projection.weight', tensor.permute([1, 0])]];
  return openCLIPMapKey()(key, tensor);
}

/** Every config of an SDXL single file, from its tensors' names and shapes alone (no weights read). */
export function sdxlSingleFileConfigs(
  shapes: ReadonlyMap<string, readonly number[]>,
  opts: { config?: SingleFileConfigOverrides; where?: string } = {},
): SDXLSingleFileConfigs {
  const where = opts.where ?? 'single file';
  const over = opts.config ?? {};
  const split = splitSDXL(shapes, where);
  const t1 = inferTextConfig(split.text, 'sd1', where, over.text_encoder).config;
  // OpenCLIP's names as SD 2.x's; SDXL keeps every block, and has a projection head
  const t2 = inferTextConfig(split.text2, 'sd2', where, over.text_encoder_2).config;
  const blocks = new Set([...split.text2.keys()].map((k) => /^transformer\.resblocks\.(\d+)\./.exec(k)?.[1]));
  blocks.delete(undefined);
  const projection = split.text2.get('text_projection.weight') ?? split.text2.get('text_projection');
  if (!projection) throw new Error(`${where}: missing ${SDXL_OPENCLIP_PREFIX}text_projection(.weight)`);
  const projectionDim = split.text2.has('text_projection.weight') ? projection[0] : projection[1];
  const text2: JsonConfig = {
    ...t2,
    num_hidden_layers: blocks.size,
    projection_dim: projectionDim as number,
  };
  // the UNet: SD 2.x's conventions (64 channels per head, linear projections) plus the add-embedding
  const u = inferUNetConfig(split.unet, 'sd2', where, over.unet);
  const label = split.unet.get('label_emb.0.0.weight');
  if (!label) throw new Error(`${where}: missing ${UNET_PREFIX}label_emb.0.0.weight (SDXL's add-embedding)`);
  const inputDim = label[1] as number;
  const timeDim = (inputDim - (projectionDim as number)) / 6;
  if (!Number.isInteger(timeDim) || timeDim < 1) {
    throw new Error(
      `${where}: label_emb.0.0 takes ${inputDim} inputs, which is not the text projection (${projectionDim}) ` +
        'plus 6 time ids of one width',
    );
  }
  const v = inferVAEConfig(split.vae, 'sd1', where);
  return {
    unet: {
      ...u.config,
      sample_size: 128,
      addition_embed_type: 'text_time',
      addition_time_embed_dim: timeDim,
      projection_class_embeddings_input_dim: inputDim,
      ...over.unet,
    },
    vae: { ...v.config, sample_size: 1024, scaling_factor: 0.13025, force_upcast: true, ...over.vae },
    text_encoder: { ...t1, ...over.text_encoder },
    text_encoder_2: { ...text2, ...over.text_encoder_2 },
    scheduler: { ...SD_SCHEDULER_CONFIG, ...over.scheduler },
    unetLayersPerBlock: u.layersPerBlock,
    vaeBlocks: v.numBlocks,
  };
}

/** Everything `StableDiffusion` needs, from an SDXL single file's tensors and its two tokenizers. */
export function sdxlSingleFileParts(
  tensors: ReadonlyMap<string, Tensor>,
  tokenizer: CLIPTokenizer,
  tokenizer2: CLIPTokenizer,
  opts: { config?: SingleFileConfigOverrides; where?: string } = {},
): StableDiffusionParts & { configs: SDXLSingleFileConfigs } {
  const where = opts.where ?? 'single file';
  const configs = sdxlSingleFileConfigs(shapesOf(tensors), opts);
  const split = splitSDXL(tensors, where);
  const inferred = (what: string) => `${where} (${what} config inferred from the weights)`;
  const load = <M extends Parameters<typeof loadMapped>[0]>(
    model: M,
    part: ReadonlyMap<string, Tensor>,
    mapKey: MapKey,
    prefix: string,
    what: string,
  ) => loadMapped(model, part, mapKey, prefix, what, where);
  const unet = load(
    new UNet2DConditionModel(parseUNetConfig(configs.unet, inferred('UNet'))),
    split.unet,
    ldmUNetMapKey(configs.unetLayersPerBlock),
    UNET_PREFIX,
    'unet',
  );
  const vae = load(
    new AutoencoderKL(parseVAEConfig(configs.vae, inferred('VAE'))),
    split.vae,
    ldmVAEMapKey(configs.vaeBlocks),
    VAE_PREFIX,
    'vae',
  );
  const textEncoder = load(
    new CLIPTextModel(parseCLIPTextConfig(configs.text_encoder, inferred('text encoder'))),
    split.text,
    ldmCLIPMapKey,
    SDXL_CLIP_PREFIX,
    'text_encoder',
  );
  const textEncoder2 = load(
    CLIPTextModelWithProjection.fromConfig(configs.text_encoder_2, inferred('text encoder 2')),
    split.text2,
    openCLIPProjectionMapKey,
    SDXL_OPENCLIP_PREFIX,
    'text_encoder_2',
  );
  checkSchedulerConfig(configs.scheduler, `${where} (built-in scheduler config)`);
  const xl = { textEncoder2, tokenizer2, forceZerosForEmptyPrompt: true };
  checkSDXLParts(where, unet.config, textEncoder.config, xl);
  return { unet, vae, textEncoder, tokenizer, schedulerConfig: configs.scheduler, xl, configs };
}

/** Reads an SDXL single-file checkpoint (`.safetensors`) and the two tokenizer folders it needs. */
export function readSDXLSingleFile(
  path: string,
  opts: SingleFileOptions = {},
): StableDiffusionParts & { configs: SDXLSingleFileConfigs } {
  if (!opts.tokenizer || !opts.tokenizer2) {
    throw new Error(
      `${path}: an SDXL single file holds no tokenizers: give both folders, tokenizer (CLIP's BPE) and ` +
        "tokenizer2 (the same BPE, padding with '!'), e.g. the tokenizer/ and tokenizer_2/ of an SDXL folder",
    );
  }
  return sdxlSingleFileParts(
    readSafetensors(path).tensors,
    CLIPTokenizer.fromDirectorySync(opts.tokenizer),
    CLIPTokenizer.fromDirectorySync(opts.tokenizer2),
    { config: opts.config, where: path },
  );
}
