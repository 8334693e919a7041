// Feature-level editing with MasaCtrl (Cao et al. 2023) or Plug-and-Play (Tumanyan et al. 2023): the source and
// the target prompt run as one batch from the same latents, the target taking the source's self-attention
// features. Given an image, it is DDIM-inverted with the source prompt and the source rows follow the
// inversion trajectory (the reference codes' `ref_intermediate_latents` / stored inverted latents).
//
// The layer defaults are the references' on Stable Diffusion 1.x/2.x and their structural equivalents on other
// UNets, read from the model's module paths (never by counting): MasaCtrl from the first self-attention layer
// of the decoder blocks above the lowest-resolution one (SD: index 10 of 16), PnP on the decoder's
// self-attention layers but the first (SD: up_blocks.1.attentions.1 … up_blocks.3.attentions.2) and the second
// ResNet of the first decoder block with attention (SD: up_blocks.1.resnets.1).

import { Attention } from '../attention/attention.js';
import { defaultSide } from '../methods/application/local-blend.js';
import {
  MutualSelfAttention,
  MutualSelfAttentionMaskAuto,
  type MutualSelfAttentionMaskOptions,
} from '../methods/feature/mutual-self-attention.js';
import { PlugAndPlay, type PlugAndPlayOptions } from '../methods/feature/plug-and-play.js';
import { tokenIndicesOrNone } from '../methods/map/token-alignment.js';
import { ResnetBlock2D } from '../models/unet-blocks.js';
import { crossAttentionSides } from '../models/unet2d-config.js';
import { concat, type Tensor } from '../tensor/index.js';
import { type DDIMInversion, ddimInvert, followTrajectory } from './inversion.js';
import type { EditedPair, SamplingOptions, StableDiffusion } from './stable-diffusion.js';
import { initialNoise } from './stable-diffusion.js';

/**
 * The feature-level edit: MasaCtrl (mutual self-attention) or Plug-and-Play (feature and self-attention
 * injection).
 */
export type FeatureEditMethod = 'masactrl' | 'pnp';

/**
 * Options of `editFeatures`: MasaCtrl or Plug-and-Play, the source and target prompts, a real image to edit,
 * and each method's options.
 */
export interface FeatureEditOptions extends SamplingOptions {
  method: FeatureEditMethod;
  source: string;
  target: string;
  /** A real image (1, 3, H, W) in [-1, 1] to edit, inverted with the source prompt; else a generated one. */
  image?: Tensor;
  /**
   * MasaCtrl's options; `mask: true` uses the MaskAuto variant, its foreground from the maps of `maskWords`
   * (looked up in each prompt; default the reference's token 1). `maskWords` alone implies `mask`.
   */
  masactrl?: MutualSelfAttentionMaskOptions & { mask?: boolean; maskWords?: readonly string[] };
  pnp?: PlugAndPlayOptions;
  negativePrompt?: string;
}

/**
 * What `editFeatures` returns: source and target images, the controller that ran, and the inversion of a real
 * image.
 */
export interface FeatureEditResult extends EditedPair {
  controller: MutualSelfAttention | PlugAndPlay;
  inversion?: DDIMInversion;
}

/** Self-attention layers and ResNet blocks of the UNet's decoder, in forward order, with their block number. */
function decoderLayers(sd: StableDiffusion) {
  const block = (path: string) => Number(/^up_blocks\.(\d+)\./.exec(path)?.[1] ?? Number.NaN);
  const attn: { path: string; index: number; block: number }[] = [];
  const resnets: { path: string; block: number }[] = [];
  for (const [path, m] of sd.unet.namedModules()) {
    if (m instanceof Attention && m.info.kind === 'self' && m.info.place === 'up') {
      attn.push({ path, index: m.info.index, block: block(path) });
    }
    if (m instanceof ResnetBlock2D && path.startsWith('up_blocks.'))
      resnets.push({ path, block: block(path) });
  }
  if (attn.length === 0) throw new Error('editFeatures: the UNet has no self-attention layer in its decoder');
  return { attn, resnets, first: attn[0] as (typeof attn)[0] };
}

/** MasaCtrl's startLayer: the first decoder self-attention layer after the lowest-resolution attention block. */
export function defaultStartLayer(sd: StableDiffusion): number {
  const { attn, first } = decoderLayers(sd);
  return (attn.find((l) => l.block > first.block) ?? first).index;
}

