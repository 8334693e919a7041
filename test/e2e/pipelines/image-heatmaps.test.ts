// Heat-maps and masks of a given image (imageHeatMaps): the maps come from the UNet passes of its DDIM inversion,
// the step range counts in sampling order, and on the built-in model the mask of a rendered scene's shape word
// covers the renderer's ground-truth mask.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BUILTIN_MODEL } from '../../../src/cli/models.js';
import { captionOf, maskIoU, renderScene, sampleScene } from '../../../src/lab/shapes/index.js';
import { attentionMask } from '../../../src/methods/application/attention-mask.js';
import { AttentionStore } from '../../../src/methods/map/attention-store.js';
import { aggregateCrossAttention } from '../../../src/methods/map/heatmap.js';
import { imageHeatMaps } from '../../../src/pipelines/heatmaps.js';
import { invertBatch } from '../../../src/pipelines/inversion.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { DDIMScheduler } from '../../../src/schedulers/index.js';
import { Tensor } from '../../../src/tensor/index.js';
import { randn } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

test('imageHeatMaps: sampling step s is the inversion pass at the sampling timestep of s', () => {
  const sd = StableDiffusion.fromPretrained(goldenDir());
  const side = sd.defaultSize;
  const image = randn([1, 3, side, side], 7).mul(0.3);
  const prompt = 'a red circle';
  const steps = 4;
  const scheduler = sd.scheduler('ddim');
  assert.ok(scheduler instanceof DDIMScheduler);
  scheduler.setTimesteps(steps);
  const sampling = [...scheduler.timesteps]; // noisy → clean
  for (const [a, b] of [
    [0, 1],
    [1, 3],
  ] as const) {
    const run = imageHeatMaps(sd, { image, prompt, steps, stepRange: [a, b] });
    assert.equal(run.store.numSteps, b - a);
    assert.equal(run.image, image);
    // expected: a store that picks the passes by their timestep, not by the step index
    const want = new Set(sampling.slice(a, b));
    const store = new AttentionStore({
      kinds: ['cross'],
      maxTokens: Number.POSITIVE_INFINITY,
      layers: (c) => want.has(c.timestep),
    });
    const latents = sd.encodeImage(image);
    invertBatch(sd, latents, sd.encodePrompt([prompt]), steps, [store]);
    const [, , h, w] = latents.shape as number[];
    const expected = aggregateCrossAttention(store.maps(), { latentSize: [h!, w!] });
    assertClose(run.heatMap.heatMaps, expected, { atol: 1e-6, rtol: 0, label: `steps ${a}:${b}` });
  }
});

test('imageHeatMaps: a bad image or step count is an error that names it', () => {
  const sd = StableDiffusion.fromPretrained(goldenDir());
  const side = sd.defaultSize;
  const gray = new Tensor(new Float32Array(side * side), [1, 1, side, side]);
  assert.throws(() => imageHeatMaps(sd, { image: gray, prompt: 'a circle' }), /one RGB image \(1, 3, H, W\)/);
  const image = new Tensor(new Float32Array(3 * side * side), [1, 3, side, side]);
  assert.throws(() => imageHeatMaps(sd, { image, prompt: 'a circle', steps: 0 }), /positive integer/);
});

test('built-in model: the shape word of a rendered scene segments its object (IoU with the ground truth)', () => {
  const sd = StableDiffusion.fromPretrained(BUILTIN_MODEL);
  const ious: number[] = [];
  for (const seed of [11, 12, 13, 14, 15, 16]) {
    const scene = sampleScene(seed, { objects: 1 });
    const caption = captionOf(scene);
    const rendering = renderScene(scene);
    const run = imageHeatMaps(sd, { image: rendering.image, prompt: caption.text, steps: 25 });
    const map = run.heatMap.wordHeatMap(caption.objects[0]!.shape.index);
    const mask = attentionMask(map, { size: [scene.height, scene.width], threshold: 0.5 });
    ious.push(maskIoU(mask, rendering.masks[0]!.mask));
  }
  const mean = ious.reduce((s, v) => s + v, 0) / ious.length;
  // measured over 100 held-out rendered scenes: 0.62 (docs/results.md, "heat-maps on rendered scenes")
  assert.ok(mean >= 0.5, `mean IoU ${mean.toFixed(3)} (${ious.map((v) => v.toFixed(2)).join(', ')})`);
});
