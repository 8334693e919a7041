// The issue-5 measurements end to end: every measurement on tiny-sd-a with one seed and two steps (well-formed
// results and markdown), the CLI's JSON and report, and the scores of a model whose edits change nothing.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  captionOf,
  captionOfSpec,
  editsMarkdown,
  heldOutSeed,
  MEASUREMENT_OFFSETS,
  MEASUREMENTS,
  measureEdits,
  renderScene,
  sampleScene,
} from '../../../src/lab/index.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { concat, type Tensor } from '../../../src/tensor/index.js';
import { goldenDir, repoRoot } from '../../helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-measure-'));
after(() => rmSync(dir, { recursive: true, force: true }));

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
