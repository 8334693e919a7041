// The issue-5 measurements: their scoring on rendered scenes where the answer is known, and every measurement
// end to end on tiny-sd-a with one seed and two steps (well-formed results and markdown).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  colourStats,
  editsMarkdown,
  MEASUREMENT_OFFSETS,
  MEASUREMENTS,
  meanAbsError,
  measureEdits,
  psnr,
  samePlaceMask,
  scoreSwap,
  swappedCaption,
} from '../../../src/lab/measure/edits.js';
import {
  captionOf,
  captionOfSpec,
  dilate,
  evaluate,
  maskIoU,
  renderScene,
  sampleScene,
} from '../../../src/lab/shapes/index.js';
import { detectedMask, heldOutSeed } from '../../../src/lab/shapes-eval.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { concat, Tensor } from '../../../src/tensor/index.js';
import { goldenDir, repoRoot } from '../../helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-measure-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('measure: a rendered colour swap scores as changed, same mask, nothing changed outside', () => {
  const scene = sampleScene(heldOutSeed(7), { objects: 2 });
  const swapped = {
    ...scene,
    objects: scene.objects.map((o, i) => (i === 0 ? { ...o, color: 'cyan' as const } : o)),
  };
  if (scene.objects.some((o) => o.color === 'cyan')) swapped.objects[0]!.color = 'white';
  const source = renderScene(scene).image;
  const edited = renderScene(swapped).image;
  const caption = captionOf(scene).text;
  const s = scoreSwap(source, evaluate(source, caption), edited, captionOf(swapped).text, 'color');
  assert.equal(s.changed, true);
  assert.ok(s.iou > 0.95, `iou ${s.iou}`);
  assert.ok(s.maeOutside < 1e-3, `outside error ${s.maeOutside}`);
  assert.equal(s.othersIoU.length, 1);
  assert.ok(s.othersIoU[0]! > 0.95);
  assert.ok(s.iouCopies > 0.95 && s.othersIoUCopies[0]! > 0.95, `copies ${s.iouCopies} ${s.othersIoUCopies}`);
  // the unedited source is not "changed", and a different scene moves the object
  assert.equal(
    scoreSwap(source, evaluate(source, caption), source, captionOf(swapped).text, 'color').changed,
    false,
  );
  const other = renderScene(sampleScene(heldOutSeed(8), { objects: 2 })).image;
  assert.ok(
    scoreSwap(source, evaluate(source, caption), other, captionOf(swapped).text, 'color').maeOutside > 1,
  );
});

test('measure: with every copy of an object, a model that draws it twice is scored on both copies', () => {
  // one object, drawn twice: the second a copy of the first in another cell (the caption names one)
  const scene = sampleScene(heldOutSeed(7), { objects: 1 });
  const first = scene.objects[0]!;
  const copy = { ...first, cx: 63 - first.cx, cy: 63 - first.cy };
  const twice = { ...scene, objects: [first, copy] };
  const colour = first.color === 'cyan' ? ('white' as const) : ('cyan' as const);
  const recolour = (o: typeof first) => ({ ...o, color: colour });
  const caption = captionOf(scene);
  const target = caption.words.map((w, i) => (i === caption.objects[0]!.color.index ? colour : w)).join(' ');
  const source = renderScene(twice).image;
  const report = evaluate(source, caption.text);
  // both copies recoloured: every copy keeps its mask, nothing else changes
  const both = scoreSwap(
    source,
    report,
    renderScene({ ...twice, objects: twice.objects.map(recolour) }).image,
    target,
    'color',
  );
  assert.ok(both.iouCopies > 0.95, `iou of copies ${both.iouCopies}`);
  assert.ok(both.maeOutsideCopies < 1e-3, `outside every copy ${both.maeOutsideCopies}`);
  // one copy recoloured and the other gone: two equal masks against one, IoU 1/2
  const one = scoreSwap(
    source,
    report,
    renderScene({ ...twice, objects: [recolour(first)] }).image,
    target,
    'color',
  );
  assert.ok(Math.abs(one.iouCopies - 0.5) < 0.03, `iou of copies ${one.iouCopies}`);
  assert.ok(one.maeOutsideCopies < 1e-3, "the vanished copy is inside the copies' region");
});

