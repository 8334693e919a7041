// Function-level methods: how attention is computed. The ones that need no layer context can be picked by
// name from `builtInAttentionFunctions()`; window and agent attention are made per call (they read its grid).

import { AttentionFunctions, flashAttention, softmaxAttention } from '../../attention/functions.js';
import { chunkedAttention } from './chunked-attention.js';
import { linearAttention } from './linear-attention.js';
import { slicedAttention } from './sliced-attention.js';

export * from './agent-attention.js';
export * from './chunked-attention.js';
export * from './linear-attention.js';
export * from './sliced-attention.js';
export * from './use-attention.js';
export * from './window-attention.js';

/**
 * The attention functions that need no layer context, by name: the core's (softmax, flash), chunked,
 * sliced, linear-elu and linear-relu, each with its default options. A new registry on every call.
 */
export function builtInAttentionFunctions(): AttentionFunctions {
  return new AttentionFunctions([
    softmaxAttention,
    flashAttention,
    chunkedAttention(),
    slicedAttention(),
    linearAttention({ featureMap: 'elu' }),
    linearAttention({ featureMap: 'relu' }),
  ]);
}
