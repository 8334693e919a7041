// Export: trace a model component's forward pass into one ONNX graph that plain onnxruntime (Node, web,
// Python) runs without attnkit. The batch, height, width and sequence axes are symbolic unless fixed: the
// forward is traced at two sizes and the graph computes every shape value from its inputs' dims
// (tensor/symbolic-axes.ts).

import type { GraphSpec } from '../kernels/graph.js';
import type { AutoencoderKL } from '../models/autoencoder-kl.js';
import type { CLIPTextModel } from '../models/clip-text.js';
import { CLIPTextModelWithProjection } from '../models/clip-text-projection.js';
import type { UNet2DConditionModel } from '../models/unet2d-condition.js';
import { GraphTrace, noGrad, Tensor, withTrace } from '../tensor/index.js';
import { cumsum } from '../tensor/ops/nn.js';
import { type AxisSizes, generalizeTraces } from '../tensor/symbolic-axes.js';

/** The components `attnkit export` writes (text-encoder-2: SDXL's second text encoder). */
export type ExportComponent = 'unet' | 'vae-decoder' | 'vae-encoder' | 'text-encoder' | 'text-encoder-2';

/**
 * Sizes to fix in the graph; an axis left out is symbolic, named `batch`, `height`, `width` or `sequence` in
 * the graph's inputs. Height and width are the latents' for the UNet and VAE decoder, the image's for the VAE
 * encoder; textLength is the token count.
 */
export interface ExportShape {
  batch?: number;
  height?: number;
  width?: number;
  textLength?: number;
  /** SDXL's UNet: how many micro-conditioning time ids (default 6, as SDXL base; the refiner has 5). */
  timeIds?: number;
}

type Axis = 'batch' | 'height' | 'width' | 'sequence';
type Sizes = Record<string, number>;

/** A dim the graph leaves open under its own name, traced at `size` (the UNet's timestep: 1 or batch). */
interface OpenDim {
  open: string;
  size: number;
}

/** One graph input: its dims (axis names, open dims or fixed numbers) and the example tensor of a shape. */
interface ExportInput {
  dims: readonly (number | Axis | OpenDim)[];
  make(shape: readonly number[]): Tensor;
}

/**
 * The two traces' size of each axis the inputs use: a symbolic axis grows by a prime of its own (batch ×2,
 * height ×3, width ×5, sequence ×7), which lets `generalizeTraces` solve every shape value; a fixed one keeps
 * its size. Spatial sizes are multiples of `unit`, the component's total downsampling; the batch starts at 2,
 * so that broadcasts from 1 to the batch are traced as ops.
 */
function traceSizes(fixed: ExportShape, unit: number, axes: ReadonlySet<Axis>): AxisSizes {
  const plan: Record<Axis, [number | undefined, number, number]> = {
    batch: [fixed.batch, 2, 2],
    height: [fixed.height, unit, 3],
    width: [fixed.width, unit, 5],
    sequence: [fixed.textLength, 2, 7],
  };
  const first: Sizes = {};
  const second: Sizes = {};
  for (const axis of axes) {
    const [given, size, factor] = plan[axis];
    first[axis] = given ?? size;
    second[axis] = given ?? size * factor;
  }
  return { first, second };
}

/**
 * Traces `forward` over the named inputs into one graph named `name`, with symbolic axes where `fixed` gives
 * no size. Gradients are off: an export records inference only.
 */
function traceGraph(
  name: string,
  fixed: ExportShape,
  unit: number,
  inputs: Readonly<Record<string, ExportInput>>,
  forward: (x: Readonly<Record<string, Tensor>>) => Record<string, Tensor>,
): GraphSpec {
  const axes = new Set(
    Object.values(inputs).flatMap((i) => i.dims.filter((d): d is Axis => typeof d === 'string')),
  );
  const sizes = traceSizes(fixed, unit, axes);
  const symbolic = [...axes].filter((a) => sizes.first[a] !== sizes.second[a]);
  const traceAt = (at: Sizes): GraphSpec => {
    const trace = new GraphTrace();
    const xs: Record<string, Tensor> = {};
    for (const [input, spec] of Object.entries(inputs)) {
      const shape = spec.dims.map((d) =>
        typeof d === 'number' ? d : typeof d === 'string' ? (at[d] as number) : d.size,
      );
      xs[input] = spec.make(shape);
      const declared = spec.dims.map((d, i) =>
        typeof d === 'object'
          ? d.open
          : typeof d === 'string' && symbolic.includes(d)
            ? d
            : (shape[i] as number),
      );
      trace.input(input, xs[input], declared);
    }
    const outputs = noGrad(() => withTrace(trace, () => forward(xs)));
    return trace.graph(
      Object.entries(outputs).map(([output, tensor]) => ({ name: output, tensor })),
      name,
    );
  };
  const first = traceAt(sizes.first);
  if (symbolic.length === 0) return first;
  return generalizeTraces(first, traceAt(sizes.second), sizes);
}

const zeros = (shape: readonly number[]) => Tensor.zeros(shape);

/**
 * The UNet as one graph: (sample, timestep, encoder_hidden_states) → noise_pred, and for SDXL (text_time)
 * also text_embeds (batch, D) and time_ids (batch, n), as optimum names them. The timestep is one value for
 * the whole batch or one per row (dim `steps`: 1 or batch), as optimum's exports take it.
 */
