import assert from 'node:assert/strict';
import { test } from 'node:test';
import { captionOf } from '../../src/shapes/caption.js';
import { renderScene } from '../../src/shapes/render.js';
import {
  evaluateMany,
  formatReport,
  formatSummary,
  formatTable,
  summarize,
  tableToJSON,
} from '../../src/shapes/report.js';
import { sampleScene } from '../../src/shapes/scene.js';
import { Tensor } from '../../src/tensor/tensor.js';

test('evaluateMany: rates over prompts, text table and JSON', () => {
  const items = [0, 1, 2, 3, 4, 5].map((seed) => {
    const scene = sampleScene(seed);
    return { id: `seed-${seed}`, image: renderScene(scene).image, prompt: captionOf(scene).text };
  });
  // one prompt whose image is blank: its objects are all absent
  const blank = new Tensor(new Float32Array(3 * 4096).fill(0.6), [1, 3, 64, 64]);
  items.push({ id: 'blank', image: blank, prompt: 'a red circle and a blue ring' });
  const table = evaluateMany(items);
  const { summary } = table;
  const objects = items
    .slice(0, 6)
    .reduce((n, it) => n + (it.prompt.match(/ and | above | below | of /g)?.length ?? 0) + 1, 0);
  assert.equal(summary.prompts, 7);
  assert.deepEqual(summary.allCorrect, { correct: 6, total: 7, rate: 6 / 7 });
  assert.deepEqual(summary.objects, { correct: objects, total: objects + 2, rate: objects / (objects + 2) });
  assert.deepEqual(
    summary.byObjectCount['2']!.colorShape.total,
    table.rows.filter((r) => r.report.objects.length === 2).length,
  );
  assert.equal(summary.count.correct, 6);
  assert.deepEqual(summarize([]).allCorrect, { correct: 0, total: 0, rate: null });

  const text = formatSummary(summary);
  assert.match(text, /ShapesEval — 7 prompts/);
  assert.match(text, /scenes all correct\s+6\s+7\s+85\.7%/);
  const row = formatReport(table.rows[6]!.report);
  assert.match(row, /^✗ a red circle and a blue ring/);
  assert.match(row, /✗ red circle\s+→ nothing/);
  assert.match(formatTable(table), /\[blank\] ✗/);
  const json = JSON.parse(tableToJSON(table));
  assert.equal(json.summary.prompts, 7);
  assert.equal(json.rows[6].report.objects[0].present, false);
});
