// Methods read the text side only through TokenLookup: a hand-made lookup of one token per word (no CLIP, no
// BPE) drives Prompt-to-Prompt's token bookkeeping, LocalBlend and DAAM's word maps, with positions worked by hand:
//   "a red circle"        bos 0 · a 1 · red 2 · circle 3 · eos 4
//   "a big red circle"    bos 0 · a 1 · big 2 · red 3 · circle 4 · eos 5

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type {
  TokenLookup,
  TokenLookupOptions,
  UnpaddedOptions,
  WordTokens,
} from '../../../src/attention/index.js';
import { LocalBlend } from '../../../src/methods/application/local-blend.js';
import { GlobalHeatMap } from '../../../src/methods/map/heatmap.js';
import { equalizer, refinementMapper, replacementMapper } from '../../../src/methods/map/token-alignment.js';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { Tensor } from '../../../src/tensor/index.js';

/** One token per space-separated word, ids given in order of first sight; bos 0, eos 1. */
class WordLookup implements TokenLookup {
  readonly modelMaxLength = 8;
  readonly #ids = new Map<string, number>();

  #max(o?: TokenLookupOptions): number {
    return o?.maxLength ?? this.modelMaxLength;
  }

  wordTokens(prompt: string, o?: TokenLookupOptions): WordTokens[] {
    return prompt.split(' ').map((word, i) => ({ word, indices: i + 1 < this.#max(o) - 1 ? [i + 1] : [] }));
  }

  tokenIndices(prompt: string, word: string | number, o?: TokenLookupOptions): number[] {
    const words = this.wordTokens(prompt, o);
    const found = typeof word === 'number' ? [words[word]] : words.filter((w) => w.word === word);
    if (found.length === 0 || found[0] === undefined) throw new Error(`"${word}" is not in "${prompt}"`);
    return found.flatMap((w) => w!.indices);
  }

  keptTokenIndices(prompt: string, word: string | number, o?: TokenLookupOptions): number[] {
    const idx = this.tokenIndices(prompt, word, o);
    if (idx.length === 0) throw new Error(`"${word}" is cut off`);
    return idx;
  }

  call(prompt: string, o: UnpaddedOptions): { ids: number[][] } {
    const id = (w: string) => this.#ids.get(w) ?? this.#ids.set(w, this.#ids.size + 2).get(w)!;
    return {
      ids: [
        [
          0,
          ...prompt
            .split(' ')
            .slice(0, this.#max(o) - 2)
            .map(id),
          1,
        ],
      ],
    };
  }
}

const lookup = new WordLookup();

test('TokenLookup: CLIPTokenizer implements it (checked by the compiler) and is accepted where methods take one', () => {
  const tok: TokenLookup = new CLIPTokenizer({
    vocab: { '<|endoftext|>': 0, '<|startoftext|>': 1 },
    merges: [],
  });
  assert.equal(tok.modelMaxLength, 77);
});

test('Prompt-to-Prompt bookkeeping runs on a lookup that is not CLIP', () => {
  const swap = replacementMapper(lookup, 'a red circle', 'a green circle');
  for (let s = 0; s < 8; s++) for (let t = 0; t < 8; t++) assert.equal(swap[s * 8 + t], s === t ? 1 : 0);

  const { mapper, alphas } = refinementMapper(lookup, 'a red circle', 'a big red circle');
  assert.deepEqual([...mapper], [0, 1, -1, 2, 3, 4, 6, 7]);
  assert.deepEqual([...alphas], [1, 1, 0, 1, 1, 1, 1, 1]);

  assert.deepEqual([...equalizer(lookup, 'a big red circle', { red: 3 })], [1, 1, 1, 3, 1, 1, 1, 1]);
  assert.throws(() => equalizer(lookup, 'a red circle on a big square', { square: 2 }), /cut off/);
});

test('LocalBlend and DAAM word maps take their positions from the lookup', () => {
  const blend = new LocalBlend({
    tokenizer: lookup,
    prompts: ['a red circle', 'a big red circle'],
    words: ['red'],
  });
  assert.deepEqual(
    blend.alphaLayers.map((a) => [...a]),
    [
      [0, 0, 1, 0, 0, 0, 0, 0],
      [0, 0, 0, 1, 0, 0, 0, 0],
    ],
  );

  // token t's map is the constant t; the word "circle" is token 3
  const maps = new Tensor(
    Float32Array.from({ length: 8 * 4 }, (_, i) => Math.floor(i / 4)),
    [8, 2, 2],
  );
  const heat = new GlobalHeatMap(lookup, 'a red circle', maps);
  assert.deepEqual([...heat.wordHeatMap('circle').data], [3, 3, 3, 3]);
  assert.equal(heat.numTokens, 3);
  assert.deepEqual(
    heat.wordHeatMaps().map((w) => w.word),
    ['a', 'red', 'circle'],
  );
});
