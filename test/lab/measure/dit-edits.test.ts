// The issue-5 measurements on the built-in DiT Shapes model (models/shapes-dit-v1, MM-DiT + flow matching): the
// lab's batched runs give the pipeline's own images, LocalBlend blends on the DiT's joint layers (the target's
// latents outside its mask are the source's), and every measurement runs end to end with the same method
// objects as on the UNet (tiny settings: 2 steps, one batch each).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { editsMarkdown, measureEdits, runJobs } from '../../../src/lab/index.js';
import { replaceAndBlend } from '../../../src/lab/measure/common.js';
import type { LocalBlend } from '../../../src/methods/application/local-blend.js';
import { StableDiffusion3 } from '../../../src/pipelines/sd3.js';
import { concat, type Tensor } from '../../../src/tensor/index.js';
import { repoRoot } from '../../helpers/fixtures.js';

const dit = StableDiffusion3.fromPretrained(join(repoRoot, 'models', 'shapes-dit-v1'));
const maxAbs = (a: Tensor, b: Tensor) => a.sub(b).abs().max().item();

test('DiT: a lab job without controllers is the pipeline’s own image from the scene seed’s noise', () => {
  const o = { steps: 2, guidanceScale: 5, batchPrompts: 4, deadline: Number.POSITIVE_INFINITY };
  const lab = runJobs(dit, [{ seed: 1234, prompts: ['a red circle'], groups: [] }], o, () => {})[0]![0]!;
  const direct = dit.generate({
    prompt: 'a red circle',
    seed: 0,
    latents: dit.initialNoise(1234),
    steps: 2,
    guidanceScale: 5,
  });
  assert.equal(maxAbs(lab, direct.images), 0);
});

test('DiT: P2P word swap + LocalBlend on joint layers — the source row as alone, the target outside its mask = the source', () => {
  const pair = ['a red circle in the top left', 'a blue circle in the top left'];
  const controllers = replaceAndBlend(dit, pair, ['red', 'blue'], 0.6);
  const z = dit.initialNoise(77);
  const both = dit.generate({
    prompt: pair,
    latents: concat([z, z], 0),
    steps: 3,
    guidanceScale: 5,
    controllers,
  });
  const alone = dit.generate({ prompt: pair[0]!, latents: z, steps: 3, guidanceScale: 5 });
  // not edited; the explicit maps the editors read round differently from the fused kernel alone: 1e-4
  const d = maxAbs(both.latents.slice(0, 0, 1), alone.latents);
  assert.ok(d < 1e-4, `the source row is not edited (max |Δ| ${d})`);
  const blend = controllers[1] as LocalBlend;
  const mask = blend.lastMask!; // (2, 1, h, w): the last step's union of the two rows' masks
  assert.ok(mask, 'LocalBlend saw the joint layers’ maps and blended');
  const m = mask.slice(0, 1, 2);
  const ones = m.sum().item();
  assert.ok(ones > 0 && ones < m.size, `the mask covers part of the latent (${ones} of ${m.size})`);
  const [src, tgt] = [both.latents.slice(0, 0, 1), both.latents.slice(0, 1, 2)];
  const outside = tgt.sub(src).mul(m.mul(-1).add(1));
  assert.equal(outside.abs().max().item(), 0, 'outside the mask the target is the source');
  assert.ok(tgt.sub(src).mul(m).abs().max().item() > 1e-3, 'inside it the edit changed the latents');
});

test('DiT: every measurement but the DDIM / null-text inversion runs end to end (2 steps, one batch each)', () => {
  const seen: string[] = [];
  const r = measureEdits(dit, {
    seeds: 2,
    steps: 2,
    batchPrompts: 4,
    minutes: 1e-6,
    onProgress: (m) => {
      if (!seen.includes(m)) seen.push(m);
    },
  });
  assert.deepEqual(seen, ['colour-swap', 'shape-swap', 'reweight', 'heatmaps', 'feature']);
  assert.equal(r.inversion, undefined);
  // the word swap acts: the replaced image is not the plain regeneration of the target prompt
  const row = r.colourSwap!.rows[0]!;
  assert.notEqual(row.perMethod.replace!.maeOutside, row.perMethod.none!.maeOutside);
  assert.deepEqual(Object.keys(r.feature!.methods), ['masactrl', 'masactrl-mask', 'none']);
  assert.ok(r.heatMaps!.objects >= 1);
  assert.match(r.heatMaps!.source, /flow inversion/);
  for (const v of Object.values(r.heatMaps!.meanIoU)) assert.ok(v !== null && v >= 0 && v <= 1);
  assert.equal(r.config.sampler, 'flow-euler');
  assert.match(editsMarkdown(r), /^Settings: flow-matching Euler \(the DiT\) 2 steps/);
  assert.ok(!editsMarkdown(r).includes('Plug-and-Play |'), 'no Plug-and-Play row on the DiT');
  assert.throws(() => measureEdits(dit, { only: ['inversion'] }), /runs on a UNet model only/);
});
