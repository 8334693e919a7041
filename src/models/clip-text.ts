// CLIP's text transformer (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
// Supervision") as transformers' `CLIPTextModel` names and computes it: the text tower Stable Diffusion
// conditions on. Pre-LayerNorm transformer with a causal mask; every self-attention runs through `attend`,
// so controllers see text-encoder attention too (kind 'self', place 'text').

import { join } from 'node:path';
import { assignAttentionLayers, attend } from '../attention/attention.js';
import type { AttentionLayerInfo } from '../attention/call.js';
import type { AttentionContext, HookOptions, ProjectionWeights } from '../attention/hooks.js';
import { Embedding, LayerNorm, Linear, loadStateDict, Module, ModuleList } from '../nn/index.js';
import { formatShape, gelu, indexSelect, quickGelu, Tensor } from '../tensor/index.js';
import { type CLIPTextActivation, type CLIPTextConfig, parseCLIPTextConfig } from './clip-text-config.js';
import { type JsonConfig, readConfig } from './config.js';
import { type FromPretrainedOptions, pretrainedFolder, readPretrainedWeights } from './pretrained.js';

// ---------------------------------------------------------------------------------------------------------
// Checkpoint keys

/**
 * transformers' checkpoint key → this model's key. Drops `text_model.embeddings.position_ids`, a buffer
 * (0, 1, …, max − 1) that older transformers versions saved with the weights.
 */
export function clipTextMapKey(key: string, tensor: Tensor): [string, Tensor][] {
  if (key === 'text_model.embeddings.position_ids') return [];
  return [[key, tensor]];
}

// ---------------------------------------------------------------------------------------------------------
// Modules

/** Float32's lowest value: the additive bias of masked logits (as transformers' causal mask). */
const MASKED = -3.4028234663852886e38;

/** (1, 1, T, T): 0 on and below the diagonal, the lowest float above it (token i sees tokens ≤ i). */
function causalBias(t: number): Tensor {
  const data = new Float32Array(t * t);
  for (let i = 0; i < t; i++) data.fill(MASKED, i * t + i + 1, (i + 1) * t);
  return new Tensor(data, [1, 1, t, t]);
}

export class CLIPAttention extends Module {
  /** Set by `assignAttentionLayers` when the model is built. */
  info: AttentionLayerInfo = { path: '', kind: 'self', place: 'text', index: 0 };
  k_proj: Linear;
  v_proj: Linear;
  q_proj: Linear;
  out_proj: Linear;

  constructor(
    dim: number,
    readonly heads: number,
  ) {
    super();
    this.k_proj = new Linear(dim, dim);
    this.v_proj = new Linear(dim, dim);
    this.q_proj = new Linear(dim, dim);
    this.out_proj = new Linear(dim, dim);
  }

  projectionWeights(): ProjectionWeights {
    const p = (l: Linear) => ({ weight: l.weight.value, bias: l.bias?.value });
    return { q: p(this.q_proj), k: p(this.k_proj), v: p(this.v_proj), out: p(this.out_proj) };
  }

  /** x (B, T, C), bias broadcastable to (B, heads, T, T) → (B, T, C). */
  forward(x: Tensor, bias: Tensor, ctx?: AttentionContext): Tensor {
    return attend({ info: this.info, ctx, x, heads: this.heads, weights: this.projectionWeights(), bias });
  }
}

export class CLIPMLP extends Module {
  fc1: Linear;
  fc2: Linear;
  constructor(
    dim: number,
    hidden: number,
    readonly act: CLIPTextActivation,
  ) {
    super();
    this.fc1 = new Linear(dim, hidden);
    this.fc2 = new Linear(hidden, dim);
  }
  forward(x: Tensor): Tensor {
    const h = this.fc1.forward(x); // (B, T, intermediate)
    return this.fc2.forward(this.act === 'quick_gelu' ? quickGelu(h) : gelu(h));
  }
}

export class CLIPEncoderLayer extends Module {
  self_attn: CLIPAttention;
  layer_norm1: LayerNorm;
  mlp: CLIPMLP;
  layer_norm2: LayerNorm;
  constructor(c: CLIPTextConfig) {
    super();
    this.self_attn = new CLIPAttention(c.hiddenSize, c.numAttentionHeads);
    this.layer_norm1 = new LayerNorm(c.hiddenSize, c.layerNormEps);
    this.mlp = new CLIPMLP(c.hiddenSize, c.intermediateSize, c.hiddenAct);
    this.layer_norm2 = new LayerNorm(c.hiddenSize, c.layerNormEps);
  }
  forward(x: Tensor, bias: Tensor, ctx?: AttentionContext): Tensor {
    // self-attention (pre-norm, residual)
    const h = x.add(this.self_attn.forward(this.layer_norm1.forward(x), bias, ctx));
    // feed-forward (pre-norm, residual)
    return h.add(this.mlp.forward(this.layer_norm2.forward(h)));
  }
}

