// Export: trace a model component's forward pass into one ONNX graph that plain onnxruntime (Node, web,
// Python) runs without attnkit. Shapes are those of the example inputs (batch, image size, text length).

import type { GraphSpec } from '../kernels/graph.js';
import type { AutoencoderKL } from '../models/autoencoder-kl.js';
import type { CLIPTextModel } from '../models/clip-text.js';
import type { UNet2DConditionModel } from '../models/unet2d-condition.js';
import { GraphTrace, noGrad, Tensor, withTrace } from '../tensor/index.js';

export type ExportComponent = 'unet' | 'vae-decoder' | 'vae-encoder' | 'text-encoder';

export interface ExportShape {
  batch: number;
  /** Latent height and width for the UNet / VAE decoder; image size for the VAE encoder. */
  height: number;
  width: number;
  /** Text length (the tokenizer's model_max_length). */
  textLength: number;
}

/** The UNet as one graph: (sample, timestep, encoder_hidden_states) → noise_pred. */
export function exportUNet(unet: UNet2DConditionModel, s: ExportShape): GraphSpec {
  const c = unet.config;
  const sample = Tensor.zeros([s.batch, c.inChannels, s.height, s.width]);
  const timestep = Tensor.from(new Array<number>(s.batch).fill(500));
  const context = Tensor.zeros([s.batch, s.textLength, c.crossAttentionDim]);
  const trace = new GraphTrace();
  trace.input('sample', sample);
  trace.input('timestep', timestep);
  trace.input('encoder_hidden_states', context);
  const out = noGrad(() => withTrace(trace, () => unet.forward(sample, timestep, context)));
  return trace.graph([{ name: 'noise_pred', tensor: out }], 'unet');
}

/** The VAE decoder: latents (already divided by the scaling factor) → image. */
export function exportVAEDecoder(vae: AutoencoderKL, s: ExportShape): GraphSpec {
  const z = Tensor.zeros([s.batch, vae.config.latentChannels, s.height, s.width]);
  const trace = new GraphTrace();
  trace.input('latent_sample', z);
  const out = noGrad(() => withTrace(trace, () => vae.decode(z)));
  return trace.graph([{ name: 'sample', tensor: out }], 'vae_decoder');
}

/** The VAE encoder: image → mean and log-variance of q(z|x). */
export function exportVAEEncoder(vae: AutoencoderKL, s: ExportShape): GraphSpec {
  const x = Tensor.zeros([s.batch, vae.config.inChannels, s.height, s.width]);
  const trace = new GraphTrace();
  trace.input('sample', x);
  const d = noGrad(() => withTrace(trace, () => vae.encode(x)));
  return trace.graph(
    [
      { name: 'mean', tensor: d.mean },
      { name: 'logvar', tensor: d.logvar },
    ],
    'vae_encoder',
  );
}

/** The text encoder: input_ids (int64) → last_hidden_state. */
export function exportTextEncoder(text: CLIPTextModel, s: ExportShape): GraphSpec {
  const ids = Tensor.int64(new Array<number>(s.batch * s.textLength).fill(0), [s.batch, s.textLength]);
  const trace = new GraphTrace();
  trace.input('input_ids', ids);
  const out = noGrad(() => withTrace(trace, () => text.forward(ids).lastHiddenState));
  return trace.graph([{ name: 'last_hidden_state', tensor: out }], 'text_encoder');
}
