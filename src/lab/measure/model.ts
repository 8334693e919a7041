// The model an edit measurement runs on: the UNet Shapes model (`StableDiffusion`, sampled with DDIM) or the DiT
// one (`StableDiffusion3`: MM-DiT, flow matching; docs/mmdit.md). The methods are the same objects on both —
// on the DiT they see each joint attention call's image→text block as cross-attention and its image→image block
// as self-attention (src/attention/joint-view.ts) — so only what a measurement asks of the model itself differs,
// and it is here: the seeded noise, sampling, the inversion heat-maps are read from, and the layer choices a
// UNet default makes from its blocks (MasaCtrl's first layer, the map side MaskAuto and LocalBlend read).

import {
  type Controller,
  defaultHeatResolutions,
  defaultMaskResolution,
  defaultStartLayer,
  initialNoise,
  invertBatch,
  invertFlow,
  MutualSelfAttentionMaskAuto,
  type MutualSelfAttentionMaskOptions,
  maskAutoFor,
  type StableDiffusion,
  StableDiffusion3,
  type Tensor,
} from '../../index.js';

/** A Shapes model the edit measurements run on: the UNet model or the MM-DiT one. */
export type MeasureModel = StableDiffusion | StableDiffusion3;

/** Whether the model is the MM-DiT (flow matching, joint attention). */
export function isDiT(sd: MeasureModel): sd is StableDiffusion3 {
  return sd instanceof StableDiffusion3;
}

/** The noise (1, C, h, w) an image of scene seed `seed` starts from, as ShapesEval seeds it. */
export function noiseOf(sd: MeasureModel, seed: number): Tensor {
  return isDiT(sd) ? sd.initialNoise(seed) : initialNoise(sd, seed);
}

/** What one batch of a lab run samples: prompts, start latents (one row each), steps, guidance, controllers. */
export interface SampleBatch {
  prompt: string[];
  latents: Tensor;
  steps: number;
  guidanceScale: number;
  controllers: Controller[];
}

/** The images (B, 3, H, W) of one batch: DDIM on the UNet, the flow's Euler steps on the DiT. */
export function sampleImages(sd: MeasureModel, o: SampleBatch): Tensor {
  if (isDiT(sd)) return sd.generate(o).images;
  return sd.generate({ ...o, scheduler: 'ddim' }).images;
}

/**
 * Inverts clean latents with their captions at guidance 1, controllers on every attention call with the steps
 * numbered clean to noisy: DDIM inversion on the UNet, flow inversion (`invertFlow`) on the DiT.
 */
export function invertWithCaptions(
  sd: MeasureModel,
  latents: Tensor,
  captions: readonly string[],
  steps: number,
  controllers: readonly Controller[],
): void {
  if (!isDiT(sd)) {
    invertBatch(sd, latents, sd.encodePrompt(captions), steps, controllers);
    return;
  }
  const { states, pooled } = sd.encodeText(captions);
  invertFlow(sd.transformer, sd.scheduler(), { latents, context: states, pooled, steps, controllers });
}

/**
 * The sides heat-maps are read at by default: the UNet's `defaultHeatResolutions`; on the DiT every joint layer
 * (one grid for all, as ShapesEval's DiT heat-maps).
 */
export function heatResolutionsOf(sd: MeasureModel): number[] | undefined {
  return isDiT(sd) ? undefined : defaultHeatResolutions(sd);
}

/** Side of the DiT's patch grid, the size of every joint call's maps. */
function gridSide(sd: StableDiffusion3): number {
  return sd.latentSize / sd.transformer.config.patchSize;
}

/**
 * MasaCtrl's first self-attention layer: the UNet's `defaultStartLayer` (the decoder's, as the reference's 10 of
 * SD's 16); on the DiT the second half of its joint blocks — the UNet rule has no decoder to point at, and the
 * later half is where the DiT, like the decoder, works on the image's content after its layout is set.
 */
export function masaCtrlStartLayer(sd: MeasureModel): number {
  return isDiT(sd) ? Math.floor(sd.transformer.config.numLayers / 2) : defaultStartLayer(sd);
}

/**
 * MasaCtrl with masks on a (source, target) pair from the maps of `words`: `maskAutoFor` on the UNet; on the
 * DiT the same controller on its one map side, from the given start layer.
 */
export function maskAutoOn(
  sd: MeasureModel,
  pair: readonly [string, string],
  opts: MutualSelfAttentionMaskOptions & { words: readonly string[] },
): MutualSelfAttentionMaskAuto {
  if (!isDiT(sd)) return maskAutoFor(sd, pair, opts);
  const { words, ...masa } = opts;
  const tokens = (prompt: string) => words.flatMap((w) => sd.tokenizer.tokenIndices(prompt, w));
  return new MutualSelfAttentionMaskAuto({
    ...masa,
    startLayer: masa.startLayer ?? masaCtrlStartLayer(sd),
    maskResolution: gridSide(sd),
    refTokenIdx: tokens(pair[0]),
    curTokenIdx: tokens(pair[1]),
  });
}

/** The side MaskAuto reads by default: the UNet's `defaultMaskResolution`, the DiT's patch grid. */
export function maskResolutionOf(sd: MeasureModel): number {
  return isDiT(sd) ? gridSide(sd) : defaultMaskResolution(sd);
}

/**
 * LocalBlend's options for the model: none on the UNet (the reference's down and up blocks); on the DiT
 * `midBlock`, since every joint layer has place 'mid' (one resolution throughout) and would otherwise be left out.
 */
export function localBlendExtras(sd: MeasureModel): { midBlock?: boolean } {
  return isDiT(sd) ? { midBlock: true } : {};
}
