// DDIM and null-text inversion on SDXL (tiny-sdxl): the UNet gets the prompt's pooled text and time ids in every
// inversion call, so editing real images and image heat-maps run on SDXL as on SD 1.x / 2.x.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { editPrompt } from '../../../src/pipelines/edit.js';
import { imageHeatMaps } from '../../../src/pipelines/heatmaps.js';
import { ddimInvert, invertBatch, nullTextInversion } from '../../../src/pipelines/inversion.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { sdxlDir, sdxlGolden } from './helpers.js';

const sd = StableDiffusion.fromPretrained(sdxlDir());
const prompt = 'a red circle above a blue square';
const image = sd.decodeLatents(sdxlGolden('pipe.out.latents')); // (1, 3, 16, 16)
const steps = 4;

function meanSquare(a: Tensor, b: Tensor): number {
  let s = 0;
  for (let i = 0; i < a.size; i++) s += ((a.data[i] as number) - (b.data[i] as number)) ** 2;
  return s / a.size;
}

test('DDIM inversion on SDXL: from a prompt or its embeds and pooled text, batched or not, the same bits', () => {
  const inv = ddimInvert(sd, { image, prompt, steps });
  assert.equal(inv.trajectory.length, steps + 1);
  assert.deepEqual(inv.pooledPromptEmbeds?.shape, [1, 20]);
  const text = sd.encodeText([prompt]);
  const again = ddimInvert(sd, { image, promptEmbeds: text.states, pooledPromptEmbeds: text.pooled, steps });
  const batched = invertBatch(sd, inv.trajectory[0] as Tensor, text, steps);
  assert.deepEqual((again.trajectory[steps] as Tensor).data, (inv.trajectory[steps] as Tensor).data);
  assert.deepEqual((batched.trajectory[steps] as Tensor).data, (inv.trajectory[steps] as Tensor).data);
  assert.throws(
    () => ddimInvert(sd, { image, promptEmbeds: text.states, steps }),
    /needs the pooled text of its prompt \(pooledPromptEmbeds\)/,
  );
});

test('null-text inversion on SDXL: the guided regeneration with ∅_t retraces the inversion better than ∅', () => {
  const inv = ddimInvert(sd, { image, prompt, steps });
  const nt = nullTextInversion(sd, inv, { guidanceScale: 5, numInnerSteps: 10 });
  assert.equal(nt.nullEmbeds.length, steps);
  assert.deepEqual(nt.nullPooled?.shape, [1, 20]);
  const common = {
    latents: inv.trajectory[steps] as Tensor,
    promptEmbeds: inv.promptEmbeds,
    pooledPromptEmbeds: inv.pooledPromptEmbeds,
    negativePooledPromptEmbeds: nt.nullPooled,
    guidanceScale: 5,
    steps,
    scheduler: 'ddim' as const,
  };
  const z0 = inv.trajectory[0] as Tensor;
  const tuned = sd.generate({ ...common, negativePromptEmbeds: nt.nullEmbeds }).latents;
  const plain = sd.generate({ ...common, negativePromptEmbeds: sd.encodePrompt(['']) }).latents;
  const [e1, e0] = [meanSquare(tuned, z0), meanSquare(plain, z0)];
  console.log(
    `  sdxl null-text: reconstruction MSE ${e1.toExponential(3)} (plain ∅: ${e0.toExponential(3)})`,
  );
  assert.ok(e1 < e0, `null-text ${e1} ≥ plain ${e0}`);
});

test('editing a real image (null-text) and image heat-maps run on SDXL', () => {
  const r = editPrompt(sd, {
    source: prompt,
    target: 'a red square above a blue square',
    image,
    nullText: { numInnerSteps: 2 },
    steps: 2,
  });
  assert.deepEqual(r.target.shape, [1, 3, 16, 16]);
  const run = imageHeatMaps(sd, { image, prompt, steps: 2 });
  const map = run.heatMap.wordHeatMap('circle'); // the word's tokens through tokenizer 1's TokenLookup
  assert.equal(map.rank, 2);
  assert.ok(map.toArray().every(Number.isFinite));
});
