// Reading diffusers / transformers config.json files: typed access with errors that name the key.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonPreview } from '../io/json-preview.js';

/** A parsed `config.json` (diffusers or transformers), before it is read into a typed config. */
export type JsonConfig = Record<string, unknown>;

/**
 * Upper bounds on the sizes and counts a config may give, checked before anything is allocated (issue 25).
 * Each is several times what the largest real model of its kind uses, so only a corrupt or hostile file meets
 * one: SD 1.x/2.x/SDXL UNets (channels ≤ 1280, 2–3 layers per block, ≤ 10 transformer layers, 64–128 latents),
 * their VAEs (≤ 512 channels, 1024-pixel samples), CLIP ViT-L/bigG and T5-XXL text encoders (hidden ≤ 4096,
 * ≤ 48 layers, feed-forward ≤ 10240, vocabularies ≤ 250k), Stable Diffusion's 1000 training timesteps.
 */
export const CONFIG_LIMITS = {
  /** Channels of any feature map or hidden state (block_out_channels, hidden_size, cross_attention_dim…). */
  channels: 16_384,
  /** Width of a feed-forward layer (intermediate_size). */
  intermediate: 65_536,
  /** Layers in one block or stack (layers_per_block, transformer_layers_per_block, num_hidden_layers). */
  layers: 256,
  /** Down (and up) blocks of a UNet or VAE. */
  blocks: 16,
  /** Attention heads of one layer. */
  heads: 1024,
  /** A UNet's sample_size, in latent pixels. */
  latentSampleSize: 1024,
  /** A VAE's sample_size, in image pixels. */
  imageSampleSize: 8192,
  /** A convolution's kernel side. */
  kernel: 15,
  /** Tokens in a vocabulary (vocab_size, vocab.json). */
  vocabulary: 1_048_576,
  /** Positions of a text encoder (max_position_embeddings) and a tokenizer's model_max_length. */
  positions: 16_384,
  /** A scheduler's num_train_timesteps. */
  trainTimesteps: 100_000,
} as const;

/** Deepest nesting of arrays and objects a config file may have (diffusers' configs nest 2 levels). */
export const MAX_CONFIG_DEPTH = 32;

/** The nesting depth of JSON text, counted outside strings, stopping once past `limit`; linear, no recursion. */
function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length && max <= limit; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b)
      max = Math.max(max, ++depth); // [ {
    else if (c === 0x5d || c === 0x7d) depth--; // ] }
  }
  return max;
}

