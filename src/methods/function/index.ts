// Function-level methods: how attention is computed. The ones that need no layer context are registered by
// name (`attentionFunction('chunked')`); window and agent attention are made per call (they read its grid).

import { registerAttentionFunction } from '../../attention/functions.js';
import { chunkedAttention } from './chunked-attention.js';
import { linearAttention } from './linear-attention.js';
import { slicedAttention } from './sliced-attention.js';

export * from './agent-attention.js';
export * from './chunked-attention.js';
export * from './linear-attention.js';
export * from './sliced-attention.js';
export * from './use-attention.js';
export * from './window-attention.js';

for (const fn of [
  chunkedAttention(),
  slicedAttention(),
  linearAttention({ featureMap: 'elu' }),
  linearAttention({ featureMap: 'relu' }),
]) {
  registerAttentionFunction(fn);
}
