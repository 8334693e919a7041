// Plug-and-Play on the tiny-sd-a pipeline: a spy placed after PnP sees the target's Q and K equal to the
// source's (and V its own) exactly in the chosen layers and steps, and the chosen ResNet block's residual
// branch equal to the source's during the first pnpFT of the steps; the source is never changed; paths the
// model does not have are refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Controller } from '../../../src/attention/index.js';
import { PlugAndPlay } from '../../../src/methods/feature/plug-and-play.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { concat, type Tensor } from '../../../src/tensor/index.js';
import { randn } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

const sd = StableDiffusion.fromPretrained(goldenDir());
const z = randn([1, 4, 16, 16], 21);
const latents = concat([z, randn([1, 4, 16, 16], 22)], 0);
const prompts = ['a red circle', 'a blue square'];
const steps = 4;
const attnLayers = [1, 2].map((j) => `up_blocks.0.attentions.${j}.transformer_blocks.0.attn1`);
const convLayers = ['up_blocks.1.resnets.1'];

/** Row r equals row s bit for bit. */
function sameRows(x: Tensor, r: number, s: number): boolean {
  const a = x.slice(0, r, r + 1).data;
  const b = x.slice(0, s, s + 1).data;
  return a.every((v, i) => Object.is(v, b[i]));
}

test('injected Q/K (and ResNet features) equal the source’s in the chosen layers and steps only', () => {
  const qk: string[] = [];
  const conv: string[] = [];
  // guided batch of 2 prompts: rows 0 (uncond source), 1 (uncond target), 2 (cond source), 3 (cond target)
  const spy: Controller = {
    name: 'spy',
    appliesTo: (c) => c.kind === 'self',
    features: (c, f) => {
      const injected = [f.q, f.k].every((x) => sameRows(x, 1, 0) && sameRows(x, 3, 2));
      assert.ok(!sameRows(f.v, 3, 2), `V was injected at ${c.path}`);
      if (injected) qk.push(`${c.step} ${c.path}`);
      return f;
    },
    resnet: (c, h) => {
      if (sameRows(h, 1, 0) && sameRows(h, 3, 2)) conv.push(`${c.step} ${c.path}`);
      return h;
    },
  };
  const pnp = new PlugAndPlay({ pnpAttnT: 0.5, pnpFT: 0.75, attnLayers, convLayers });
  const { latents: out } = sd.generate({
    prompt: prompts,
    latents,
    steps,
    guidanceScale: 7.5,
    scheduler: 'ddim',
    controllers: [pnp, spy],
  });
  // ⌊4 · 0.5⌋ = 2 steps of Q/K injection, ⌊4 · 0.75⌋ = 3 steps of feature injection
  assert.deepEqual(
    qk,
    [0, 1].flatMap((s) => attnLayers.map((p) => `${s} ${p}`)),
  );
  assert.deepEqual(
    conv,
    [0, 1, 2].map((s) => `${s} ${convLayers[0]}`),
  );
  // the source row is the source generated alone
  const alone = sd.generate({ prompt: prompts[0], latents: z, steps, guidanceScale: 7.5, scheduler: 'ddim' });
  assertClose(out.slice(0, 0, 1), alone.latents, { atol: 1e-5, rtol: 0 });
});

test('PnP refuses layers the model does not have, naming the ones it has', () => {
  const run = (pnp: PlugAndPlay) =>
    sd.generate({ prompt: prompts, latents, steps: 1, scheduler: 'ddim', controllers: [pnp] });
  assert.throws(
    () => run(new PlugAndPlay()),
    /no self-attention layer up_blocks\.1\.attentions\.1\.transformer_blocks\.0\.attn1.*its self-attention layers are down_blocks\.1/,
  );
  assert.throws(
    () => run(new PlugAndPlay({ attnLayers, convLayers: ['up_blocks.3.resnets.1'] })),
    /no ResNet block up_blocks\.3\.resnets\.1; its ResNet blocks are down_blocks\.0\.resnets\.0/,
  );
  assert.throws(() => new PlugAndPlay({ pnpFT: 1.5 }), /pnpFT must be a fraction in \[0, 1\], got 1\.5/);
  // nothing to inject would be a plain regeneration under PnP's name
  assert.throws(
    () => new PlugAndPlay({ attnLayers: [], convLayers: [] }),
    /no attention layer and no ResNet layer/,
  );
});
