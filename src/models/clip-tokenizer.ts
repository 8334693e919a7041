// CLIP's byte-level BPE tokenizer (Radford et al. 2021, "Learning Transferable Visual Models From Natural
// Language Supervision"), as openai/CLIP's SimpleTokenizer and transformers' CLIPTokenizer apply it, with
// the batching that diffusers' Stable Diffusion pipelines do: bos + first maxLength − 2 ids + eos, padded.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TokenLookup, WordTokens } from '../attention/tokens.js';
import { jsonPreview } from '../io/json-preview.js';
import { cleanText } from './clip-text-clean.js';
import { CONFIG_LIMITS, overLimit } from './config.js';
import { type FromPretrainedOptions, pretrainedFolder } from './pretrained.js';

export type { WordTokens };

// ---------------------------------------------------------------------------------------------------------
// Byte ↔ unicode table

/**
 * The reversible table from the 256 byte values to printable unicode characters that byte-level BPE works
 * on: bytes that are printable Latin-1 (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) stand for themselves; the other 68, in
 * increasing order, take U+0100, U+0101, … (so the space, byte 32, becomes `Ġ` = U+0120).
 * Returns the characters indexed by byte value.
 */
export function bytesToUnicode(): string[] {
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let next = 0x100;
  for (let b = 0; b < 256; b++) table.push(String.fromCodePoint(printable(b) ? b : next++));
  return table;
}

const BYTE_TO_CHAR = bytesToUnicode();
const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((ch, b) => [ch, b]));
const UTF8 = new TextEncoder();
const END_OF_WORD = '</w>';
const START_OF_TEXT = '<|startoftext|>';
const END_OF_TEXT = '<|endoftext|>';

// CLIP's pre-tokenisation: special tokens, English contractions, runs of letters, single digits, runs of
// anything else that is not whitespace.
const PRE_TOKEN_RE =
  /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\p{White_Space}\p{L}\p{N}]+/giu;

// ---------------------------------------------------------------------------------------------------------
// The tokenizer

/** What a CLIP tokenizer is built from: the vocabulary, BPE merges, context length and special tokens. */
export interface CLIPTokenizerInit {
  /** token → id, as `vocab.json` holds it. */
  vocab: Readonly<Record<string, number>>;
  /** BPE merges in priority order: `"a b"` strings (the lines of `merges.txt`) or `[a, b]` pairs. */
  merges: readonly string[] | readonly (readonly [string, string])[];
  /** Default 77 (CLIP's context length). */
  modelMaxLength?: number;
  /** Default `<|startoftext|>`. */
  bosToken?: string;
  /** Default `<|endoftext|>`. */
  eosToken?: string;
  /** Default the eos token (Stable Diffusion 1.x); Stable Diffusion 2.x uses `!`. */
  padToken?: string;
  /** Stands for a symbol missing from the vocabulary. Default `<|endoftext|>` when the vocabulary has it. */
  unkToken?: string;
}

/** Options of tokenizing: padding, truncation, the length, and where truncation warnings go. */
export interface TokenizeOptions {
  /** `'max_length'` (default): pad every sequence to maxLength; `'longest'`: to the batch's longest; false: none. */
  padding?: 'max_length' | 'longest' | false;
  /** Default true: keep bos, the first maxLength − 2 ids and eos. */
  truncation?: boolean;
  /** Default the tokenizer's modelMaxLength. */
  maxLength?: number;
  /** Called with a message when truncation drops tokens; default `console.warn`. */
  onWarning?: (message: string) => void;
}

/** Tokenized texts: ids with bos, eos and padding, the attention mask, and which texts were truncated. */
export interface TokenizerOutput {
  /** One id sequence per text: bos, the text's ids, eos, then pad ids. */
  ids: number[][];
  /** 1 for bos, text and eos positions, 0 for padding. */
  attentionMask: number[][];
  /** Whether truncation dropped ids of that text. */
  truncated: boolean[];
}

interface Piece {
  /** The pre-token's text (after clean-up). */
  text: string;
  /** Index of the whitespace-separated word it belongs to. */
  word: number;
  /** Offset of its first id in the text's ids (without bos). */
  start: number;
  ids: number[];
}

