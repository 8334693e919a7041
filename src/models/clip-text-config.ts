// The config of CLIP's text transformer (transformers' `CLIPTextConfig`): read once from `config.json` into a
// typed config the model (clip-text.ts) is built from.

import { ConfigReader, type JsonConfig } from './config.js';

/** The activation of CLIP's MLPs: quick GELU (x·σ(1.702x), OpenAI's CLIP) or GELU. */
export type CLIPTextActivation = 'quick_gelu' | 'gelu';

/** transformers' `CLIPTextConfig`, the keys attnkit uses, read once from `config.json`. */
export interface CLIPTextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  maxPositionEmbeddings: number;
  hiddenAct: CLIPTextActivation;
  layerNormEps: number;
  bosTokenId: number;
  eosTokenId: number;
  padTokenId: number;
}

/** transformers' defaults (openai/clip-vit-base-patch32), used for keys a config.json leaves out. */
const DEFAULTS: CLIPTextConfig = {
  vocabSize: 49408,
  hiddenSize: 512,
  intermediateSize: 2048,
  numHiddenLayers: 12,
  numAttentionHeads: 8,
  maxPositionEmbeddings: 77,
  hiddenAct: 'quick_gelu',
  layerNormEps: 1e-5,
  bosTokenId: 49406,
  eosTokenId: 49407,
  padTokenId: 1,
};

/**
 * Reads a transformers CLIP text config (`model_type` 'clip_text_model', or a full 'clip' config whose
 * `text_config` is used). Keys left out take transformers' defaults; a value attnkit does not support is
 * an error naming the key. `projection_dim` (the projection head) is not part of this model and is ignored.
 */
export function parseCLIPTextConfig(json: JsonConfig, where = 'text_encoder/config.json'): CLIPTextConfig {
  new ConfigReader(json, where).require('model_type', ['clip_text_model', 'clip']);
  let raw = json;
  if (json.model_type === 'clip') {
    const text = json.text_config;
    if (typeof text !== 'object' || text === null || Array.isArray(text)) {
      throw new Error(
        `${where}: config key 'text_config' must be an object in a config of model_type "clip"`,
      );
    }
    raw = text as JsonConfig;
    where = `${where} (text_config)`;
  }
  const r = new ConfigReader(raw, where);
  r.require('hidden_act', ['quick_gelu', 'gelu']);
  const cfg: CLIPTextConfig = {
    vocabSize: r.size('vocab_size', 'vocabulary', DEFAULTS.vocabSize),
    hiddenSize: r.size('hidden_size', 'channels', DEFAULTS.hiddenSize),
    intermediateSize: r.size('intermediate_size', 'intermediate', DEFAULTS.intermediateSize),
    numHiddenLayers: r.size('num_hidden_layers', 'layers', DEFAULTS.numHiddenLayers),
    numAttentionHeads: r.size('num_attention_heads', 'heads', DEFAULTS.numAttentionHeads),
    maxPositionEmbeddings: r.size('max_position_embeddings', 'positions', DEFAULTS.maxPositionEmbeddings),
    hiddenAct: r.string('hidden_act', DEFAULTS.hiddenAct) as CLIPTextActivation,
    layerNormEps: r.positive('layer_norm_eps', DEFAULTS.layerNormEps),
    bosTokenId: r.int('bos_token_id', DEFAULTS.bosTokenId),
    eosTokenId: r.int('eos_token_id', DEFAULTS.eosTokenId),
    padTokenId: r.int('pad_token_id', DEFAULTS.padTokenId),
  };
  if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) {
    throw new Error(
      `${where}: config key 'num_attention_heads' (${cfg.numAttentionHeads}) must divide hidden_size ` +
        `(${cfg.hiddenSize})`,
    );
  }
  // special token ids the file gives must be ids of its vocabulary (left out, transformers' defaults stand)
  for (const key of ['bos_token_id', 'eos_token_id', 'pad_token_id']) {
    const id = raw[key];
    if (typeof id === 'number' && (id < 0 || id >= cfg.vocabSize)) {
      throw r.invalid(key, id, `must be a token id in [0, ${cfg.vocabSize}) (vocab_size)`);
    }
  }
  return cfg;
}
