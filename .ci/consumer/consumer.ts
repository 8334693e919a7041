// A project that depends on attnkit, as the README's "Use as a library" section sets it up: the built-in model
// from the API, a few steps of text-to-image, and the cross-attention maps recorded by an attention store.
// .ci/consumer/run.sh type-checks this file against the installed package's .d.ts and runs it.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AttentionStore, BUILTIN_MODEL, StableDiffusion, writePng } from 'attnkit';

const sd = StableDiffusion.fromPretrained();
if (!existsSync(join(BUILTIN_MODEL, 'model_index.json')))
  throw new Error(`no built-in model at ${BUILTIN_MODEL}`);

const store = new AttentionStore({ kinds: ['cross'] });
const { images } = sd.generate({
  prompt: 'a red circle above a blue square',
  steps: 4,
  seed: 0,
  controllers: [store],
});
writePng('consumer.png', images);

const maps = store.maps();
if (maps.length === 0) throw new Error('the attention store recorded no cross-attention map');
for (const m of maps) {
  const [, , tq, tk] = m.map.shape;
  if (
    m.kind !== 'cross' ||
    m.steps !== 4 ||
    tq !== m.size[0] * m.size[1] ||
    tk !== sd.tokenizer.modelMaxLength
  ) {
    throw new Error(`unexpected map ${m.path}: ${m.kind}, ${m.steps} steps, shape ${m.map.shape.join('×')}`);
  }
}
console.log(
  `consumer: wrote consumer.png ${images.shape.join('×')}; ${maps.length} cross-attention maps recorded`,
);