const DEFAULT_MAX_LENGTH = 77;
const CACHE_LIMIT = 50_000;

export class CLIPTokenizer implements TokenLookup {
  readonly modelMaxLength: number;
  readonly bosToken: string;
  readonly eosToken: string;
  readonly padToken: string;
  readonly unkToken: string | undefined;
  readonly bosTokenId: number;
  readonly eosTokenId: number;
  readonly padTokenId: number;
  readonly unkTokenId: number | undefined;

  private readonly encoder: Map<string, number>;
  private readonly decoder: Map<number, string>;
  private readonly ranks: Map<string, number>;
  private readonly cache = new Map<string, string[]>();

  constructor(init: CLIPTokenizerInit) {
    this.encoder = new Map();
    this.decoder = new Map();
    for (const [token, id] of Object.entries(init.vocab)) {
      if (!Number.isInteger(id) || id < 0) {
        throw new Error(`CLIPTokenizer: vocab entry "${token}" has id ${id}`);
      }
      this.encoder.set(token, id);
      this.decoder.set(id, token);
    }
    this.ranks = new Map();
    init.merges.forEach((merge, rank) => {
      const [a, b] = typeof merge === 'string' ? merge.split(' ') : merge;
      this.ranks.set(`${a} ${b}`, rank);
    });

    this.modelMaxLength = init.modelMaxLength ?? DEFAULT_MAX_LENGTH;
    if (!Number.isInteger(this.modelMaxLength) || this.modelMaxLength < 2) {
      throw new Error(`CLIPTokenizer: modelMaxLength must be an integer ≥ 2, got ${this.modelMaxLength}`);
    }
    this.bosToken = init.bosToken ?? START_OF_TEXT;
    this.eosToken = init.eosToken ?? END_OF_TEXT;
    this.padToken = init.padToken ?? this.eosToken;
    this.unkToken = init.unkToken ?? (this.encoder.has(END_OF_TEXT) ? END_OF_TEXT : undefined);
    this.bosTokenId = this.specialId('bos', this.bosToken);
    this.eosTokenId = this.specialId('eos', this.eosToken);
    this.padTokenId = this.specialId('pad', this.padToken);
    this.unkTokenId = this.unkToken === undefined ? undefined : this.specialId('unk', this.unkToken);
  }

  /**
   * `fromDirectorySync` with the signature of the models' `fromPretrained`: `dir` or `dir/subfolder` (a pipeline
   * folder's `tokenizer`). A tokenizer has no weights, so a `variant` is accepted and changes nothing.
   */
  static fromPretrained(dir: string, opts: FromPretrainedOptions = {}): CLIPTokenizer {
    return CLIPTokenizer.fromDirectorySync(pretrainedFolder(dir, opts));
  }

