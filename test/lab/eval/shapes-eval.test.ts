// attnkit eval's library: held-out prompts disjoint from training, the eval end to end on tiny-sd-a (table,
// JSON, heat-map IoU), batch-independent noise, and the detector's mask standing in for ground truth.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  captionOf,
  copiesMask,
  detectedMask,
  detectObjects,
  evalRunJSON,
  formatEvalRun,
  HELD_OUT_SEED_BASE,
  heldOutPrompts,
  heldOutSeeds,
  maskIoU,
  parseCaption,
  renderScene,
  runShapesEval,
  sampleScene,
  TRAINING_DATA_SEEDS,
  trainingSeedRanges,
} from '../../../src/lab/index.js';
import { exampleSeed, shapesExamples, shapesTrainingData } from '../../../src/lab/train-data.js';
import { crossAttentionSides } from '../../../src/models/unet2d-config.js';
import { defaultHeatResolutions } from '../../../src/pipelines/heatmaps.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { vocabularyCaptions } from '../../../src/train/shapes.js';
import { attnkitTiny } from '../../helpers/cli.js';
import { goldenDir } from '../../helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-eval-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('eval: held-out seeds lie above every scene seed that training draws', () => {
  const seeds = heldOutSeeds(1000);
  assert.equal(seeds[0], HELD_OUT_SEED_BASE);
  assert.equal(new Set(seeds).size, 1000);
  // the ranges agree with the training data's own seed function
  for (const [d, [lo, hi]] of TRAINING_DATA_SEEDS.map((d, i) => [d, trainingSeedRanges()[i]!] as const)) {
    assert.equal(exampleSeed(d, 0), lo);
    assert.equal(exampleSeed(d, hi - lo - 1), hi - 1);
    assert.throws(() => exampleSeed(d, hi - lo), /beyond/);
    for (const s of seeds)
      assert.ok(s < lo || s >= hi, `held-out seed ${s} is in training range [${lo}, ${hi})`);
  }
  // any data seed below 100 stays below the held-out base
  assert.ok(exampleSeed(99, 10_000_000 - 1) < HELD_OUT_SEED_BASE);
  // the stages draw what the ranges say: the vocabulary from data seed 3's scenes, batches by exampleSeed
  assert.equal(vocabularyCaptions(shapesTrainingData, 2)[1], captionOf(sampleScene(exampleSeed(3, 1))).text);
  assert.deepEqual(shapesExamples(2, 5, 1).captions, [captionOf(sampleScene(exampleSeed(2, 5))).text]);
});

test('eval: held-out prompts are captions of their seeds, in the grammar', () => {
  const prompts = heldOutPrompts(5, 10);
  prompts.forEach((p, i) => {
    assert.equal(p.seed, HELD_OUT_SEED_BASE + 10 + i);
    assert.equal(p.caption.text, captionOf(sampleScene(p.seed)).text);
    assert.equal(parseCaption(p.caption.text).objects.length, p.scene.objects.length);
  });
});

test("eval: the detector's fitted template matches the ground-truth mask of rendered objects", () => {
  for (let i = 0; i < 10; i++) {
    const scene = sampleScene(HELD_OUT_SEED_BASE + i);
    const { image, masks } = renderScene(scene);
    const detection = detectObjects(image);
    for (const [j, o] of scene.objects.entries()) {
      const d = detection.objects.find((x) => x.color === o.color && x.shape === o.shape);
      assert.ok(d, `seed ${scene.seed}: object ${j} not detected`);
      const iou = maskIoU(detectedMask(d, scene.width, scene.height), masks[j]!.mask);
      assert.ok(iou > 0.85, `seed ${scene.seed} object ${j}: template IoU ${iou}`);
    }
  }
});

test('eval: copiesMask is the union of every detected object of a colour and shape', () => {
  const scene = sampleScene(HELD_OUT_SEED_BASE + 3, { objects: 1 });
  const o = scene.objects[0]!;
  const copy = { ...o, cx: 63 - o.cx, cy: 63 - o.cy };
  const { image, masks } = renderScene({ ...scene, objects: [o, copy] });
  const detection = detectObjects(image);
  const union = copiesMask(detection, o, scene.width, scene.height);
  assert.ok(union);
  const [m0, m1] = masks.map((m) => m.mask.data as Float32Array);
  const truth = m0!.map((v, p) => Math.max(v, m1![p]!));
  assert.ok(maskIoU(union, truth) > 0.85, `union IoU ${maskIoU(union, truth)}`);
  const other = o.color === 'red' ? 'blue' : 'red';
  assert.equal(copiesMask(detection, { color: other, shape: o.shape }, scene.width, scene.height), null);
});