export class CLIPTextEmbeddings extends Module {
  token_embedding: Embedding;
  position_embedding: Embedding;
  constructor(c: CLIPTextConfig) {
    super();
    this.token_embedding = new Embedding(c.vocabSize, c.hiddenSize);
    this.position_embedding = new Embedding(c.maxPositionEmbeddings, c.hiddenSize);
  }
  /** ids (B, T) → (B, T, C): token embedding + position embedding of 0 … T − 1. */
  forward(ids: Tensor): Tensor {
    const t = ids.shape[1] as number;
    // the embeddings of positions 0 … T − 1 are the table's first T rows: a slice, whose end a traced graph
    // computes from the ids' length (export with a symbolic sequence axis)
    const positions = this.position_embedding.weight.value.slice(0, 0, t); // (T, C)
    return this.token_embedding.forward(ids).add(positions); // (B, T, C)
  }
}

export class CLIPEncoder extends Module {
  layers: ModuleList<CLIPEncoderLayer>;
  constructor(c: CLIPTextConfig) {
    super();
    this.layers = new ModuleList(Array.from({ length: c.numHiddenLayers }, () => new CLIPEncoderLayer(c)));
  }
}

export class CLIPTextTransformer extends Module {
  embeddings: CLIPTextEmbeddings;
  encoder: CLIPEncoder;
  final_layer_norm: LayerNorm;
  constructor(c: CLIPTextConfig) {
    super();
    this.embeddings = new CLIPTextEmbeddings(c);
    this.encoder = new CLIPEncoder(c);
    this.final_layer_norm = new LayerNorm(c.hiddenSize, c.layerNormEps);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The model

/**
 * Options of the text encoder's forward: hooks' context, clip skip, and whether to return every hidden state.
 */
export interface CLIPTextForwardOptions extends HookOptions {
  /**
   * Clip skip (diffusers' `clip_skip`): `lastHiddenState` is the final layer norm of the hidden state this
   * many layers before the last (1 = the penultimate layer's output). Default 0.
   */
  clipSkip?: number;
  /** Also return every hidden state: the embeddings, then each layer's output (before the final norm). */
  outputHiddenStates?: boolean;
}

/**
 * The text encoder's outputs: the last hidden state (final-normed), optionally every hidden state, and the
 * pooled text.
 */
export interface CLIPTextOutput {
  /** (B, T, C): the final layer norm of the last layer's output, or of an earlier one with clipSkip. */
  lastHiddenState: Tensor;
  /** numHiddenLayers + 1 states (B, T, C), when asked for: the embeddings, then each layer's output. */
  hiddenStates?: Tensor[];
  /** (B, C): the final-normed last layer's state at each row's end-of-text token (never clip-skipped). */
  pooled: Tensor;
}

/** What `encodePrompts` needs of a tokenizer (`CLIPTokenizer.call` has this shape). */
export interface PromptTokenizer {
  /** Token ids of the texts, padded to the text encoder's length. */
  call(text: readonly string[]): { ids: number[][] };
}

/** transformers' `CLIPTextModel`: parameters named `text_model.…` as in its state dict. */
export class CLIPTextModel extends Module {
  readonly config: CLIPTextConfig;
  text_model: CLIPTextTransformer;
  /** Every attention layer, in forward order. */
  readonly attentionLayers: AttentionLayerInfo[];

  constructor(config: CLIPTextConfig) {
    super();
    this.config = config;
    this.text_model = new CLIPTextTransformer(config);
    this.attentionLayers = assignAttentionLayers(
      this,
      () => 'text',
      (m): m is CLIPAttention => m instanceof CLIPAttention,
    );
  }

  /** A CLIP text encoder with fresh parameters from a transformers `config.json`. */
  static fromConfig(json: JsonConfig): CLIPTextModel {
    return new CLIPTextModel(parseCLIPTextConfig(json));
  }

  /**
   * Reads `config.json` and `model[.variant].safetensors` (or its sharded set) from a transformers / diffusers
   * text encoder folder `dir` (or `dir/subfolder`, e.g. a pipeline folder's `text_encoder`); loading is strict.
   */
  static fromPretrained(dir: string, opts: FromPretrainedOptions = {}): CLIPTextModel {
    const folder = pretrainedFolder(dir, opts);
    const model = new CLIPTextModel(parseCLIPTextConfig(readConfig(folder), join(folder, 'config.json')));
    return model.load(readPretrainedWeights(folder, 'model', opts.variant));
  }

  /**
   * Loads a transformers state dict (keys mapped by `clipTextMapKey`). Strict: any missing, unexpected or
   * wrongly shaped key is an error naming it.
   */
  load(tensors: ReadonlyMap<string, Tensor>): this {
    const mapped = new Map<string, Tensor>();
    for (const [k, t] of tensors) for (const [key, value] of clipTextMapKey(k, t)) mapped.set(key, value);
    loadStateDict(this, mapped, { what: 'text_encoder' });
    return this;
  }

  /** ids (B, T), int64 or int32 → states (B, T, C). */
  forward(ids: Tensor, opts: CLIPTextForwardOptions = {}): CLIPTextOutput {
    const c = this.config;
    const m = this.text_model;
    if (ids.rank !== 2 || (ids.dtype !== 'int64' && ids.dtype !== 'int32')) {
      throw new Error(
        `CLIPTextModel.forward: expected token ids of shape (batch, tokens) and dtype int64 or int32, got ` +
          `${ids.dtype} ${formatShape(ids.shape)}`,
      );
    }
    const [b, t] = ids.shape as [number, number];
    if (t > c.maxPositionEmbeddings) {
      throw new Error(
        `CLIPTextModel.forward: ${t} tokens exceed max_position_embeddings (${c.maxPositionEmbeddings}); ` +
          'truncate the prompt to the tokenizer’s model_max_length',
      );
    }
    const clipSkip = opts.clipSkip ?? 0;
    if (!Number.isInteger(clipSkip) || clipSkip < 0 || clipSkip >= c.numHiddenLayers) {
      throw new Error(
        `CLIPTextModel.forward: clipSkip must be an integer in [0, ${c.numHiddenLayers - 1}], got ${clipSkip}`,
      );
    }

    // embeddings
    let h = m.embeddings.forward(ids); // (B, T, C)
    const states = [h];
    // transformer layers, causal self-attention
    // cut from the mask of the longest text, so that a traced graph slices it by the ids' length
    const bias = causalBias(c.maxPositionEmbeddings).slice(2, 0, t).slice(3, 0, t); // (1, 1, T, T)
    for (const layer of m.encoder.layers) {
      h = layer.forward(h, bias, opts.ctx);
      states.push(h);
    }
    const last = m.final_layer_norm.forward(h); // (B, T, C)
    const skipped =
      clipSkip === 0 ? last : m.final_layer_norm.forward(states[states.length - 1 - clipSkip] as Tensor);

    // pooled: the final state at each row's end-of-text token
    const rows = this.eosPositions(ids).map((pos, i) => i * t + pos);
    const pooled = indexSelect(last.reshape([b * t, -1]), 0, rows); // (B, C)

    return { lastHiddenState: skipped, pooled, ...(opts.outputHiddenStates ? { hiddenStates: states } : {}) };
  }

  /**
   * Position of the end-of-text token in each row of ids, as transformers finds it: the first occurrence
   * of eos_token_id; with the legacy eos_token_id 2 of early CLIP configs (and in rows without eos), the
   * largest id (openai/CLIP's rule: end-of-text is the highest id of its vocabulary).
   */
  eosPositions(ids: Tensor): number[] {
    const [b, t] = ids.shape as [number, number];
    const v = ids.toArray();
    const eos = this.config.eosTokenId;
    return Array.from({ length: b }, (_, i) => {
      const row = v.slice(i * t, (i + 1) * t);
      const first = eos === 2 ? -1 : row.indexOf(eos);
      if (first >= 0) return first;
      let best = 0;
      for (let j = 1; j < t; j++) if ((row[j] as number) > (row[best] as number)) best = j;
      return best;
    });
  }

  /** Tokenizes prompts (bos, ids, eos, padded, as diffusers does) and encodes them. */
  encodePrompts(
    tokenizer: PromptTokenizer,
    prompts: string | readonly string[],
    opts: CLIPTextForwardOptions = {},
  ): CLIPTextOutput {
    const { ids } = tokenizer.call(typeof prompts === 'string' ? [prompts] : prompts);
    const t = ids[0]?.length ?? 0;
    if (ids.some((row) => row.length !== t)) {
      throw new Error(
        'CLIPTextModel.encodePrompts: the tokenizer returned rows of different lengths; pad them',
      );
    }
    return this.forward(Tensor.int64(ids.flat(), [ids.length, t]), opts);
  }
}
