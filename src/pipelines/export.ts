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

/**
 * Traces `forward` over the named example inputs into one graph named `name`; `forward` returns the named
 * outputs. Gradients are off: an export records inference only.
 */
function traceGraph(
  name: string,
  inputs: Readonly<Record<string, Tensor>>,
  forward: () => Record<string, Tensor>,
): GraphSpec {
  const trace = new GraphTrace();
  for (const [input, t] of Object.entries(inputs)) trace.input(input, t);
  const outputs = noGrad(() => withTrace(trace, forward));
  return trace.graph(
    Object.entries(outputs).map(([output, tensor]) => ({ name: output, tensor })),
    name,
  );
}

/** The UNet as one graph: (sample, timestep, encoder_hidden_states) → noise_pred. */
export function exportUNet(unet: UNet2DConditionModel, s: ExportShape): GraphSpec {
  const c = unet.config;
  const sample = Tensor.zeros([s.batch, c.inChannels, s.height, s.width]);
  const timestep = Tensor.from(new Array<number>(s.batch).fill(500));
  const context = Tensor.zeros([s.batch, s.textLength, c.crossAttentionDim]);
  return traceGraph('unet', { sample, timestep, encoder_hidden_states: context }, () => ({
    noise_pred: unet.forward(sample, timestep, context),
  }));
}

/** The VAE decoder: latents (already divided by the scaling factor) → image. */
export function exportVAEDecoder(vae: AutoencoderKL, s: ExportShape): GraphSpec {
  const z = Tensor.zeros([s.batch, vae.config.latentChannels, s.height, s.width]);
  return traceGraph('vae_decoder', { latent_sample: z }, () => ({ sample: vae.decode(z) }));
}

/** The VAE encoder: image → mean and log-variance of q(z|x). */
export function exportVAEEncoder(vae: AutoencoderKL, s: ExportShape): GraphSpec {
  const x = Tensor.zeros([s.batch, vae.config.inChannels, s.height, s.width]);
  return traceGraph('vae_encoder', { sample: x }, () => {
    const d = vae.encode(x);
    return { mean: d.mean, logvar: d.logvar };
  });
}

/** The text encoder: input_ids (int64) → last_hidden_state. */
export function exportTextEncoder(text: CLIPTextModel, s: ExportShape): GraphSpec {
  const ids = Tensor.int64(new Array<number>(s.batch * s.textLength).fill(0), [s.batch, s.textLength]);
  return traceGraph('text_encoder', { input_ids: ids }, () => ({
    last_hidden_state: text.forward(ids).lastHiddenState,
  }));
}
