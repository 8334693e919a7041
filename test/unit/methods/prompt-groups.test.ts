// groupControllers: independent edits in one batch give what each gives alone (P2P replace, LocalBlend's
// step callback, MasaCtrl's features, PnP's ResNet hook), a shared source row included; whole-layer hooks refused.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Controller } from '../../../src/attention/hooks.js';
import { BlockCaching } from '../../../src/methods/application/block-caching.js';
import { LocalBlend } from '../../../src/methods/application/local-blend.js';
import { groupControllers } from '../../../src/methods/application/prompt-groups.js';
import { MutualSelfAttention } from '../../../src/methods/feature/mutual-self-attention.js';
import { PlugAndPlay } from '../../../src/methods/feature/plug-and-play.js';
import { AttentionReplace } from '../../../src/methods/map/attention-replace.js';
import { defaultPnPLayers, defaultStartLayer } from '../../../src/pipelines/feature-edit.js';
import { initialNoise, StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { concat, type Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';

const sd = StableDiffusion.fromPretrained(goldenDir());
const steps = 3;

function run(prompts: string[], latents: Tensor[], controllers: Controller[]): Tensor {
  return sd.generate({
    prompt: prompts,
    latents: concat(latents, 0),
    steps,
    guidanceScale: 5,
    scheduler: 'ddim',
    controllers,
  }).images;
}

function assertClose(a: Tensor, b: Tensor, what: string): void {
  const x = a.data as Float32Array;
  const y = b.data as Float32Array;
  assert.equal(x.length, y.length);
  const diff = x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
  assert.ok(diff < 2e-4, `${what}: max difference ${diff}`);
}

const rows = (x: Tensor, a: number, b: number) => x.slice(0, a, b);
const edit = (prompts: string[]) => ({
  tokenizer: sd.tokenizer,
  prompts,
  crossReplaceSteps: 0.8,
  selfReplaceSteps: 0.4,
});

test('groupControllers: two P2P pairs (one with LocalBlend) in one batch equal each pair alone', () => {
  const [z0, z1] = [initialNoise(sd, 1), initialNoise(sd, 2)];
  const a = ['a red circle', 'a blue circle'];
  const b = ['a green square', 'a green star'];
  const blend = () => new LocalBlend({ tokenizer: sd.tokenizer, prompts: b, words: ['square', 'star'] });
  const aloneA = run(a, [z0, z0], [new AttentionReplace(edit(a))]);
  const aloneB = run(b, [z1, z1], [new AttentionReplace(edit(b)), blend()]);
  const together = run(
    [...a, ...b],
    [z0, z0, z1, z1],
    [
      groupControllers([
        { prompts: [0, 1], controllers: [new AttentionReplace(edit(a))] },
        { prompts: [2, 3], controllers: [new AttentionReplace(edit(b)), blend()] },
      ]),
    ],
  );
  assertClose(rows(together, 0, 2), aloneA, 'pair A');
  assertClose(rows(together, 2, 4), aloneB, 'pair B');
  // and the edit did something: the grouped target differs from plain generation of the target
  const plain = run([b[1]!], [z1], []);
  const d = (rows(together, 3, 4).data as Float32Array).some(
    (v, i) => Math.abs(v - (plain.data as Float32Array)[i]!) > 1e-3,
  );
  assert.ok(d, 'the grouped edit left the target as plain generation');
});

test('groupControllers: MasaCtrl and PnP sharing one source row equal each run alone; free rows untouched', () => {
  const z = initialNoise(sd, 3);
  const src = 'a red star on the left';
  const tgt = 'a red star on the right';
  const masa = () => new MutualSelfAttention({ startStep: 1, startLayer: defaultStartLayer(sd) });
  const pnp = () => new PlugAndPlay(defaultPnPLayers(sd));
  const aloneMasa = run([src, tgt], [z, z], [masa()]);
  const alonePnP = run([src, tgt], [z, z], [pnp()]);
  const plain = run([tgt], [z], []);
  const together = run(
    [src, tgt, tgt, tgt],
    [z, z, z, z],
    [
      groupControllers([
        { prompts: [0, 1], controllers: [masa()] },
        { prompts: [0, 2], controllers: [pnp()] },
      ]),
    ],
  );
  assertClose(rows(together, 0, 2), aloneMasa, 'MasaCtrl pair');
  assertClose(concat([rows(together, 0, 1), rows(together, 2, 3)], 0), alonePnP, 'PnP pair');
  assertClose(rows(together, 3, 4), plain, 'row in no group');
});

test('groupControllers: whole-layer hooks and repeated prompts are refused', () => {
  const fn: Controller = { name: 'flash', fn: () => undefined };
  assert.throws(() => groupControllers([{ prompts: [0], controllers: [fn] }]), /'fn' hook/);
  const blocks = new BlockCaching({ plan: () => true });
  assert.throws(() => groupControllers([{ prompts: [0], controllers: [blocks] }]), /'reuseTransformer' hook/);
  assert.throws(() => groupControllers([{ prompts: [0, 0], controllers: [] }]), /twice/);
});