test("measure: the copy in the source object's place is found whichever copy ShapesEval matched", () => {
  // an object drawn twice, far apart (bottom right and top left)
  const scene = sampleScene(heldOutSeed(7), { objects: 1 });
  const first = scene.objects[0]!;
  assert.ok(first.cx > 40 && first.cy > 40, 'the scene this test was written for');
  const copy = { ...first, cx: 63 - first.cx, cy: 63 - first.cy };
  const image = renderScene({ ...scene, objects: [first, copy] }).image;
  const report = evaluate(image, captionOf(scene).text);
  const near = (x: number, y: number) =>
    report.detection.objects.find((d) => Math.hypot(d.cx - x, d.cy - y) < 3)!;
  const [atFirst, atCopy] = [near(first.cx, first.cy), near(copy.cx, copy.cy)];
  assert.ok(atFirst && atCopy, 'both copies detected');
  const source = detectedMask(atFirst, 64, 64);
  // whichever copy is the match, the mask found is the one in the source object's place
  for (const matched of [atFirst, atCopy]) {
    const flipped = { ...report, objects: [{ ...report.objects[0]!, detected: matched }] };
    assert.ok(maskIoU(source, samePlaceMask(source, flipped, 0, 64, 64)!) > 0.99);
  }
  assert.equal(maskIoU(source, detectedMask(atCopy, 64, 64)), 0, 'the other copy does not overlap');
  const none = { ...report, objects: [{ ...report.objects[0]!, detected: null }] };
  assert.equal(samePlaceMask(source, none, 0, 64, 64), null);
});

test('measure: swapped captions keep the grammar (the article follows the new colour) and the word count', () => {
  // first held-out scenes whose object 0 is orange, with and without a size word
  const find = (sized: boolean) => {
    for (let i = 0; i < 10_000; i++) {
      const scene = sampleScene(heldOutSeed(i), { objects: [1, 2] });
      if (scene.objects[0]!.color === 'orange' && Boolean(captionOf(scene).objects[0]!.size) === sized)
        return scene;
    }
    throw new Error('no such scene');
  };
  const bare = find(false);
  const src = captionOf(bare);
  const [c, a] = [src.objects[0]!.color.index, src.objects[0]!.start];
  assert.equal(src.words[a], 'an');
  const blue = swappedCaption(bare, 'color', 'blue').split(' ');
  assert.equal(blue.length, src.words.length);
  assert.deepEqual(
    blue.map((w, i) => (i === a || i === c ? null : w)),
    src.words.map((w, i) => (i === a || i === c ? null : w)),
  );
  assert.equal(blue[a], 'a');
  assert.equal(blue[c], 'blue');
  // with a size word the article is the size's: only the colour changes
  const sized = find(true);
  const srcSized = captionOf(sized);
  const blueSized = swappedCaption(sized, 'color', 'blue').split(' ');
  assert.deepEqual(
    blueSized.map((w, i) => (i === srcSized.objects[0]!.color.index ? 'orange' : w)),
    srcSized.words,
  );
  // a shape swap changes the shape word only
  const square = swappedCaption(bare, 'shape', bare.objects[0]!.shape === 'square' ? 'ring' : 'square').split(
    ' ',
  );
  assert.equal(square.filter((w, i) => w !== src.words[i]).length, 1);
  assert.notEqual(square[src.objects[0]!.shape.index], src.words[src.objects[0]!.shape.index]);
});

