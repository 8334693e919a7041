// editFeatures on tiny-sd-a: layer defaults read from the module paths, MasaCtrl (with masks) and PnP on a
// generated pair and on a real image (the source rows follow the inversion, so the source is the image's
// reconstruction through the VAE); `attnkit edit --method masactrl | pnp [--image]` end to end.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readPng, writePng } from '../../../src/io/png.js';
import { MutualSelfAttentionMaskAuto } from '../../../src/methods/feature/mutual-self-attention.js';
import { PlugAndPlay } from '../../../src/methods/feature/plug-and-play.js';
import {
  defaultMaskResolution,
  defaultPnPLayers,
  defaultStartLayer,
  editFeatures,
  maskAutoFor,
} from '../../../src/pipelines/feature-edit.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { attnkitTiny } from '../../helpers/cli.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

const sd = StableDiffusion.fromPretrained(goldenDir());
const dir = mkdtempSync(join(tmpdir(), 'attnkit-feature-edit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('layer defaults follow the module paths (tiny-sd-a: attention only in up_blocks.0)', () => {
  assert.equal(defaultStartLayer(sd), 3); // self-attention 0–1 down, 2 mid, 3–5 up_blocks.0
  assert.deepEqual(defaultPnPLayers(sd), {
    attnLayers: [1, 2].map((j) => `up_blocks.0.attentions.${j}.transformer_blocks.0.attn1`),
    convLayers: ['up_blocks.0.resnets.1'],
  });
  assert.equal(defaultMaskResolution(sd), 8); // the only cross-attention side: down_blocks.1 and the middle
});

test('MaskAuto reads maps one side above the smallest with cross-attention (SD: the reference’s 16)', () => {
  const withUnet = (sampleSize: number, downBlockTypes: string[], midBlock: boolean) =>
    ({ unet: { config: { sampleSize, downBlockTypes, midBlock } } }) as unknown as StableDiffusion;
  const sd15 = ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'];
  assert.equal(defaultMaskResolution(withUnet(64, sd15, true)), 16); // sides 64, 32, 16 and the middle's 8
  const shapes = ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'];
  assert.equal(defaultMaskResolution(withUnet(16, shapes, true)), 8); // 16, 8, 4 (+ middle 4): not the 4 × 4
  assert.throws(
    () => defaultMaskResolution(withUnet(16, ['DownBlock2D', 'DownBlock2D'], false)),
    /no cross-attention/,
  );
});

test('MaskAuto’s foreground from named words: their tokens in the source and in the target', () => {
  const pair = ['a red circle', 'a red square'] as const;
  const m = maskAutoFor(sd, pair, { words: ['circle', 'square'] });
  // <start> a red circle: token 3 in each prompt
  assert.deepEqual([m.refTokenIdx, m.curTokenIdx], [[3], [3]]);
  const colours = maskAutoFor(sd, ['a red circle', 'a circle'], { words: ['red', 'circle'] });
  assert.deepEqual([colours.refTokenIdx, colours.curTokenIdx], [[2, 3], [2]], 'the words each prompt has');
  assert.equal(m.maskResolution, defaultMaskResolution(sd));
  assert.deepEqual(maskAutoFor(sd, pair).refTokenIdx, [1], 'no words: the reference’s token 1');
  assert.throws(() => maskAutoFor(sd, pair, { words: ['star'] }), /none of the mask words \["star"\]/);
});

const base = { source: 'a red circle', target: 'a red square', steps: 3, seed: 4 };

test('MasaCtrl (masked) and PnP edit a generated pair; the source is the source prompt’s own image', () => {
  const alone = sd.generate({ prompt: base.source, steps: 3, seed: 4, scheduler: 'ddim' });
  // generate's seeded noise for one row is the pipeline's initial noise for the pair
  for (const method of ['masactrl', 'pnp'] as const) {
    const r = editFeatures(sd, { ...base, method, masactrl: { startStep: 1, mask: true } });
    assert.ok(r.controller instanceof (method === 'pnp' ? PlugAndPlay : MutualSelfAttentionMaskAuto));
    assertClose(r.source, alone.images, { atol: 1e-4, rtol: 0, label: method });
    assert.ok(r.target.sub(r.source).abs().max().item() > 1e-3, `${method}: the target is the source`);
  }
});

test('a real image: inverted with the source prompt; the source row follows its trajectory', () => {
  const image = sd.decodeLatents(sd.generate({ prompt: 'a blue star', steps: 2, seed: 9 }).latents);
  for (const method of ['masactrl', 'pnp'] as const) {
    const r = editFeatures(sd, { ...base, method, image, masactrl: { startStep: 0 } });
    const z0 = r.inversion?.trajectory[0] as Tensor;
    assert.deepEqual(r.latents.slice(0, 0, 1).data, z0.data, `${method}: the source row left the inversion`);
    assertClose(r.source, sd.decodeLatents(z0), { atol: 1e-5, rtol: 0 });
  }
});

const attnkit = attnkitTiny;

test('attnkit edit --method masactrl | pnp, with and without --image', () => {
  const input = join(dir, 'in.png');
  writePng(input, sd.decodeLatents(sd.generate({ prompt: 'a blue star', steps: 2, seed: 9 }).latents));
  const common = ['--source', 'a red circle', '--target', 'a red square', '--steps', '2'];
  attnkit(
    'edit',
    '--method',
    'masactrl',
    ...common,
    '--start-step',
    '0',
    '--mask-words',
    'circle',
    'square',
    '--out',
    join(dir, 'm.png'),
  );
  attnkit(
    'edit',
    '--method',
    'pnp',
    ...common,
    '--image',
    input,
    '--pnp-f-t',
    '1',
    '--out',
    join(dir, 'p.png'),
  );
  for (const f of ['m', 'p']) {
    assert.deepEqual(readPng(join(dir, `${f}.png`)).shape, [1, 3, 36, 70]);
    assert.deepEqual(readPng(join(dir, `${f}.target.png`)).shape, [1, 3, 32, 32]);
  }
});
