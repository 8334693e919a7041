// Stable Diffusion XL's conditioning (Podell et al. 2023, "SDXL: Improving Latent Diffusion Models for
// High-Resolution Image Synthesis"), as diffusers' StableDiffusionXLPipeline computes it: the prompt states are
// both text encoders' penultimate hidden states concatenated on features, the pooled text is the second
// encoder's projected end-of-text state, and the micro-conditioning time ids (original size, crop top-left,
// target size; Sec. 2.2) go with it into the UNet's added embedding. `StableDiffusion` uses these when its
// folder is an SDXL one (model_index.json `StableDiffusionXLPipeline`).

import type { CLIPTextModel, PromptTokenizer } from '../models/clip-text.js';
import type { CLIPTextConfig } from '../models/clip-text-config.js';
import type { CLIPTextModelWithProjection } from '../models/clip-text-projection.js';
import type { AddedConditions } from '../models/unet2d-condition.js';
import type { UNetConfig } from '../models/unet2d-config.js';
import { concat, Tensor } from '../tensor/index.js';

/** The parts an SDXL folder adds to Stable Diffusion's. */
export interface SDXLParts {
  textEncoder2: CLIPTextModelWithProjection;
  tokenizer2: PromptTokenizer;
  /** model_index.json's `force_zeros_for_empty_prompt` (SDXL base: true): no negative prompt → zero states. */
  forceZerosForEmptyPrompt: boolean;
}

/** SDXL's micro-conditioning (diffusers' `original_size`, `crops_coords_top_left`, `target_size`), (h, w) pairs. */
export interface MicroConditioning {
  /** The size the training image had before resizing; default: the generated image's size. */
  originalSize?: readonly [number, number];
  /** Top-left corner of the training crop; default (0, 0). */
  cropsCoordsTopLeft?: readonly [number, number];
  /** The image's intended size; default: the generated image's size. */
  targetSize?: readonly [number, number];
  /**
   * The unconditional rows' micro-conditioning (diffusers' `negative_original_size`, …), used when both
   * sizes are given (as diffusers); otherwise those rows take the conditional rows' time ids.
   */
  negativeOriginalSize?: readonly [number, number];
  negativeCropsCoordsTopLeft?: readonly [number, number];
  negativeTargetSize?: readonly [number, number];
}

/** Text states of prompts on SDXL: (B, T, D₁ + D₂) states and (B, projection_dim) pooled text. */
export interface SDXLText {
  states: Tensor;
  pooled: Tensor;
}

/**
 * The sizes that must agree between an SDXL folder's parts, checked at load (diffusers finds the first only when
 * it builds the time ids, `_get_add_time_ids`, and the second inside the first cross-attention): the UNet's
 * add_embedding input = encoder 2's projection_dim + 6 time ids × addition_time_embed_dim, and its
 * cross_attention_dim = the two encoders' hidden sizes together. A UNet with addition_embed_type 'text_time'
 * in a folder without the second encoder (model_index.json not StableDiffusionXLPipeline) is refused too.
 */
export function checkSDXLParts(
  dir: string,
  unet: UNetConfig,
  encoder1: CLIPTextConfig,
  xl?: SDXLParts,
): void {
  const tt = unet.textTime;
  if (!xl) {
    if (tt) {
      throw new Error(
        `${dir}: the UNet has addition_embed_type 'text_time' (SDXL) but model_index.json's _class_name is not ` +
          'StableDiffusionXLPipeline, so there is no second text encoder for its pooled text',
      );
    }
    return;
  }
  if (!tt) {
    throw new Error(
      `${dir}: an SDXL folder needs a UNet with addition_embed_type 'text_time' (unet/config.json)`,
    );
  }
  const projection = xl.textEncoder2.projectionDim;
  if (tt.inputDim !== projection + 6 * tt.timeEmbedDim) {
    throw new Error(
      `${dir}: unet/config.json projection_class_embeddings_input_dim = ${tt.inputDim}, but the pooled text ` +
        `(text_encoder_2 projection_dim ${projection}) and 6 time ids × addition_time_embed_dim ` +
        `${tt.timeEmbedDim} make ${projection + 6 * tt.timeEmbedDim}`,
    );
  }
  const states = encoder1.hiddenSize + xl.textEncoder2.config.hiddenSize;
  if (unet.crossAttentionDim !== states) {
    throw new Error(
      `${dir}: unet/config.json cross_attention_dim = ${unet.crossAttentionDim}, but the two text encoders' ` +
        `hidden sizes make ${states} (${encoder1.hiddenSize} + ${xl.textEncoder2.config.hiddenSize})`,
    );
  }
}

/**
 * Encodes prompts with both encoders (each with its own tokenizer): hidden_states[−2] of each (the last
 * layer's input, no final norm), concatenated on features; pooled = encoder 2's text_embeds.
 */
export function encodeSDXLPrompt(
  encoder1: CLIPTextModel,
  tokenizer1: PromptTokenizer,
  xl: SDXLParts,
  prompts: readonly string[],
): SDXLText {
  const penultimate = (states?: Tensor[]) => (states as Tensor[])[(states as Tensor[]).length - 2] as Tensor;
  const one = encoder1.encodePrompts(tokenizer1, prompts, { outputHiddenStates: true });
  const { ids } = xl.tokenizer2.call(prompts);
  const t = ids[0]?.length ?? 0;
  const two = xl.textEncoder2.forward(Tensor.int64(ids.flat(), [ids.length, t]), {
    outputHiddenStates: true,
  });
  const [a, b] = [penultimate(one.hiddenStates), penultimate(two.hiddenStates)];
  if (a.shape[1] !== b.shape[1]) {
    throw new Error(
      `SDXL: the two tokenizers give ${a.shape[1]} and ${b.shape[1]} tokens; their model_max_length must agree`,
    );
  }
  return { states: concat([a, b], 2), pooled: two.textEmbeds }; // (B, T, D₁ + D₂), (B, P)
}

/**
 * The UNet's added conditions for a batch: pooled text (rows as the batch) and one row of time ids
 * [original h, w, crop top, left, target h, w] per batch row (diffusers' `_get_add_time_ids`).
 */
export function sdxlAddedConditions(
  pooled: Tensor,
  imageSize: readonly [number, number],
  micro: MicroConditioning = {},
): AddedConditions {
  const original = micro.originalSize ?? imageSize;
  const crop = micro.cropsCoordsTopLeft ?? [0, 0];
  const target = micro.targetSize ?? imageSize;
  const row = [...original, ...crop, ...target];
  for (const v of row) {
    if (!Number.isFinite(v) || v < 0) {
      throw new Error(
        `SDXL: micro-conditioning sizes and crop must be finite numbers ≥ 0, got [${row.join(', ')}]`,
      );
    }
  }
  const b = pooled.shape[0] as number;
  const ids = new Float32Array(b * row.length);
  for (let i = 0; i < b; i++) ids.set(row, i * row.length);
  return { textEmbeds: pooled, timeIds: new Tensor(ids, [b, row.length]) };
}