export function exportUNet(unet: UNet2DConditionModel, fixed: ExportShape = {}): GraphSpec {
  const c = unet.config;
  const tt = c.textTime;
  const n = fixed.timeIds ?? 6;
  const inputs: Record<string, ExportInput> = {
    sample: { dims: ['batch', c.inChannels, 'height', 'width'], make: zeros },
    timestep: { dims: [{ open: 'steps', size: 1 }], make: (s) => Tensor.full(s, 500) },
    encoder_hidden_states: { dims: ['batch', 'sequence', c.crossAttentionDim], make: zeros },
  };
  if (tt) {
    inputs.text_embeds = { dims: ['batch', tt.inputDim - n * tt.timeEmbedDim], make: zeros };
    inputs.time_ids = { dims: ['batch', n], make: zeros };
  }
  const unit = 2 ** (c.blockOutChannels.length - 1);
  return traceGraph('unet', fixed, unit, inputs, (x) => {
    const added = tt ? { textEmbeds: x.text_embeds as Tensor, timeIds: x.time_ids as Tensor } : undefined;
    const y = unet.forward(x.sample as Tensor, x.timestep as Tensor, x.encoder_hidden_states as Tensor, {
      added,
    });
    return { noise_pred: y };
  });
}

/** The VAE decoder: latents (already divided by the scaling factor) → image. */
export function exportVAEDecoder(vae: AutoencoderKL, fixed: ExportShape = {}): GraphSpec {
  const inputs = {
    latent_sample: { dims: ['batch', vae.config.latentChannels, 'height', 'width'], make: zeros },
  } satisfies Record<string, ExportInput>;
  return traceGraph('vae_decoder', fixed, 1, inputs, (x) => ({
    sample: vae.decode(x.latent_sample as Tensor),
  }));
}

/** The VAE encoder: image → mean and log-variance of q(z|x). */
export function exportVAEEncoder(vae: AutoencoderKL, fixed: ExportShape = {}): GraphSpec {
  const inputs = {
    sample: { dims: ['batch', vae.config.inChannels, 'height', 'width'], make: zeros },
  } satisfies Record<string, ExportInput>;
  return traceGraph('vae_encoder', fixed, vae.scaleFactor, inputs, (x) => {
    const d = vae.encode(x.sample as Tensor);
    return { mean: d.mean, logvar: d.logvar };
  });
}

/** What the text encoder's graph outputs besides last_hidden_state. */
export interface TextExportOptions {
  /**
   * Also every hidden state, `hidden_states.0` (embeddings) … `hidden_states.L` (before the final norm), as
   * optimum's SDXL exports name them: SDXL conditions on `hidden_states.{L−1}` of both encoders.
   */
  hiddenStates?: boolean;
}

/**
 * The pooled text in the graph: the final state at each row's end-of-text token, chosen as
 * `CLIPTextModel.eosPositions` does (the first eos_token_id; with the legacy id 2, or in a row without it,
 * the first largest id) by a 0/1 weight over the tokens, so no position is a constant of the trace.
 */
function pooledInGraph(text: CLIPTextModel, ids: Tensor, last: Tensor): Tensor {
  const largest = ids.eq(ids.max({ axes: -1, keepDims: true })).cast('float32'); // (B, T)
  let hit = largest;
  if (text.config.eosTokenId !== 2) {
    const eos = ids.eq(Tensor.int64([text.config.eosTokenId])).cast('float32');
    const has = eos.max({ axes: -1, keepDims: true }); // (B, 1): 1 where the row holds eos
    hit = eos.mul(has).add(largest.mul(has.neg().add(1)));
  }
  const first = hit.mul(
    cumsum(hit, -1)
      .eq(Tensor.from([1], [1]))
      .cast('float32'),
  ); // (B, T), one 1 per row
  return last.mul(first.unsqueeze(-1)).sum({ axes: 1 }); // (B, C)
}

/**
 * The text encoder: input_ids (int64) → last_hidden_state, and with a projection head (SDXL's second encoder,
 * CLIPTextModelWithProjection) `text_embeds`, the projected pooled text; optionally every hidden state.
 */
export function exportTextEncoder(
  text: CLIPTextModel | CLIPTextModelWithProjection,
  fixed: ExportShape = {},
  opts: TextExportOptions = {},
): GraphSpec {
  const inputs = {
    input_ids: { dims: ['batch', 'sequence'], make: (s) => Tensor.zeros(s, 'int64') },
  } satisfies Record<string, ExportInput>;
  return traceGraph('text_encoder', fixed, 1, inputs, (x) => {
    const ids = x.input_ids as Tensor;
    const out = text.forward(ids, { outputHiddenStates: opts.hiddenStates });
    const graph: Record<string, Tensor> = {};
    if (text instanceof CLIPTextModelWithProjection) {
      graph.text_embeds = text.text_projection.forward(pooledInGraph(text, ids, out.lastHiddenState));
    }
    graph.last_hidden_state = out.lastHiddenState;
    out.hiddenStates?.forEach((h, i) => {
      graph[`hidden_states.${i}`] = h;
    });
    return graph;
  });
}