test('measure: image utilities (PSNR, mean abs error, colour statistics, dilation)', () => {
  const a = new Tensor(new Float32Array(3 * 4).fill(0), [1, 3, 2, 2]);
  const b = new Tensor(new Float32Array(3 * 4).fill(0.1), [1, 3, 2, 2]);
  assert.equal(psnr(a, a), Number.POSITIVE_INFINITY);
  assert.ok(Math.abs(psnr(a, b) - 10 * Math.log10(1 / (0.05 * 0.05))) < 0.01);
  assert.ok(Math.abs(meanAbsError(a, b) - 12.75) < 1e-3);
  assert.equal(meanAbsError(a, b, [0, 0, 0, 0]), 0);
  const red = new Tensor(Float32Array.from([1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1, -1]), [1, 3, 2, 2]);
  const c = colourStats(red, [1, 0, 0, 0])!;
  assert.deepEqual(c.rgb, [255, 0, 0]);
  assert.equal(c.saturation, 1);
  assert.equal(colourStats(red, [0, 0, 0, 0]), null);
  assert.deepEqual([...dilate([0, 0, 0, 0, 1, 0, 0, 0, 0], 3, 3)], new Array(9).fill(1));
});

test('measure: every measurement runs end to end on tiny-sd-a (one batch each within a tiny budget, 2 steps)', () => {
  const sd = StableDiffusion.fromPretrained(goldenDir());
  const seen: string[] = [];
  // a budget that ends at once: every measurement runs its first batch (3 prompts) and stops
  const r = measureEdits(sd, {
    seeds: 4,
    steps: 2,
    batchPrompts: 3,
    minutes: 1e-6,
    nullTextSeeds: 2,
    nullTextInnerSteps: 1,
    onProgress: (m) => {
      if (!seen.includes(m)) seen.push(m);
    },
  });
  assert.deepEqual(seen, [...MEASUREMENTS]);
  assert.deepEqual(Object.keys(r.seconds), [...MEASUREMENTS]);
  assert.equal(r.colourSwap!.seeds, 1);
  assert.deepEqual(Object.keys(r.colourSwap!.methods), ['replace', 'replace+blend', 'none']);
  assert.equal(r.colourSwap!.rows.length, 1);
  assert.deepEqual(Object.keys(r.shapeSwap!.methods), ['replace+blend']);
  assert.equal(r.shapeSwap!.seeds, 1);
  assert.equal(r.reweight!.seeds, 1);
  assert.equal(r.feature!.seeds, 1);
  assert.equal(r.heatMaps!.seeds, 3);
  assert.equal(r.reweight!.rows[0]!.area.length, 3);
  assert.ok(r.heatMaps!.objects >= 1);
  for (const v of Object.values(r.heatMaps!.meanIoU)) assert.ok(v !== null && v >= 0 && v <= 1);
  assert.deepEqual(Object.keys(r.feature!.methods), ['masactrl', 'masactrl-mask', 'pnp', 'none']);
  const inv = r.inversion!;
  assert.equal(inv.seeds, 3);
  assert.equal(inv.nullText.seeds, 2); // null-text inverts a batch (≤ 3) at a time: both of its scenes
  for (const v of [inv.vaePSNR, inv.ddimPSNR, inv.ddimGuidedPSNR, inv.nullText.psnr])
    assert.ok(Number.isFinite(v));
  for (const e of [inv.nullText.edit, inv.nullText.editBlend, inv.nullText.editBlendSourceOnly!]) {
    assert.ok(e.changedRate !== null && e.changedRate >= 0 && e.changedRate <= 1);
    assert.ok(e.maeOutside !== null && e.maeOutside >= 0);
  }
  // both edits are scored against one reconstruction: its other objects' IoU is their common floor
  assert.equal(
    inv.nullText.edit.othersMeanIoUReconstruction,
    inv.nullText.editBlend.othersMeanIoUReconstruction,
  );
  const md = editsMarkdown(r);
  const realEdits = md.slice(md.indexOf('### Inversion'));
  assert.ok(
    realEdits.includes('| AttentionReplace + LocalBlend (the two colour words, threshold 0.6) |'),
    'the real-image blend row, at the default threshold',
  );
  assert.ok(realEdits.includes('| … and null-text for the source only'), 'the source-only null-text row');
  assert.equal(r.config.blendThreshold, 0.6);
  // results written before the threshold was recorded: the thresholds they ran with
  const { blendThreshold: _, ...older } = r.config;
  const olderMd = editsMarkdown({ ...r, config: older });
  assert.ok(olderMd.includes('| AttentionReplace + LocalBlend (the two colour words, threshold 0.3) |'));
  assert.ok(olderMd.includes('| AttentionReplace + LocalBlend (threshold 0.6) |'));
  for (const h of ['Colour word swap', 'Shape word swap', 'Reweight', 'Heat-maps', 'MasaCtrl', 'Inversion']) {
    assert.ok(md.includes(`### ${h}`), `markdown lacks ${h}`);
  }
  JSON.parse(JSON.stringify(r));
  // --only
  const one = measureEdits(sd, { seeds: 1, steps: 2, only: ['heatmaps'] });
  assert.deepEqual(Object.keys(one.seconds), ['heatmaps']);
  assert.deepEqual(one.heatMaps!.steps, [1, 2], 'default heat-map steps: the last third, at least one');
  assert.throws(() => measureEdits(sd, { steps: 2, heatSteps: [1, 3] }), /not a range of the 2 steps/);
  // a validation run: the same measurement on other scenes
  const shifted = measureEdits(sd, { seeds: 1, steps: 2, only: ['heatmaps'], sceneOffset: 1_000_000 });
  assert.notEqual(shifted.heatMaps!.rows[0]!.seed, one.heatMaps!.rows[0]!.seed);
  assert.equal(shifted.heatMaps!.rows[0]!.seed - one.heatMaps!.rows[0]!.seed, 1_000_000);
  assert.equal(one.colourSwap, undefined);
  assert.throws(() => measureEdits(sd, { only: ['nope' as 'heatmaps'] }), /unknown measurement/);
  // LocalBlend's threshold reaches the blend: at 1 nothing passes it (maps are normalised by their maximum), so
  // the blended edit keeps the source's latents from the blend's start and comes out as the source image
  const kept = measureEdits(sd, { seeds: 1, steps: 2, only: ['colour-swap'], blendThreshold: 1 });
  const keptRow = kept.colourSwap!.rows[0]!;
  assert.ok(keptRow.perMethod['replace+blend']!.maeOutside < 1e-3, 'threshold 1: the source image');
  assert.ok(keptRow.perMethod.replace!.maeOutside > 1, 'the unblended edit does change the image');
  assert.throws(() => measureEdits(sd, { blendThreshold: 1.5 }), /normalised to \[0, 1\], got 1.5/);
  // counts: no scenes measures nothing, so it is refused rather than written as an empty result
  assert.throws(() => measureEdits(sd, { seeds: 0 }), /seeds must be an integer ≥ 1, got 0/);
  assert.throws(
    () => measureEdits(sd, { batchPrompts: 2.5 }),
    /batchPrompts must be an integer ≥ 1, got 2.5/,
  );
  assert.throws(() => measureEdits(sd, { nullTextSeeds: -1 }), /nullTextSeeds must be an integer ≥ 0/);
  assert.throws(() => measureEdits(sd, { sceneOffset: -1 }), /sceneOffset must be an integer ≥ 0, got -1/);
});

