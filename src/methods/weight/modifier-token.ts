// Custom Diffusion's modifier token V* (Kumari et al. 2023, Sec. 3.2): the new concept's word is a token
// whose embedding is learned with the K/V projections ("a photo of a V* dog"). diffusers adds it to the
// tokenizer as `<new1>` and saves its embedding as `{ "<new1>": (dim,) }`; attnkit's tokenizer takes no added
// tokens, so the embedding is bound to a word the vocabulary already holds as one token (the paper starts
// V* from a rare one): that word's row of the text encoder's token-embedding table is replaced, reversibly,
// and the prompt says the word.

import { readSafetensors, writeSafetensors } from '../../io/safetensors.js';
import { type Module, Parameter } from '../../nn/index.js';
import { formatShape, Tensor } from '../../tensor/index.js';

/** What the binding needs of a tokenizer: a word's ids, without start or end tokens. */
export interface WordEncoder {
  /** The word's token ids, without start or end tokens. */
  encode(text: string): number[];
}

/** A bound modifier token: the word it uses, its id, and how to put the old embedding back. */
export interface BoundToken {
  readonly word: string;
  readonly id: number;
  /** Puts the word's original embedding back in the text encoder's table. */
  unbind(): void;
}

const TABLE = 'text_model.embeddings.token_embedding';

/** The text encoder's token-embedding table (`text_model.embeddings.token_embedding.weight`). */
function tokenTable(textEncoder: Module): Parameter {
  for (const [path, m] of textEncoder.namedModules()) {
    const w = (m as unknown as { weight?: unknown }).weight;
    if (path === TABLE && w instanceof Parameter) return w;
  }
  throw new Error(`modifier token: the text encoder has no ${TABLE}.weight`);
}

/** The id of `word` if the tokenizer makes it exactly one token; else an error saying to pick another. */
export function singleTokenId(tokenizer: WordEncoder, word: string): number {
  const ids = tokenizer.encode(word);
  if (ids.length !== 1) {
    throw new Error(
      `modifier token: '${word}' is ${ids.length} tokens for this tokenizer; bind the embedding to a word ` +
        'that is one token (a rare one, as Custom Diffusion starts V*)',
    );
  }
  return ids[0] as number;
}

/**
 * Replaces the embedding of `word` (one token of `tokenizer`) in the text encoder with `embedding` (dim,);
 * `unbind()` puts the original table back (the same tensor).
 */
export function bindModifierToken(
  textEncoder: Module,
  tokenizer: WordEncoder,
  word: string,
  embedding: Tensor,
): BoundToken {
  const table = tokenTable(textEncoder);
  const [vocab, dim] = table.shape as [number, number];
  if (embedding.rank !== 1 || embedding.shape[0] !== dim) {
    throw new Error(
      `modifier token: embedding of shape ${formatShape(embedding.shape)} for '${word}', the text encoder's ` +
        `tokens have ${dim} features`,
    );
  }
  const id = singleTokenId(tokenizer, word);
  if (id < 0 || id >= vocab)
    throw new Error(`modifier token: id ${id} of '${word}' is outside the table (${vocab})`);
  const before = table.value;
  const rows = new Float32Array(before.data as Float32Array);
  rows.set(embedding.data as Float32Array, id * dim);
  const after = new Tensor(rows, before.shape);
  table.value = after;
  return {
    word,
    id,
    unbind() {
      if (table.value === after) table.value = before;
    },
  };
}

/** Reads modifier-token embeddings in diffusers' layout (`{ "<new1>": (dim,) }`, safetensors). */
export function readModifierTokens(path: string): Map<string, Tensor> {
  if (!path.endsWith('.safetensors')) {
    throw new Error(
      `${path}: attnkit reads modifier-token embeddings as .safetensors only (pickled files can run code)`,
    );
  }
  const { tensors } = readSafetensors(path);
  for (const [k, t] of tensors) {
    if (t.rank !== 1 || t.dtype !== 'float32') {
      throw new Error(
        `${path}: token '${k}' has a ${t.dtype} ${formatShape(t.shape)} tensor, expected one embedding (dim,)`,
      );
    }
  }
  return tensors;
}

/** Writes modifier-token embeddings in diffusers' layout. */
export function writeModifierTokens(path: string, tokens: ReadonlyMap<string, Tensor>): void {
  writeSafetensors(path, new Map([...tokens].map(([k, t]) => [k, t.detach()])), {
    metadata: { format: 'pt' },
  });
}
