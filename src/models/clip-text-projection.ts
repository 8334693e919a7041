// transformers' `CLIPTextModelWithProjection`: CLIP's text transformer (clip-text.ts) plus its projection head,
// SDXL's second text encoder. The pooled output — the final state at each row's end-of-text token — goes
// through `text_projection` (no bias) to `text_embeds`, the pooled text SDXL's UNet is conditioned on.

import { join } from 'node:path';
import { Linear } from '../nn/index.js';
import type { Tensor } from '../tensor/index.js';
import { type CLIPTextForwardOptions, CLIPTextModel, type CLIPTextOutput } from './clip-text.js';
import { type CLIPTextConfig, parseCLIPTextConfig } from './clip-text-config.js';
import { ConfigReader, type JsonConfig, readConfig } from './config.js';
import { type FromPretrainedOptions, pretrainedFolder, readPretrainedWeights } from './pretrained.js';

/** The text encoder's outputs with the projected pooled text (SDXL's second encoder). */
export interface CLIPTextWithProjectionOutput extends CLIPTextOutput {
  /** (B, projection_dim): `text_projection` of the pooled output. */
  textEmbeds: Tensor;
}

/** Parameters `text_model.…` and `text_projection.weight`, as in transformers' state dict. */
export class CLIPTextModelWithProjection extends CLIPTextModel {
  readonly projectionDim: number;
  text_projection: Linear;

  constructor(config: CLIPTextConfig, projectionDim: number) {
    super(config);
    this.projectionDim = projectionDim;
    this.text_projection = new Linear(config.hiddenSize, projectionDim, { bias: false });
  }

  /** transformers' default `projection_dim` is 512; SDXL's encoder gives 1280. */
  static override fromConfig(
    json: JsonConfig,
    where = 'text_encoder_2/config.json',
  ): CLIPTextModelWithProjection {
    const projectionDim = new ConfigReader(json, where).size('projection_dim', 'channels', 512);
    return new CLIPTextModelWithProjection(parseCLIPTextConfig(json, where), projectionDim);
  }

  /**
   * Reads `config.json` and `model[.variant].safetensors` (or its shards) from `dir` or `dir/subfolder` (a
   * pipeline folder's `text_encoder_2`); loading is strict.
   */
  static override fromPretrained(dir: string, opts: FromPretrainedOptions = {}): CLIPTextModelWithProjection {
    const folder = pretrainedFolder(dir, opts);
    const model = CLIPTextModelWithProjection.fromConfig(readConfig(folder), join(folder, 'config.json'));
    return model.load(readPretrainedWeights(folder, 'model', opts.variant));
  }

  /** ids (B, T) → the text model's outputs and `textEmbeds` (B, projection_dim). */
  override forward(ids: Tensor, opts: CLIPTextForwardOptions = {}): CLIPTextWithProjectionOutput {
    const out = super.forward(ids, opts);
    return { ...out, textEmbeds: this.text_projection.forward(out.pooled) };
  }
}