/** PnP's layers: the decoder's self-attention (first transformer blocks) but the first; the 2nd ResNet there. */
export function defaultPnPLayers(
  sd: StableDiffusion,
): Required<Pick<PlugAndPlayOptions, 'attnLayers' | 'convLayers'>> {
  const { attn, resnets, first } = decoderLayers(sd);
  const conv = resnets.filter((r) => r.block === first.block)[1] ?? resnets[1];
  if (!conv) throw new Error('editFeatures: the UNet decoder has fewer than two ResNet blocks');
  const attnLayers = attn.slice(1).filter((l) => l.path.endsWith('.transformer_blocks.0.attn1'));
  return { attnLayers: attnLayers.map((l) => l.path), convLayers: [conv.path] };
}

/**
 * The cross-attention side MaskAuto reads: LocalBlend's rule (`defaultSide`) over the UNet's cross-attention
 * sides — one level above the smallest: SD's 16 of 64, 32, 16, 8 (the reference's), 8 on the Shapes model.
 */
export function defaultMaskResolution(sd: StableDiffusion): number {
  const sides = crossAttentionSides(sd.unet.config);
  if (sides.length === 0)
    throw new Error('MasaCtrl MaskAuto: the UNet has no cross-attention to read masks from');
  return defaultSide(sides);
}

/** Token indices of `words` in `prompt` (those it contains); an error when it contains none. */
function wordTokens(sd: StableDiffusion, prompt: string, words: readonly string[]): number[] {
  const n = sd.tokenizer.modelMaxLength;
  const tokens = words.flatMap((w) => tokenIndicesOrNone(sd.tokenizer, prompt, w, n));
  if (tokens.length === 0) {
    throw new Error(
      `MasaCtrl MaskAuto: none of the mask words ${JSON.stringify(words)} is in the prompt "${prompt}" ` +
        `within its first ${n} tokens (the tokenizer cuts longer prompts)`,
    );
  }
  return tokens;
}

/**
 * MasaCtrl with masks on a (source, target) pair: the model's default layer and map side, the foreground from
 * the maps of `words` in each prompt (else the options' token indices, the reference's [1]).
 */
export function maskAutoFor(
  sd: StableDiffusion,
  pair: readonly [string, string],
  opts: MutualSelfAttentionMaskOptions & { words?: readonly string[] } = {},
): MutualSelfAttentionMaskAuto {
  const { words, ...masa } = opts;
  return new MutualSelfAttentionMaskAuto({
    ...masa,
    startLayer: masa.startLayer ?? defaultStartLayer(sd),
    maskResolution: masa.maskResolution ?? defaultMaskResolution(sd),
    ...(words
      ? { refTokenIdx: wordTokens(sd, pair[0], words), curTokenIdx: wordTokens(sd, pair[1], words) }
      : {}),
  });
}

function controllerFor(sd: StableDiffusion, opts: FeatureEditOptions): MutualSelfAttention | PlugAndPlay {
  if (opts.method === 'pnp') {
    const layers = defaultPnPLayers(sd);
    return new PlugAndPlay({
      ...opts.pnp,
      attnLayers: opts.pnp?.attnLayers ?? layers.attnLayers,
      convLayers: opts.pnp?.convLayers ?? layers.convLayers,
    });
  }
  const { mask, maskWords, ...masa } = opts.masactrl ?? {};
  if (mask || maskWords) return maskAutoFor(sd, [opts.source, opts.target], { ...masa, words: maskWords });
  return new MutualSelfAttention({ ...masa, startLayer: masa.startLayer ?? defaultStartLayer(sd) });
}

/** Edits with MasaCtrl or PnP; returns the source and the target image. */
export function editFeatures(sd: StableDiffusion, opts: FeatureEditOptions): FeatureEditResult {
  const steps = opts.steps ?? 50;
  const controller = controllerFor(sd, opts);
  const inversion = opts.image
    ? ddimInvert(sd, { image: opts.image, prompt: opts.source, steps })
    : undefined;
  const z = inversion ? (inversion.trajectory[steps] as Tensor) : initialNoise(sd, opts.seed ?? 0);
  const { images, latents } = sd.generate({
    prompt: [opts.source, opts.target],
    negativePrompt: opts.negativePrompt,
    latents: concat([z, z], 0),
    steps,
    guidanceScale: opts.guidanceScale,
    scheduler: 'ddim',
    controllers: [
      controller,
      ...(inversion ? [followTrajectory(inversion)] : []),
      ...(opts.controllers ?? []),
    ],
    onStep: opts.onStep,
  });
  const [source, target] = images.split(2, 0) as [Tensor, Tensor];
  return { source, target, latents, controller, inversion };
}
