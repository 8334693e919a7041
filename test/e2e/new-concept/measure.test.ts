// attnkit measure new-concept's parts on tiny-sd-a: its forgetting check scores the 1- and 2-object held-out
// prompts exactly as ShapesEval (runShapesEval) does on the same prompts, and applyConcept's Custom Diffusion
// K/V go in and come out again.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { applyConcept, measureNewConcept } from '../../../src/lab/measure/new-concept.js';
import { summarize } from '../../../src/lab/shapes/index.js';
import { headlineOf, runShapesEval } from '../../../src/lab/shapes-eval.js';
import { writeCustomDiffusion } from '../../../src/methods/weight/custom-diffusion.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { goldenDir } from '../../helpers/fixtures.js';

const sd = StableDiffusion.fromPretrained(goldenDir());
const dir = mkdtempSync(join(tmpdir(), 'attnkit-new-concept-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('forgetting check = ShapesEval on the same 1- and 2-object prompts; concept rows scored', () => {
  const opts = { steps: 2, batchSize: 4 };
  const r = measureNewConcept(sd, { ...opts, prompts: 3, evalPrompts: 8 });
  assert.equal(r.concept.rows.length, 3);
  assert.ok(r.concept.rows.every((row) => row.caption.includes('diamond')));
  const run = runShapesEval(sd, { ...opts, prompts: 8 });
  const reports = run.rows.filter((row) => row.report.objects.length <= 2).map((row) => row.report);
  assert.ok(reports.length >= 4, `${reports.length} prompts of 1–2 objects`);
  assert.deepEqual(r.shapesEval, headlineOf(summarize(reports)));
});

test('applyConcept: Custom Diffusion K/V replace the cross-attention weights, restore puts them back', () => {
  const params = new Map(sd.unet.namedParameters());
  const layers = [...params.keys()]
    .filter((k) => k.endsWith('attn2.to_k.weight'))
    .map((k) => k.slice(0, -12));
  assert.ok(layers.length > 0);
  const base = new Map([...params].map(([k, p]) => [k, p.value]));
  const learned = new Map(
    layers.map((l) => [
      l,
      {
        k: { weight: base.get(`${l}.to_k.weight`)!.add(1) },
        v: { weight: base.get(`${l}.to_v.weight`)!.mul(2) },
      },
    ]),
  );
  const file = join(dir, 'cd.safetensors');
  writeCustomDiffusion(file, learned);
  const restore = applyConcept(sd, 'custom-diffusion', file);
  for (const l of layers) {
    const k = params.get(`${l}.to_k.weight`)!.value.sub(base.get(`${l}.to_k.weight`)!);
    assert.ok(Math.abs(k.min().item() - 1) < 1e-6 && Math.abs(k.max().item() - 1) < 1e-6, l);
    assert.equal(params.get(`${l}.to_q.weight`)!.value, base.get(`${l}.to_q.weight`), 'Q untouched');
  }
  restore();
  for (const [k, p] of params) assert.equal(p.value, base.get(k), k);
});