/** Refuses config text nested deeper than MAX_CONFIG_DEPTH before it is parsed (parsers recurse). */
export function checkConfigDepth(text: string, path: string): void {
  if (jsonDepth(text, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH) {
    throw new Error(
      `${path}: JSON nested more than ${MAX_CONFIG_DEPTH} levels deep; a config file is a flat object of ` +
        'settings, so this one is corrupt or not a config',
    );
  }
}

/** The message for a size over its limit: the value, the limit and what to do. */
export function overLimit(
  where: string,
  key: string,
  value: number,
  limit: keyof typeof CONFIG_LIMITS,
): string {
  return (
    `${where}: ${key} = ${value} is over attnkit's limit of ${CONFIG_LIMITS[limit]} (CONFIG_LIMITS.${limit}), ` +
    "far above any real model, so the file is corrupt or not this model's config: fix the value"
  );
}

/** Reads `dir/file` as a JSON object, with errors that name the file. */
export function readConfig(dir: string, file = 'config.json'): JsonConfig {
  const path = join(dir, file);
  if (!existsSync(path)) throw new Error(`missing ${path}: a diffusers model folder needs ${file} in ${dir}`);
  const text = readFileSync(path, 'utf8');
  checkConfigDepth(text, path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${path}: expected a JSON object`);
  }
  return parsed as JsonConfig;
}

/** Typed reads of one config, each error naming the file and the key. */
export class ConfigReader {
  constructor(
    readonly cfg: JsonConfig,
    readonly where: string,
  ) {}

  has(key: string): boolean {
    return this.cfg[key] !== undefined && this.cfg[key] !== null;
  }

  number(key: string, fallback?: number): number {
    const v = this.cfg[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.bad(key, 'a number');
    return v;
  }

  int(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v)) throw this.bad(key, 'an integer');
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.cfg[key] ?? fallback;
    if (typeof v !== 'boolean') throw this.bad(key, 'true or false');
    return v;
  }

  string(key: string, fallback?: string): string {
    const v = this.cfg[key] ?? fallback;
    if (typeof v !== 'string') throw this.bad(key, 'a string');
    return v;
  }

  strings(key: string): string[] {
    const v = this.cfg[key];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw this.bad(key, 'a list of strings');
    return v as string[];
  }

  ints(key: string): number[] {
    const v = this.cfg[key];
    if (!Array.isArray(v) || v.some((x) => !Number.isInteger(x))) throw this.bad(key, 'a list of integers');
    return v as number[];
  }

  /** A value that may be one number or one per block; returns one per block. */
  perBlock(key: string, n: number, fallback?: number): number[] {
    const v = this.cfg[key] ?? fallback;
    if (typeof v === 'number' && Number.isInteger(v)) return new Array<number>(n).fill(v);
    if (Array.isArray(v) && v.length === n && v.every((x) => Number.isInteger(x))) return v as number[];
    throw this.bad(key, `an integer or a list of ${n} integers`);
  }

  /** An integer in [1, CONFIG_LIMITS[limit]]: a size or count, checked before anything is allocated. */
  size(key: string, limit: keyof typeof CONFIG_LIMITS, fallback?: number): number {
    return this.checkSize(key, this.int(key, fallback), limit);
  }

  /** A list of sizes (e.g. channels per block), each in [1, CONFIG_LIMITS[limit]]. */
  sizes(key: string, limit: keyof typeof CONFIG_LIMITS): number[] {
    return this.ints(key).map((v) => this.checkSize(key, v, limit));
  }

  /** perBlock, each value a size in [1, CONFIG_LIMITS[limit]]. */
  perBlockSize(key: string, n: number, limit: keyof typeof CONFIG_LIMITS, fallback?: number): number[] {
    return this.perBlock(key, n, fallback).map((v) => this.checkSize(key, v, limit));
  }

  /** A finite number > 0 (a scale, an epsilon). */
  positive(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (v <= 0) throw this.invalid(key, v, 'must be a number > 0');
    return v;
  }

  /** An error for `key` whose value `v` (or one of its entries) breaks a rule: "… 'key' = v <rule>". */
  invalid(key: string, v: unknown, rule: string): Error {
    return new Error(`${this.where}: config key '${key}' = ${jsonPreview(v)} ${rule}`);
  }

  private checkSize(key: string, v: number, limit: keyof typeof CONFIG_LIMITS): number {
    if (v < 1) throw this.invalid(key, v, 'must be an integer ≥ 1');
    if (v > CONFIG_LIMITS[limit]) throw new Error(overLimit(this.where, `config key '${key}'`, v, limit));
    return v;
  }

  perBlockBool(key: string, n: number, fallback: boolean): boolean[] {
    const v = this.cfg[key] ?? fallback;
    if (typeof v === 'boolean') return new Array<boolean>(n).fill(v);
    if (Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'boolean')) return v as boolean[];
    throw this.bad(key, `true/false or a list of ${n} of them`);
  }

  /** The key must be absent or have one of the supported values (compared with JSON equality). */
  require(key: string, supported: readonly unknown[]): void {
    const v = this.cfg[key];
    if (v === undefined) return;
    if (!supported.some((s) => sameJson(s, v))) {
      throw new Error(
        `${this.where}: config key '${key}' = ${jsonPreview(v)} is not supported by attnkit ` +
          `(supported: ${supported.map((s) => jsonPreview(s)).join(', ')})`,
      );
    }
  }

  private bad(key: string, what: string): Error {
    return new Error(`${this.where}: config key '${key}' must be ${what}, got ${jsonPreview(this.cfg[key])}`);
  }
}

/** JSON equality of a (small) supported value and a config value, walking no deeper than the former. */
function sameJson(expected: unknown, v: unknown): boolean {
  if (Array.isArray(expected)) {
    return Array.isArray(v) && v.length === expected.length && expected.every((x, i) => sameJson(x, v[i]));
  }
  if (typeof expected === 'object' && expected !== null) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
    const keys = Object.keys(expected);
    return (
      keys.length === Object.keys(v).length &&
      keys.every((k) => Object.hasOwn(v, k) && sameJson((expected as JsonConfig)[k], (v as JsonConfig)[k]))
    );
  }
  return expected === v;
}
