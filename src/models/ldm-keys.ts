// Key maps from the original Stable Diffusion single-file layout (CompVis/Stability's LDM code: one
// `model.safetensors` with `model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.*`) to the
// diffusers names attnkit's modules carry. One pure `mapKey(key, tensor) → [key, tensor][]` per model family,
// each given the counts that LDM's flat indices need (layers per block, number of blocks); keys arrive with
// their family prefix already removed. A key a map does not know is an error naming it.

import type { Tensor } from '../tensor/index.js';

/** Renames one checkpoint key (and may split its tensor): from a single-file (LDM) layout to diffusers'. */
export type MapKey = (key: string, tensor: Tensor) => [string, Tensor][];

function unknown(family: string, key: string): Error {
  return new Error(
    `single file: ${family} key '${key}' is not part of the Stable Diffusion layout attnkit reads`,
  );
}

/** Renames the leading `from` of `key` (a dot-separated prefix) to `to`; undefined when it does not start so. */
function swapPrefix(key: string, from: string, to: string): string | undefined {
  return key.startsWith(`${from}.`) ? `${to}.${key.slice(from.length + 1)}` : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// UNet: `model.diffusion_model.*`

/** LDM ResBlock → diffusers ResnetBlock2D. */
const RESNET_PARTS: [string, string][] = [
  ['in_layers.0', 'norm1'],
  ['in_layers.2', 'conv1'],
  ['emb_layers.1', 'time_emb_proj'],
  ['out_layers.0', 'norm2'],
  ['out_layers.3', 'conv2'],
  ['skip_connection', 'conv_shortcut'],
];

function resnetKey(prefix: string, rest: string, whole: string): string {
  for (const [ldm, ours] of RESNET_PARTS) {
    const k = swapPrefix(rest, ldm, ours);
    if (k) return `${prefix}.${k}`;
  }
  throw unknown('UNet', whole);
}

const UNET_TOP: Record<string, string> = {
  'time_embed.0': 'time_embedding.linear_1',
  'time_embed.2': 'time_embedding.linear_2',
  'input_blocks.0.0': 'conv_in',
  'out.0': 'conv_norm_out',
  'out.2': 'conv_out',
  // SDXL (SGM's UNet): the add-embedding of the pooled text and time ids
  'label_emb.0.0': 'add_embedding.linear_1',
  'label_emb.0.2': 'add_embedding.linear_2',
};

/**
 * The LDM UNet (`openaimodel.py`'s UNetModel) → UNet2DConditionModel. Its flat lists count, per down block,
 * `layersPerBlock` steps of (resnet, optional transformer) and one downsampler (none after the last block):
 * `input_blocks.k` with k ≥ 1 is down block ⌊(k−1)/(L+1)⌋, step (k−1) mod (L+1), the last step being the
 * downsampler `.0.op`. `output_blocks.k` is up block ⌊k/(L+1)⌋, resnet k mod (L+1); its `.1` is the
 * transformer, or the upsampler (`.1.conv` in a block without attention, `.2.conv` with one).
 */
export function ldmUNetMapKey(layersPerBlock: number): MapKey {
  const step = layersPerBlock + 1;
  return (key, tensor) => {
    for (const [ldm, ours] of Object.entries(UNET_TOP)) {
      const k = swapPrefix(key, ldm, ours);
      if (k) return [[k, tensor]];
    }
    const m = /^(input_blocks|middle_block|output_blocks)\.(\d+)\.?(\d+)?\.(.+)$/.exec(key);
    if (!m) throw unknown('UNet', key);
    const [, list, a, b, rest] = m as unknown as [string, string, string, string | undefined, string];
    const k = Number(a);
    if (list === 'middle_block') {
      // middle_block.0 resnet, .1 transformer, .2 resnet (no sub-index: middle_block.N.rest)
      const sub = b === undefined ? rest : `${b}.${rest}`;
      if (k === 1) return [[`mid_block.attentions.0.${sub}`, tensor]];
      if (k === 0 || k === 2) return [[resnetKey(`mid_block.resnets.${k / 2}`, sub, key), tensor]];
      throw unknown('UNet', key);
    }
    if (b === undefined) throw unknown('UNet', key);
    const part = Number(b);
    if (list === 'input_blocks') {
      const block = Math.floor((k - 1) / step);
      const j = (k - 1) % step;
      if (j === layersPerBlock) {
        const conv = swapPrefix(rest, 'op', 'conv');
        if (part !== 0 || !conv) throw unknown('UNet', key);
        return [[`down_blocks.${block}.downsamplers.0.${conv}`, tensor]];
      }
      if (part === 0) return [[resnetKey(`down_blocks.${block}.resnets.${j}`, rest, key), tensor]];
      if (part === 1) return [[`down_blocks.${block}.attentions.${j}.${rest}`, tensor]];
      throw unknown('UNet', key);
    }
    const block = Math.floor(k / step);
    const j = k % step;
    if (part === 0) return [[resnetKey(`up_blocks.${block}.resnets.${j}`, rest, key), tensor]];
    if (rest.startsWith('conv.') && (part === 1 || part === 2)) {
      return [[`up_blocks.${block}.upsamplers.0.${rest}`, tensor]];
    }
    if (part === 1) return [[`up_blocks.${block}.attentions.${j}.${rest}`, tensor]];
    throw unknown('UNet', key);
  };
}

// ---------------------------------------------------------------------------------------------------------
// VAE: `first_stage_model.*`

/** LDM's mid-block attention (1×1 convolutions q, k, v, proj_out) → diffusers' Attention (linear layers). */
const VAE_ATTENTION: Record<string, string> = {
  norm: 'group_norm',
  q: 'to_q',
  k: 'to_k',
  v: 'to_v',
  proj_out: 'to_out.0',
  // diffusers ≤ 0.21's conversion script writes the diffusers names unchanged (and linear shapes)
  to_q: 'to_q',
  to_k: 'to_k',
  to_v: 'to_v',
  'to_out.0': 'to_out.0',
};

/** A 1×1 convolution's weight (out, in, 1, 1) as a linear layer's (out, in); other tensors unchanged. */
function convToLinear(t: Tensor): Tensor {
  return t.rank === 4 && t.shape[2] === 1 && t.shape[3] === 1
    ? t.reshape([t.shape[0] as number, t.shape[1] as number])
    : t;
}

function vaeResnetKey(prefix: string, rest: string, whole: string): string {
  const k = swapPrefix(rest, 'nin_shortcut', 'conv_shortcut');
  if (k) return `${prefix}.${k}`;
  if (/^(norm1|norm2|conv1|conv2)\./.test(rest)) return `${prefix}.${rest}`;
  throw unknown('VAE', whole);
}

/**
 * The LDM autoencoder (`model.py`'s Encoder / Decoder) → AutoencoderKL. The decoder's `up.k` counts from the
 * smallest resolution's end (up.0 is the last block run), diffusers' `up_blocks.i` in running order:
 * i = numBlocks − 1 − k.
 */
export function ldmVAEMapKey(numBlocks: number): MapKey {
  return (key, tensor) => {
    if (/^(post_quant_conv|quant_conv)\.(weight|bias)$/.test(key)) return [[key, tensor]];
    const m = /^(encoder|decoder)\.(.+)$/.exec(key);
    if (!m) throw unknown('VAE', key);
    const [, side, rest] = m as unknown as [string, 'encoder' | 'decoder', string];
    if (/^conv_(in|out)\./.test(rest)) return [[key, tensor]];
    const norm = swapPrefix(rest, 'norm_out', 'conv_norm_out');
    if (norm) return [[`${side}.${norm}`, tensor]];
    const mid = /^mid\.(block_1|block_2|attn_1)\.(.+)$/.exec(rest);
    if (mid) {
      const [, part, sub] = mid as unknown as [string, string, string];
      if (part !== 'attn_1') {
        const prefix = `${side}.mid_block.resnets.${part === 'block_1' ? 0 : 1}`;
        return [[vaeResnetKey(prefix, sub, key), tensor]];
      }
      const dot = sub.lastIndexOf('.');
      const ours = VAE_ATTENTION[sub.slice(0, dot)];
      if (!ours) throw unknown('VAE', key);
      const t = ours === 'group_norm' ? tensor : convToLinear(tensor);
      return [[`${side}.mid_block.attentions.0.${ours}${sub.slice(dot)}`, t]];
    }
    const blk = /^(down|up)\.(\d+)\.(block\.(\d+)|downsample|upsample)\.(.+)$/.exec(rest);
    if (!blk) throw unknown('VAE', key);
    const [, dir, iStr, what, jStr, sub] = blk as unknown as [string, string, string, string, string, string];
    if ((dir === 'down') !== (side === 'encoder')) throw unknown('VAE', key);
    const i = dir === 'down' ? Number(iStr) : numBlocks - 1 - Number(iStr);
    if (i < 0) throw unknown('VAE', key);
    const block = `${side}.${dir}_blocks.${i}`;
    if (what === 'downsample' || what === 'upsample') {
      if (!sub.startsWith('conv.')) throw unknown('VAE', key);
      return [[`${block}.${what}rs.0.${sub}`, tensor]];
    }
    return [[vaeResnetKey(`${block}.resnets.${jStr}`, sub, key), tensor]];
  };
}

// ---------------------------------------------------------------------------------------------------------
// Text encoders: `cond_stage_model.*`

/**
 * SD 1.x's text encoder (`cond_stage_model.transformer.*`, transformers' CLIPTextModel as LDM's
 * FrozenCLIPEmbedder holds it): transformers' names after the prefix; `position_ids` (a saved buffer) is
 * dropped. Files written before transformers nested the model under `text_model.` are read too.
 */
export function ldmCLIPMapKey(key: string, tensor: Tensor): [string, Tensor][] {
  const k = key.startsWith('text_model.') ? key : `text_model.${key}`;
  if (k === 'text_model.embeddings.position_ids') return [];
  if (!/^text_model\.(embeddings|encoder|final_layer_norm)\./.test(k)) throw unknown('text encoder', key);
  return [[k, tensor]];
}

const OPENCLIP_LAYER: [string, string][] = [
  ['ln_1', 'layer_norm1'],
  ['ln_2', 'layer_norm2'],
  ['mlp.c_fc', 'mlp.fc1'],
  ['mlp.c_proj', 'mlp.fc2'],
  ['attn.out_proj', 'self_attn.out_proj'],
];

/**
 * SD 2.x's text encoder (`cond_stage_model.model.*`, OpenCLIP's text tower as LDM's FrozenOpenCLIPEmbedder
 * holds it) → CLIPTextModel. The fused attention input projection `in_proj_weight` (3·D, D) splits into
 * q, k, v (rows in that order, as torch's MultiheadAttention packs them). `text_projection` and `logit_scale`
 * belong to CLIP's contrastive head, which Stable Diffusion does not use: dropped. Layers from `dropFrom` on
 * are dropped too (SD 2 conditions on the penultimate layer of its 24; see singleFileConfigs).
 */
export function openCLIPMapKey(dropFrom = Number.POSITIVE_INFINITY): MapKey {
  return (key, tensor) => {
    if (key === 'text_projection' || key === 'logit_scale') return [];
    if (key === 'token_embedding.weight') return [['text_model.embeddings.token_embedding.weight', tensor]];
    if (key === 'positional_embedding') return [['text_model.embeddings.position_embedding.weight', tensor]];
    const ln = swapPrefix(key, 'ln_final', 'text_model.final_layer_norm');
    if (ln) return [[ln, tensor]];
    const m = /^transformer\.resblocks\.(\d+)\.(.+)$/.exec(key);
    if (!m) throw unknown('text encoder', key);
    const [, nStr, rest] = m as unknown as [string, string, string];
    if (Number(nStr) >= dropFrom) return [];
    const layer = `text_model.encoder.layers.${nStr}`;
    const fused = /^attn\.in_proj_(weight|bias)$/.exec(rest);
    if (fused) {
      const kind = fused[1] as string;
      const parts = tensor.split(3, 0);
      return ['q', 'k', 'v'].map((p, i) => [`${layer}.self_attn.${p}_proj.${kind}`, parts[i] as Tensor]);
    }
    for (const [theirs, ours] of OPENCLIP_LAYER) {
      const k = swapPrefix(rest, theirs, ours);
      if (k) return [[`${layer}.${k}`, tensor]];
    }
    throw unknown('text encoder', key);
  };
}
