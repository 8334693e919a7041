// Stable Diffusion XL's conditioning (Podell et al. 2023, "SDXL: Improving Latent Diffusion Models for
// High-Resolution Image Synthesis"), as diffusers' StableDiffusionXLPipeline computes it: the prompt states are
// both text encoders' penultimate hidden states concatenated on features, the pooled text is the second
// encoder's projected end-of-text state, and the micro-conditioning time ids (original size, crop top-left,
// target size; Sec. 2.2) go with it into the UNet's added embedding. `StableDiffusion` uses these when its
// folder is an SDXL one (model_index.json `StableDiffusionXLPipeline`).

import type { CLIPTextModel, PromptTokenizer } from '../models/clip-text.js';
import type { CLIPTextModelWithProjection } from '../models/clip-text-projection.js';
import type { AddedConditions } from '../models/unet2d-condition.js';
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
}

/** Text states of prompts on SDXL: (B, T, D₁ + D₂) states and (B, projection_dim) pooled text. */
export interface SDXLText {
  states: Tensor;
  pooled: Tensor;
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
