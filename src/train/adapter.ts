// Teaching a trained model a concept with few weights, at the weight level of the survey: LoRA (Hu et al.
// 2021; low-rank A, B beside every UNet attention projection, B = 0 at the start so training starts at the
// model) or Custom Diffusion (Kumari et al. 2023; the cross-attention K and V projections themselves, started
// at the model's). The base model stays frozen; the adapter reaches it through the weights hook, which works
// under autograd. The objective is the model's own: its scheduler's noise schedule and prediction type,
//
//   L = E_{z₀, c, ε, t} ‖target − f_θ(√ᾱ_t z₀ + √(1 − ᾱ_t) ε, t, τ(c))‖²,  target = ε, or v = √ᾱ ε − √(1 − ᾱ) z₀
//
// and the loop is the shared one (AdamW, warm-up, clipping, resumable checkpoints, a progress bar with the
// loss and ETA). The result is written as a file the loaders read: a PEFT-layout LoRA or diffusers' Custom
// Diffusion layout.

import {
  AdamW,
  Attention,
  type AutoencoderKL,
  type CLIPTextModel,
  type CLIPTokenizer,
  type Controller,
  concat,
  customDiffusionController,
  DDPMScheduler,
  Generator,
  type JsonConfig,
  type LoraDelta,
  loraController,
  Module,
  noGrad,
  Parameter,
  singleTokenId,
  Tensor,
  type UNet2DConditionModel,
  writeCustomDiffusion,
  writeModifierTokens,
  writeSafetensors,
} from '../index.js';
import { type TrainingData, trainingBatch } from './data.js';
import { type LoopOptions, type LoopResult, trainLoop } from './loop.js';
import { dropCaptions, velocity } from './text-to-image.js';
import { sampleLatent } from './vae.js';

/** The parts of a Stable Diffusion model adapter training uses (a `StableDiffusion` has them). */
export interface AdapterBase {
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  textEncoder: CLIPTextModel;
  tokenizer: CLIPTokenizer;
  schedulerConfig: JsonConfig;
}

/** The weight-level methods `trainAdapter` fits ('full': every UNet weight, the baseline they are held to). */
export type AdapterMethod = 'lora' | 'custom-diffusion' | 'full';

/** A set of trainable weights that acts on the frozen UNet through a controller, and is written as a file. */
export interface Adapter extends Module {
  /** Text states of the captions when the adapter trains part of the text side, else undefined. */
  textStates?(base: AdapterBase, captions: readonly string[]): Tensor | undefined;
  /** The controller that applies the current weights to the UNet (made anew each step: they change). */
  controller?(): Controller;
  /** Writes the adapter in the layout its loader reads. */
  write(path: string): void;
}

const PROJECTIONS = ['to_q', 'to_k', 'to_v', 'to_out.0'] as const;

/** The UNet's attention layers (self and cross) by path. */
function attentionLayers(unet: Module, only?: 'attn2'): [string, Attention][] {
  return [...unet.namedModules()].filter(
    (e): e is [string, Attention] => e[1] instanceof Attention && (!only || e[0].endsWith(`.${only}`)),
  );
}

/**
 * LoRA factors of every UNet attention projection (q, k, v, out), rank r: A ~ N(0, 1/r²) and B = 0, as
 * diffusers' LoRALinearLayer starts them; α = r, so the update is B·A. Checkpoint keys are PEFT's.
 */
export class LoraFactors extends Module implements Adapter {
  readonly #modules: string[] = [];
  constructor(unet: Module, rank: number, gen: Generator) {
    super();
    for (const [path, attn] of attentionLayers(unet)) {
      const w = attn.projectionWeights();
      for (const proj of PROJECTIONS) {
        const weight = w[proj === 'to_out.0' ? 'out' : (proj.slice(3) as 'q' | 'k' | 'v')].weight;
        const [out, inp] = weight.shape as [number, number];
        const module = `${path}.${proj}`;
        this.#modules.push(module);
        this.#set(`${module}.lora_A`, new Parameter(gen.randn([rank, inp]).mul(1 / rank)));
        this.#set(`${module}.lora_B`, new Parameter(Tensor.zeros([out, rank])));
      }
    }
  }
  #set(key: string, p: Parameter): void {
    (this as unknown as Record<string, Parameter>)[key] = p;
  }
  #get(key: string): Parameter {
    return (this as unknown as Record<string, Parameter>)[key] as Parameter;
  }
  /** The current factors as LoRA deltas (α/r = 1). */
  deltas(): LoraDelta[] {
    return this.#modules.map((module) => ({
      module,
      down: this.#get(`${module}.lora_A`).value,
      up: this.#get(`${module}.lora_B`).value,
      alphaScale: 1,
    }));
  }
  /** The unmerged LoRA on the weights hook. */
  controller(): Controller {
    return loraController([{ deltas: this.deltas(), scale: 1 }], { name: 'lora (training)' });
  }
  /** The LoRA in PEFT / current diffusers layout (`unet.<module>.lora_A.weight`), no α (B·A). */
  write(path: string): void {
    const t = new Map<string, Tensor>();
    for (const d of this.deltas()) {
      t.set(`unet.${d.module}.lora_A.weight`, d.down.detach());
      t.set(`unet.${d.module}.lora_B.weight`, d.up.detach());
    }
    writeSafetensors(path, t, { metadata: { format: 'pt', method: 'lora' } });
  }
}

