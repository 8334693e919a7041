// Methods compose: token merging + a fast attention function + Prompt-to-Prompt + a map store in one
// guided generation of the tiny golden pipeline; two attention functions on one layer are refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flashAttention } from '../../../src/attention/index.js';
import { AttentionCaching } from '../../../src/methods/application/attention-caching.js';
import { TokenMerging } from '../../../src/methods/application/token-merging.js';
import { chunkedAttention, useAttention } from '../../../src/methods/function/index.js';
import { AttentionReplace } from '../../../src/methods/map/attention-replace.js';
import { AttentionStore } from '../../../src/methods/map/attention-store.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { goldenDir } from '../../helpers/fixtures.js';

const sd = StableDiffusion.fromPretrained(goldenDir());
const prompts = ['a red circle', 'a blue circle'];

test('ToMe + flash + Prompt-to-Prompt + an attention store run together', () => {
  const edit = new AttentionReplace({
    tokenizer: sd.tokenizer,
    prompts,
    crossReplaceSteps: 0.8,
    selfReplaceSteps: 0,
  });
  const store = new AttentionStore({ kinds: ['cross'] });
  const tome = new TokenMerging({ ratio: 0.5, maxDownsample: 2 }); // the tiny UNet's attention is at 8×8 of 16×16
  const flash = useAttention(flashAttention, { appliesTo: (c) => c.kind === 'self' });
  const merged = new Set<number>();
  const spy = { name: 'spy', appliesTo: (c: { kind: string }) => c.kind === 'self', fn: () => undefined };
  const { latents } = sd.generate({
    prompt: prompts,
    steps: 3,
    seed: 1,
    controllers: [
      tome,
      flash,
      edit,
      store,
      {
        ...spy,
        output: (c, o) => {
          merged.add(c.queryTokens);
          return o;
        },
      },
    ],
  });
  assert.ok(latents.data.every(Number.isFinite));
  assert.deepEqual([...merged], [32], 'self-attention ran on merged tokens');
  assert.ok(store.maps().length > 0, 'the store recorded cross-attention maps');
  // caching composes too, on the layers whose maps nobody reads (flash goes in through its `fn` option)
  const cache = new AttentionCaching({
    fn: flashAttention,
    plan: (c) => (c.step > 0 ? 'output_share' : undefined),
    appliesTo: (c) => c.kind === 'self',
  });
  const cached = sd.generate({ prompt: prompts, steps: 3, seed: 1, controllers: [tome, cache, edit] });
  assert.ok(cached.latents.data.every(Number.isFinite));
});

test('two attention functions on one layer, or a fast one where maps are read, are refused clearly', () => {
  const run = (controllers: Parameters<typeof sd.generate>[0]['controllers']) =>
    sd.generate({ prompt: 'a red circle', steps: 1, controllers });
  assert.throws(
    () => run([useAttention(chunkedAttention()), useAttention(flashAttention)]),
    /two attention functions requested, 'chunked' by useAttention\(chunked\) and 'flash' by useAttention\(flash\); restrict one of them with appliesTo\(\)/,
  );
  assert.throws(
    () => run([new AttentionStore(), new AttentionCaching()]),
    /AttentionStore reads attention probabilities but AttentionCaching computes attention with 'cached'/,
  );
  // restricted to different layers they compose
  run([
    useAttention(chunkedAttention(), { appliesTo: (c) => c.kind === 'cross' }),
    useAttention(flashAttention, { appliesTo: (c) => c.kind === 'self' }),
  ]);
});
