// A byte-level BPE vocabulary (Sennrich et al. 2016) learned from captions, written in CLIP's layout so that
// src/models/clip-tokenizer.ts reads it like openai/clip-vit-large-patch14's tokenizer folder:
//
//   ids 0–255     the 256 byte symbols in CLIP's order (printable bytes, then the others)
//   ids 256–511   the same symbols with '</w>' (end of word)
//   ids 512–…     one token per merge, in merge order
//   last two      <|startoftext|>, <|endoftext|>
//
// Merges are learned from caption words (each word's last symbol carries '</w>'), always merging the most
// frequent adjacent pair (ties: the pair seen first in sorted order), until every word is one token.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bytesToUnicode, CLIPTokenizer } from '../index.js';

const END_OF_WORD = '</w>';
/** CLIP's start-of-text token, first in every tokenized prompt. */
export const START_OF_TEXT = '<|startoftext|>';
/** CLIP's end-of-text token, last in every tokenized prompt (and its padding). */
export const END_OF_TEXT = '<|endoftext|>';

/** A learned byte-pair-encoding vocabulary (Sennrich et al. 2016) in CLIP's format: token ids and merges. */
export interface BPEVocabulary {
  vocab: Record<string, number>;
  /** "a b" merges in priority order (the lines of merges.txt after '#version'). */
  merges: string[];
}

/** The 256 byte symbols in CLIP's order: bytes that stand for themselves first, then the remapped ones. */
function byteSymbols(): string[] {
  const table = bytesToUnicode();
  const printable = table.filter((ch, b) => ch.codePointAt(0) === b);
  const remapped = table.filter((ch, b) => ch.codePointAt(0) !== b);
  return [...printable, ...remapped];
}

function symbolsOf(word: string): string[] {
  const table = bytesToUnicode();
  const chars = Array.from(new TextEncoder().encode(word), (b) => table[b] as string);
  chars[chars.length - 1] += END_OF_WORD;
  return chars;
}

/** Learns merges from the words of `captions` (lower-cased, split on spaces). */
export function learnBPE(captions: Iterable<string>): BPEVocabulary {
  const counts = new Map<string, number>();
  for (const c of captions) {
    for (const w of c.toLowerCase().split(/\s+/)) if (w) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  const words = [...counts.keys()].sort().map((w) => ({ symbols: symbolsOf(w), n: counts.get(w) as number }));
  const merges: string[] = [];
  for (;;) {
    const pairs = new Map<string, number>();
    for (const { symbols, n } of words) {
      for (let i = 0; i + 1 < symbols.length; i++) {
        const key = `${symbols[i]} ${symbols[i + 1]}`;
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    }
    if (pairs.size === 0) break;
    let best = '';
    let bestN = -1;
    for (const [k, n] of [...pairs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      if (n > bestN) [best, bestN] = [k, n];
    }
    merges.push(best);
    const [a, b] = best.split(' ') as [string, string];
    for (const w of words) {
      const out: string[] = [];
      for (let i = 0; i < w.symbols.length; i++) {
        if (w.symbols[i] === a && w.symbols[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(w.symbols[i] as string);
      }
      w.symbols = out;
    }
  }
  const bytes = byteSymbols();
  const tokens = [...bytes, ...bytes.map((s) => s + END_OF_WORD), ...merges.map((m) => m.replace(' ', ''))];
  tokens.push(START_OF_TEXT, END_OF_TEXT);
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => {
    vocab[t] = i;
  });
  return { vocab, merges };
}

/** The tokenizer of a learned vocabulary, padding to `modelMaxLength` with <|endoftext|>. */
export function tokenizerOf(bpe: BPEVocabulary, modelMaxLength: number): CLIPTokenizer {
  return new CLIPTokenizer({ vocab: bpe.vocab, merges: bpe.merges, modelMaxLength });
}

/** Writes vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json into `dir`. */
export function writeTokenizer(dir: string, bpe: BPEVocabulary, modelMaxLength: number): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'vocab.json'), JSON.stringify(bpe.vocab));
  writeFileSync(join(dir, 'merges.txt'), `#version: 0.2\n${bpe.merges.join('\n')}\n`);
  const special = {
    bos_token: START_OF_TEXT,
    eos_token: END_OF_TEXT,
    unk_token: END_OF_TEXT,
    pad_token: END_OF_TEXT,
  };
  writeFileSync(
    join(dir, 'tokenizer_config.json'),
    `${JSON.stringify({ tokenizer_class: 'CLIPTokenizer', model_max_length: modelMaxLength, do_lower_case: true, ...special }, null, 2)}\n`,
  );
  writeFileSync(join(dir, 'special_tokens_map.json'), `${JSON.stringify(special, null, 2)}\n`);
}