/** Custom Diffusion's modifier token V* as it trains: a one-token word whose embedding row is learned. */
export interface ModifierTokenTraining {
  word: string;
  id: number;
}

/**
 * Custom Diffusion's trainable K and V of every cross-attention layer, started at the model's own, and
 * optionally its modifier token: the embedding of a one-token word, started at that word's.
 */
export class CustomDiffusionKV extends Module implements Adapter {
  readonly #layers: string[] = [];
  readonly #token: ModifierTokenTraining | undefined;
  constructor(unet: Module, token?: { textEncoder: CLIPTextModel; tokenizer: CLIPTokenizer; word: string }) {
    super();
    // copies: training marks these tensors as requiring gradients, the model's own stay frozen
    const copy = (t: Tensor) => new Tensor(Float32Array.from(t.data as Float32Array), t.shape);
    for (const [path, attn] of attentionLayers(unet, 'attn2')) {
      this.#layers.push(path);
      const w = attn.projectionWeights();
      this.#set(`${path}.to_k_custom_diffusion`, new Parameter(copy(w.k.weight)));
      this.#set(`${path}.to_v_custom_diffusion`, new Parameter(copy(w.v.weight)));
    }
    if (token) {
      const id = singleTokenId(token.tokenizer, token.word);
      this.#token = { word: token.word, id };
      const table = token.textEncoder.text_model.embeddings.token_embedding.weight.value;
      this.#set(
        'modifier_token',
        new Parameter(copy(table.slice(0, id, id + 1).reshape([table.shape[1] as number]))),
      );
    }
  }
  #set(key: string, p: Parameter): void {
    (this as unknown as Record<string, Parameter>)[key] = p;
  }
  #get(key: string): Tensor {
    return ((this as unknown as Record<string, Parameter>)[key] as Parameter).value;
  }
  /** The current K and V by cross-attention layer path. */
  weights(): Map<string, { k: { weight: Tensor }; v: { weight: Tensor } }> {
    return new Map(
      this.#layers.map((l) => [
        l,
        {
          k: { weight: this.#get(`${l}.to_k_custom_diffusion`) },
          v: { weight: this.#get(`${l}.to_v_custom_diffusion`) },
        },
      ]),
    );
  }
  /** The learned K and V on the weights hook. */
  controller(): Controller {
    return customDiffusionController(this.weights());
  }
  /**
   * The prompts' text states with the modifier token's current embedding in its row (recorded, so the
   * embedding receives gradients); undefined without a modifier token.
   */
  textStates(base: AdapterBase, captions: readonly string[]): Tensor | undefined {
    if (!this.#token) return undefined;
    const param = base.textEncoder.text_model.embeddings.token_embedding.weight;
    const table = param.value;
    const { id } = this.#token;
    const row = this.#get('modifier_token').reshape([1, table.shape[1] as number]);
    param.value = concat([table.slice(0, 0, id), row, table.slice(0, id + 1, table.shape[0] as number)], 0);
    try {
      return base.textEncoder.encodePrompts(base.tokenizer, captions).lastHiddenState;
    } finally {
      param.value = table;
    }
  }
  /** Writes diffusers' Custom Diffusion layout, and the modifier token beside it (`<file>.token.safetensors`). */
  write(path: string): void {
    writeCustomDiffusion(path, this.weights());
    if (this.#token) {
      const tokenPath = path.replace(/\.safetensors$/, '.token.safetensors');
      writeModifierTokens(tokenPath, new Map([[this.#token.word, this.#get('modifier_token')]]));
    }
  }
}

/**
 * Full fine-tuning: every weight of the UNet trains (the text encoder and VAE stay frozen), as DreamBooth
 * (Ruiz et al. 2023) does without a text-encoder part. The weights are the model's own, so no controller;
 * the file is the UNet's state dict in diffusers' names (float32), read back with `loadStateDict`.
 */
export class FullUNet extends Module implements Adapter {
  readonly unet: UNet2DConditionModel;
  constructor(unet: UNet2DConditionModel) {
    super();
    this.unet = unet;
  }
  /** Writes the fine-tuned UNet as `diffusion_pytorch_model.safetensors` holds it. */
  write(path: string): void {
    writeSafetensors(path, this.unet.stateDict(), { metadata: { format: 'pt', method: 'full' } });
  }
}

/** How `trainAdapter` runs: the method, its rank, the data stream, the loop's settings and the output file. */
export interface AdapterTrainOptions extends Omit<LoopOptions, 'label' | 'extra'> {
  method: AdapterMethod;
  /** LoRA rank (default 4). */
  rank?: number;
  /** Custom Diffusion: also learn this one-token word's embedding (the modifier token V*). */
  modifierToken?: string;
  batchSize: number;
  /** The data stream (TrainingData's data seed). */
  dataSeed: number;
  /** Seeds the factors' start and the noise / timestep draws. */
  seed: number;
  /** The adapter file to write at the end (.safetensors). */
  out: string;
  /** Prior preservation: `batchSize` more rows per step from this source, their loss weighted by `weight`. */
  prior?: { data: TrainingData; dataSeed: number; weight: number };
  /**
   * Each caption (concept and prior rows) replaced by '' with this probability (default 0), as the base model
   * was trained: keeps the unconditional prediction, which classifier-free guidance subtracts, trained too.
   */
  captionDropout?: number;
}

/**
 * The model's own noise objective on one batch, with the adapter's controller on the UNet. With
 * `priorRows` > 0 the last rows are prior-preservation examples (DreamBooth, Ruiz et al. 2023; Custom
 * Diffusion's regularisation images): the loss is the mean error of the concept rows plus `priorWeight`
 * times the mean error of the prior rows.
 */
export function adapterLoss(
  base: AdapterBase,
  adapter: Adapter,
  noise: DDPMScheduler,
  images: Tensor,
  captions: readonly string[],
  gen: Generator,
  prior: { rows: number; weight: number } = { rows: 0, weight: 0 },
): Tensor {
  const b = images.shape[0] as number;
  const z0 = noGrad(() => sampleLatent(base.vae.encode(images), gen).mul(base.vae.config.scalingFactor));
  const t = gen.randint([b], 0, noise.alphasCumprod.length).toArray();
  const eps = gen.randn(z0.shape);
  const zt = noise.addNoise(z0, eps, t);
  const context =
    adapter.textStates?.(base, captions) ??
    noGrad(() => base.textEncoder.encodePrompts(base.tokenizer, captions).lastHiddenState);
  const ctx = {
    step: 0,
    numSteps: 1,
    timestep: t[0] as number,
    batch: { guidance: captions.map(() => 'cond' as const), prompt: captions.map(() => 0) },
    controllers: adapter.controller ? [adapter.controller()] : [],
  };
  const pred = base.unet.forward(zt, t, context, { ctx });
  const prediction = noise.config.prediction_type;
  if (prediction === 'sample')
    throw new Error('adapter training: sample-prediction models are not supported');
  const target = prediction === 'v_prediction' ? velocity(noise.alphasCumprod, z0, eps, t) : eps;
  const err = pred
    .sub(target)
    .pow(2)
    .mean({ axes: [1, 2, 3] }); // (B,)
  if (prior.rows === 0) return err.mean();
  const n = b - prior.rows;
  const w = Array.from({ length: b }, (_, i) => (i < n ? 1 / n : prior.weight / prior.rows));
  return err.mul(Tensor.from(w, [b])).sum();
}

/** Fits a LoRA or Custom Diffusion adapter on `data` (resumable in `o.dir`) and writes it to `o.out`. */
export function trainAdapter(
  base: AdapterBase,
  data: TrainingData,
  o: AdapterTrainOptions,
): LoopResult & { adapter: Adapter } {
  const gen = new Generator(o.seed);
  const adapter: Adapter =
    o.method === 'lora'
      ? new LoraFactors(base.unet, o.rank ?? 4, gen)
      : o.method === 'full'
        ? new FullUNet(base.unet)
        : new CustomDiffusionKV(
            base.unet,
            o.modifierToken === undefined ? undefined : { ...base, word: o.modifierToken },
          );
  const params = adapter.parameters();
  for (const p of params) p.value.requiresGrad = true;
  const noise = DDPMScheduler.fromConfig(base.schedulerConfig);
  const state = {
    modules: { [o.method]: adapter },
    optimizer: new AdamW(params, { weightDecay: 0 }),
    gen,
    history: [],
  };
  const result = trainLoop(
    state,
    (step) => {
      const batch = trainingBatch(data, o.dataSeed, step, o.batchSize);
      // the dropout's draws come from a generator of their own per step: runs without it stay as they were
      const drop = (c: readonly string[]) =>
        o.captionDropout ? dropCaptions(c, o.captionDropout, new Generator(o.seed * 1_000_003 + step)) : c;
      if (!o.prior) {
        const loss = adapterLoss(base, adapter, noise, batch.images, drop(batch.captions), gen);
        return { loss, logs: {} };
      }
      const p = trainingBatch(o.prior.data, o.prior.dataSeed, step, o.batchSize);
      const images = concat([batch.images, p.images], 0);
      const captions = drop([...batch.captions, ...p.captions]);
      const prior = { rows: o.batchSize, weight: o.prior.weight };
      return { loss: adapterLoss(base, adapter, noise, images, captions, gen, prior), logs: {} };
    },
    { ...o, label: o.method, extra: { method: o.method, rank: o.rank ?? 4 } },
  );
  adapter.write(o.out);
  return { ...result, adapter };
}