  /** Reads `vocab.json`, `merges.txt` and (if present) `tokenizer_config.json` / `special_tokens_map.json`. */
  static async fromDirectory(dir: string): Promise<CLIPTokenizer> {
    const read = async (name: string) => {
      try {
        return await readFile(join(dir, name), 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    };
    const [vocab, merges, config, specialMap] = await Promise.all(
      ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json'].map(read),
    );
    return fromFiles(dir, vocab, merges, config, specialMap);
  }

  /** Synchronous `fromDirectory`. */
  static fromDirectorySync(dir: string): CLIPTokenizer {
    const read = (name: string) => {
      const path = join(dir, name);
      return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
    };
    const files = ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json'].map(read);
    return fromFiles(dir, files[0], files[1], files[2], files[3]);
  }

  get vocabSize(): number {
    return this.encoder.size;
  }

  /** The id of a BPE token, if it is in the vocabulary. */
  tokenToId(token: string): number | undefined {
    return this.encoder.get(token);
  }

  /** The BPE token of an id, if it is in the vocabulary. */
  idToToken(id: number): string | undefined {
    return this.decoder.get(id);
  }

  /** The text's token ids: no bos/eos, no padding, no truncation. */
  encode(text: string): number[] {
    return this.pieces(text).pieces.flatMap((p) => p.ids);
  }

  /** The text that ids stand for; word ends become spaces. Special tokens are dropped if asked. */
  decode(ids: readonly number[], options: { skipSpecialTokens?: boolean } = {}): string {
    const specials = new Set([this.bosTokenId, this.eosTokenId, this.padTokenId]);
    const bytes: number[] = [];
    for (const id of ids) {
      const token = this.decoder.get(id);
      if (token === undefined) {
        throw new RangeError(`CLIPTokenizer.decode: id ${id} is not in the vocabulary`);
      }
      if (options.skipSpecialTokens && specials.has(id)) continue;
      for (const ch of token) {
        const b = CHAR_TO_BYTE.get(ch);
        if (b !== undefined) bytes.push(b);
        else bytes.push(...UTF8.encode(ch));
      }
    }
    return new TextDecoder('utf-8').decode(Uint8Array.from(bytes)).replaceAll(END_OF_WORD, ' ').trim();
  }

  /**
   * Batches texts as a Stable Diffusion pipeline feeds its text encoder: for each text, bos, its first
   * maxLength − 2 ids (with truncation), eos, then pad ids up to maxLength. Warns with the dropped text.
   */
  call(text: string | readonly string[], options: TokenizeOptions = {}): TokenizerOutput {
    const texts = typeof text === 'string' ? [text] : text;
    const { padding = 'max_length', truncation = true, onWarning = console.warn } = options;
    const maxLength = this.checkMaxLength(options.maxLength, 'call');

    const ids: number[][] = [];
    const truncated: boolean[] = [];
    for (const t of texts) {
      const raw = this.encode(t);
      const cut = truncation && raw.length > maxLength - 2;
      if (cut) {
        onWarning(
          'The following part of your input was truncated because CLIP can only handle sequences up to ' +
            `${maxLength} tokens: "${this.decode(raw.slice(maxLength - 2))}"`,
        );
      }
      ids.push([this.bosTokenId, ...(cut ? raw.slice(0, maxLength - 2) : raw), this.eosTokenId]);
      truncated.push(cut);
    }

    const target =
      padding === 'max_length'
        ? maxLength
        : padding === 'longest'
          ? Math.max(0, ...ids.map((s) => s.length))
          : 0;
    const attentionMask = ids.map((s) => {
      const mask = s.map(() => 1);
      while (s.length < target) {
        s.push(this.padTokenId);
        mask.push(0);
      }
      return mask;
    });
    return { ids, attentionMask, truncated };
  }

  /**
   * For each whitespace-separated word of the cleaned prompt, the positions of its tokens in the batched
   * sequence (bos at 0). Positions that truncation to maxLength drops are left out.
   */
  wordTokens(prompt: string, options: { maxLength?: number } = {}): WordTokens[] {
    const limit = this.checkMaxLength(options.maxLength, 'wordTokens') - 1;
    const { words, pieces } = this.pieces(prompt);
    const result: WordTokens[] = words.map((word) => ({ word, indices: [] }));
    for (const p of pieces) result[p.word]!.indices.push(...positions(p).filter((i) => i < limit));
    return result;
  }

  /**
   * Positions (bos at 0) of the tokens that make up `word` in the batched prompt — every occurrence, as
   * Prompt-to-Prompt's `get_word_inds` gives them. `word` is cleaned like the prompt and matches a run of
   * its pre-tokens, so "star" finds the star of "star," and "red circle" a two-word phrase; a number is
   * the index of a whitespace-separated word. Positions dropped by truncation are left out.
   */
  tokenIndices(prompt: string, word: string | number, options: { maxLength?: number } = {}): number[] {
    const limit = this.checkMaxLength(options.maxLength, 'tokenIndices') - 1;
    const { words, pieces } = this.pieces(prompt);
    let found: Piece[] = [];
    if (typeof word === 'number') {
      if (!Number.isInteger(word) || word < 0 || word >= words.length) {
        throw new RangeError(
          `CLIPTokenizer.tokenIndices: word index ${word} is out of range; the prompt has ${words.length} words`,
        );
      }
      found = pieces.filter((p) => p.word === word);
    } else {
      const query = this.pieces(word).pieces.map((p) => p.text);
      for (let i = 0; query.length > 0 && i + query.length <= pieces.length; i++) {
        if (query.every((q, k) => pieces[i + k]!.text === q)) {
          found.push(...pieces.slice(i, i + query.length));
        }
      }
      if (found.length === 0) {
        throw new Error(
          `CLIPTokenizer.tokenIndices: "${word}" is not a word of the prompt "${prompt}" ` +
            `(its words: ${words.map((w) => JSON.stringify(w)).join(', ')})`,
        );
      }
    }
    const indices = new Set(found.flatMap(positions));
    return [...indices].filter((i) => i < limit).sort((a, b) => a - b);
  }

  /**
   * `tokenIndices` for a word the model must see: one that the truncation cut off the prompt entirely (no
   * position within maxLength) is an error that says so, where `tokenIndices` gives no positions.
   */
  keptTokenIndices(prompt: string, word: string | number, options: { maxLength?: number } = {}): number[] {
    const idx = this.tokenIndices(prompt, word, options);
    if (idx.length === 0) {
      const name = typeof word === 'number' ? this.wordTokens(prompt)[word]!.word : word;
      throw new Error(
        `CLIPTokenizer: "${name}" lies past the first ${options.maxLength ?? this.modelMaxLength} tokens of the ` +
          'prompt, which the tokenizer cuts off; shorten the prompt',
      );
    }
    return idx;
  }

  // -------------------------------------------------------------------------------------------------------

  /** Cleans the text, splits it in words and pre-tokens, and runs BPE on each pre-token. */
  private pieces(text: string): { words: string[]; pieces: Piece[] } {
    const cleaned = cleanText(text);
    const words = cleaned === '' ? [] : cleaned.split(' ');
    const pieces: Piece[] = [];
    let start = 0;
    words.forEach((w, wordIndex) => {
      for (const match of w.matchAll(PRE_TOKEN_RE)) {
        const pre = match[0];
        let symbols = '';
        for (const b of UTF8.encode(pre)) symbols += BYTE_TO_CHAR[b];
        const ids = this.bpe(symbols).map((s) => this.symbolId(s));
        pieces.push({ text: pre, word: wordIndex, start, ids });
        start += ids.length;
      }
    });
    return { words, pieces };
  }

  /** Byte-pair encoding of one pre-token: merge the adjacent pair of lowest rank until none is ranked. */
  private bpe(token: string): string[] {
    if (token === START_OF_TEXT || token === END_OF_TEXT) return [token]; // typed in a prompt: stays whole
    const cached = this.cache.get(token);
    if (cached) return cached;
    const chars = Array.from(token);
    let word = [...chars.slice(0, -1), `${chars[chars.length - 1]}${END_OF_WORD}`];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Number.POSITIVE_INFINITY;
      for (let i = 0; i + 1 < word.length; i++) {
        const rank = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (rank !== undefined && rank < bestRank) {
          bestRank = rank;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!;
      const second = word[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (word[i] === first && word[i + 1] === second && i + 1 < word.length) {
          merged.push(first + second);
          i += 2;
        } else {
          merged.push(word[i]!);
          i += 1;
        }
      }
      word = merged;
    }
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(token, word);
    return word;
  }

  private symbolId(symbol: string): number {
    const id = this.encoder.get(symbol) ?? this.unkTokenId;
    if (id === undefined) {
      throw new Error(`CLIPTokenizer: symbol "${symbol}" is not in the vocabulary and there is no unk token`);
    }
    return id;
  }

  private specialId(role: string, token: string): number {
    const id = this.encoder.get(token);
    if (id === undefined) {
      throw new Error(`CLIPTokenizer: the ${role} token ${jsonPreview(token)} is not in the vocabulary`);
    }
    return id;
  }

  private checkMaxLength(maxLength: number | undefined, op: string): number {
    const n = maxLength ?? this.modelMaxLength;
    if (!Number.isInteger(n) || n < 2) {
      throw new RangeError(
        `CLIPTokenizer.${op}: maxLength must be an integer ≥ 2 (room for bos and eos), got ${n}`,
      );
    }
    return n;
  }
}

function positions(p: Piece): number[] {
  return p.ids.map((_, k) => 1 + p.start + k);
}

// ---------------------------------------------------------------------------------------------------------
// Loading a tokenizer folder

const FOLDER_NEEDS =
  'A CLIP tokenizer folder (the tokenizer/ folder of a diffusers model) needs vocab.json (token → id) and ' +
  'merges.txt (a "#version" line, then one BPE merge "a b" per line); tokenizer_config.json is optional.';

function fromFiles(
  dir: string,
  vocabText: string | undefined,
  mergesText: string | undefined,
  configText: string | undefined,
  specialMapText: string | undefined,
): CLIPTokenizer {
  const where = 'CLIPTokenizer.fromDirectory';
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(`${where}: ${dir} is not a folder. ${FOLDER_NEEDS}`);
  }
  for (const [name, text] of [
    ['vocab.json', vocabText],
    ['merges.txt', mergesText],
  ] as const) {
    if (text === undefined) {
      const hint = existsSync(join(dir, 'tokenizer', name)) ? ` Did you mean ${join(dir, 'tokenizer')}?` : '';
      throw new Error(`${where}: ${join(dir, name)} is missing. ${FOLDER_NEEDS}${hint}`);
    }
  }

  const vocab = parseJson(join(dir, 'vocab.json'), vocabText!);
  for (const [token, id] of Object.entries(vocab)) {
    if (typeof id !== 'number' || !Number.isInteger(id)) {
      throw new Error(
        `${where}: ${join(dir, 'vocab.json')}: entry ${jsonPreview(token)} is not an integer id`,
      );
    }
    if (id < 0 || id >= CONFIG_LIMITS.vocabulary) {
      throw new Error(
        `${where}: ${join(dir, 'vocab.json')}: entry ${jsonPreview(token)} = ${id} is not an id in ` +
          `[0, ${CONFIG_LIMITS.vocabulary}) (CONFIG_LIMITS.vocabulary): the file is corrupt`,
      );
    }
  }

  const lines = mergesText!.split(/\r?\n/);
  const merges: [string, string][] = [];
  lines.forEach((line, i) => {
    if (line === '' || (i === 0 && line.startsWith('#version'))) return;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
      throw new Error(
        `${where}: ${join(dir, 'merges.txt')} line ${i + 1} is ${jsonPreview(line)}; expected two symbols "a b"`,
      );
    }
    merges.push([parts[0]!, parts[1]!]);
  });

  // special_tokens_map.json overrides tokenizer_config.json, as in transformers.
  const config = {
    ...(configText === undefined ? {} : parseJson(join(dir, 'tokenizer_config.json'), configText)),
    ...(specialMapText === undefined ? {} : parseJson(join(dir, 'special_tokens_map.json'), specialMapText)),
  };
  return new CLIPTokenizer({
    vocab: vocab as Record<string, number>,
    merges,
    modelMaxLength: modelMaxLength(
      config['model_max_length'],
      `${where}: ${join(dir, 'tokenizer_config.json')}`,
    ),
    bosToken: tokenContent(config['bos_token']),
    eosToken: tokenContent(config['eos_token']),
    padToken: tokenContent(config['pad_token']),
    unkToken: tokenContent(config['unk_token']),
  });
}

/**
 * tokenizer_config.json's model_max_length: absent, or transformers' "unknown" (a huge number, 1e30) → the
 * default; otherwise an integer in [2, CONFIG_LIMITS.positions] (prompts are padded to it).
 */
function modelMaxLength(v: unknown, where: string): number | undefined {
  if (v === undefined || v === null || (typeof v === 'number' && v >= 1e29)) return undefined;
  const key = `${where}: config key 'model_max_length' = ${jsonPreview(v)}`;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 2)
    throw new Error(`${key} must be an integer ≥ 2`);
  if (v > CONFIG_LIMITS.positions)
    throw new Error(overLimit(where, "config key 'model_max_length'", v, 'positions'));
  return v;
}

function parseJson(path: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`CLIPTokenizer.fromDirectory: ${path} is not valid JSON (${(err as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`CLIPTokenizer.fromDirectory: ${path} must hold a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** A special token as transformers saves it: a string or an AddedToken object `{ content, … }`. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { content?: unknown }).content === 'string'
  ) {
    return (value as { content: string }).content;
  }
  return undefined;
}