test('measure: attnkit measure edits --only writes JSON, and measure report turns it into markdown', () => {
  const run = (...args: string[]) =>
    execFileSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/cli/main.ts'), ...args], {
      cwd: repoRoot,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const json = join(dir, 'edits.json');
  const md = join(dir, 'results.md');
  const common = ['--model', goldenDir(), '--threads', '1', '-q'];
  run('measure', 'edits', '--only', 'heatmaps', '--seeds', '1', '--steps', '1', '--out', json, ...common);
  const r = JSON.parse(readFileSync(json, 'utf8'));
  assert.deepEqual(r.config.only, ['heatmaps']);
  assert.equal(r.heatMaps.seeds, 1);
  run('measure', 'report', '--edits', json, '--out', md);
  const text = readFileSync(md, 'utf8');
  assert.match(text, /### Heat-maps per object word — 1 rendered scenes/);
  assert.match(text, /tiny-sd-a/);
  // a file that is not JSON, or not the JSON of that command, is named with its flag
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{bad');
  assert.throws(
    () => run('measure', 'report', '--edits', bad, '--out', md),
    /--edits .*bad.json is not JSON/,
  );
  writeFileSync(bad, '{"config": {}}');
  assert.throws(
    () => run('measure', 'report', '--eval', bad, '--out', md),
    /--eval .*bad.json is not what attnkit eval --out writes: no "summary", "headline"/,
  );
});

test('measure: with a model whose edits change nothing, the scores say so (rendered scenes as images)', () => {
  // Every source prompt "generates" its rendered scene; every other prompt of a job gets the job's source
  // image back: an editor that does nothing. The scoring paths over valid scenes then have known answers.
  const real = StableDiffusion.fromPretrained(goldenDir());
  const table = new Map<string, Tensor>();
  const add = (
    m: keyof typeof MEASUREMENT_OFFSETS,
    options: Parameters<typeof sampleScene>[1],
    feature = false,
  ) => {
    for (let i = 0; i < 12; i++) {
      const scene = sampleScene(heldOutSeed(MEASUREMENT_OFFSETS[m] + i), options);
      const o = scene.objects[0]!;
      const text = feature
        ? captionOfSpec({ objects: [{ color: o.color, shape: o.shape, cell: o.cell }], relations: [] }).text
        : captionOf(scene).text;
      table.set(text, renderScene(scene).image);
    }
  };
  add('colour-swap', { objects: [1, 2] });
  add('shape-swap', { objects: [2, 3] });
  add('reweight', { objects: 1 });
  add('feature', { objects: 1 }, true);
  const fake = Object.create(real) as StableDiffusion;
  fake.generate = (o) => {
    let last: Tensor | undefined;
    const images = (o.prompt as string[]).map((p) => {
      last = table.get(p) ?? last;
      assert.ok(last, `no image for the first prompt "${p}"`);
      return last;
    });
    return { images: concat(images, 0), latents: o.latents! };
  };
  const r = measureEdits(fake, { seeds: 3, only: ['colour-swap', 'shape-swap', 'reweight', 'feature'] });
  const colour = r.colourSwap!.methods.replace!;
  assert.equal(colour.scenes, 3);
  assert.equal(colour.changedRate, 0);
  assert.ok(colour.meanIoU! > 0.999);
  assert.equal(colour.meanMaeOutside, 0);
  const shape = r.shapeSwap!.methods['replace+blend']!;
  assert.equal(shape.scenes, 3);
  assert.equal(shape.changedRate, 0);
  assert.ok(shape.othersCount >= 3);
  assert.ok(shape.othersMeanIoU! > 0.999);
  const rw = r.reweight!;
  assert.equal(rw.scenes, 3);
  assert.equal(rw.monotoneEither, 0);
  assert.equal(new Set(rw.meanArea).size, 1);
  const f = r.feature!;
  assert.equal(f.scenes, 3);
  for (const m of ['masactrl', 'masactrl-mask', 'pnp', 'none']) {
    assert.equal(f.methods[m]!.position, 0, m);
    assert.ok(f.methods[m]!.meanColourError! < 1e-6, m);
    assert.equal(f.methods[m]!.meanBackgroundError, 0, m);
  }
});