test('eval: heat-maps read the 16 × 16 cross-attention where the UNet has it, else every side', () => {
  const config = (sampleSize: number, downBlockTypes: string[], midBlock: boolean) =>
    ({ sampleSize, downBlockTypes, midBlock }) as unknown as Parameters<typeof crossAttentionSides>[0];
  const withUnet = (c: ReturnType<typeof config>) => ({ unet: { config: c } }) as unknown as StableDiffusion;
  const x = 'CrossAttnDownBlock2D';
  const sd15 = config(64, [x, x, x, 'DownBlock2D'], true); // 64, 32, 16; DownBlock at 8; the middle at 8
  assert.deepEqual(crossAttentionSides(sd15), [64, 32, 16, 8]);
  assert.deepEqual(defaultHeatResolutions(withUnet(sd15)), [16]);
  const shapes = config(16, [x, x, x], true); // 16, 8, 4 and the middle at 4
  assert.deepEqual(crossAttentionSides(shapes), [16, 8, 4]);
  assert.deepEqual(defaultHeatResolutions(withUnet(shapes)), [16]);
  const small = config(16, ['DownBlock2D', x], true); // 8, the middle at 8
  assert.deepEqual(crossAttentionSides(small), [8]);
  assert.equal(defaultHeatResolutions(withUnet(small)), undefined);
  assert.deepEqual(crossAttentionSides(config(16, ['DownBlock2D', 'DownBlock2D'], false)), []);
});

test('eval: runs end to end on tiny-sd-a and gives a well-formed table and JSON', () => {
  const sd = StableDiffusion.fromPretrained(goldenDir());
  const run = runShapesEval(sd, { prompts: 3, steps: 2, batchSize: 2, heatMaps: 2, keepImages: true });
  assert.equal(run.rows.length, 3);
  assert.equal(run.summary.prompts, 3);
  assert.deepEqual(
    run.rows.map((r) => r.seed),
    heldOutSeeds(3),
  );
  assert.deepEqual(run.config.seeds, [HELD_OUT_SEED_BASE, HELD_OUT_SEED_BASE + 2]);
  const nObjects = heldOutPrompts(2).reduce((a, p) => a + p.scene.objects.length, 0);
  const h = run.heatMaps!;
  assert.equal(h.scenes, 2);
  assert.equal(h.objects, nObjects);
  assert.equal(h.perObject.length + h.truncated, nObjects);
  assert.equal(h.resolutions, null, 'tiny-sd-a has no 16 × 16 cross-attention: every side');
  assert.equal(h.threshold, 0.5);
  for (const o of h.perObject) {
    assert.equal(o.matched, o.iou !== null);
    if (o.iou !== null) assert.ok(o.iou >= 0 && o.iou <= 1);
  }
  const text = formatEvalRun(run);
  assert.match(text, /1-object prompts: colour \+ shape/);
  assert.match(text, /heat-map IoU/);
  assert.match(text, /ShapesEval — 3 prompts/);
  const json = JSON.parse(evalRunJSON(run));
  assert.deepEqual(Object.keys(json.headline), [
    'singleColorShape',
    'twoColorShape',
    'twoAllCorrect',
    'position',
  ]);
  assert.equal(json.rows.length, 3);
  assert.equal(json.images, undefined);
  // noise is seeded per prompt: prompt 2 alone gives the image it had in a batch of 2
  const alone = runShapesEval(sd, { prompts: 1, start: 2, steps: 2, batchSize: 1, keepImages: true });
  const a = alone.images![0]!.data as Float32Array;
  const b = run.images![2]!.data as Float32Array;
  const diff = a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
  assert.ok(diff < 1e-3, `prompt 2 differs by ${diff} between batch sizes`);
});

test('eval: attnkit eval prints the table and writes JSON', () => {
  const out = join(dir, 'eval.json');
  const stdout = attnkitTiny(
    'eval',
    '-n',
    '2',
    '--steps',
    '1',
    '--batch',
    '2',
    '--heatmaps',
    '1',
    '--out',
    out,
  );
  assert.match(stdout, /ShapesEval — 2 prompts/);
  const json = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(json.config.prompts, 2);
  assert.equal(json.heatMaps.scenes, 1);
});

test('eval: a time budget stops starting batches and the result says how many prompts ran', () => {
  const sd = StableDiffusion.fromPretrained(goldenDir());
  const run = runShapesEval(sd, { prompts: 4, steps: 1, batchSize: 1, minutes: 1e-6, heatMaps: 4 });
  assert.equal(run.config.prompts, 1);
  assert.equal(run.config.asked, 4);
  assert.equal(run.rows.length, 1);
  assert.equal(run.summary.prompts, 1);
  assert.equal(run.heatMaps!.scenes, 1);
  assert.match(formatEvalRun(run), /1 of the 4 asked/);
});

test('eval --reconstruct: scores the VAE round trip of each prompt’s rendered scene', () => {
  const sd = StableDiffusion.fromPretrained(goldenDir());
  const run = runShapesEval(sd, { prompts: 2, batchSize: 2, reconstruct: true, keepImages: true });
  assert.equal(run.config.mode, 'reconstruct');
  assert.equal(run.rows.length, 2);
  const [first] = heldOutPrompts(1);
  const expected = sd.decodeLatents(sd.encodeImage(renderScene(first!.scene).image));
  assert.deepEqual(run.images?.[0]?.data, expected.data);
  assert.match(formatEvalRun(run), /^VAE round trips of the rendered scenes of held-out prompts 0\.\.1/);
  assert.throws(() => runShapesEval(sd, { prompts: 2, reconstruct: true, heatMaps: 1 }), /heat-maps need/);
  assert.throws(() => runShapesEval(sd, { prompts: 1, steps: 2, heatSteps: [2, 2] }), /not a range/);
});
