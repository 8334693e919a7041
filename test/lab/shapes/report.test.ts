import assert from 'node:assert/strict';
import { test } from 'node:test';
import { captionOf, captionOfSpec } from '../../../src/lab/shapes/caption.js';
import { renderScene } from '../../../src/lab/shapes/render.js';
import {
  evaluateMany,
  formatReport,
  formatSummary,
  formatTable,
  summarize,
  tableToJSON,
} from '../../../src/lab/shapes/report.js';
import { sampleScene } from '../../../src/lab/shapes/scene.js';
import { Tensor } from '../../../src/tensor/tensor.js';

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

test('summarize: row and column of the named cell, each counted on its own', () => {
  // a rendered one-object scene whose caption names the cell; then the same image under prompts naming a
  // cell in the same column (row wrong) and one in neither
  let seed = 0;
  let scene = sampleScene(seed, { objects: 1 });
  while (!captionOf(scene).text.match(/ (in|on|at) the /)) scene = sampleScene(++seed, { objects: 1 });
  const o = scene.objects[0]!;
  const prompt = (row: number, col: number) =>
    captionOfSpec({ objects: [{ color: o.color, shape: o.shape, cell: { row, col } }], relations: [] }).text;
  const image = renderScene(scene).image;
  const other = (i: number) => (i + 1) % 3;
  const { summary } = evaluateMany([
    { image, prompt: prompt(o.cell.row, o.cell.col) },
    { image, prompt: prompt(other(o.cell.row), o.cell.col) },
    { image, prompt: prompt(other(o.cell.row), other(o.cell.col)) },
  ]);
  assert.deepEqual(summary.position, { correct: 1, total: 3, rate: 1 / 3 });
  assert.deepEqual(summary.positionColumn, { correct: 2, total: 3, rate: 2 / 3 });
  assert.deepEqual(summary.positionRow, { correct: 1, total: 3, rate: 1 / 3 });
  assert.match(formatSummary(summary), /its column\s+2\s+3\s+66\.7%/);
  // a summary from JSON written before these rates existed still prints, without their lines
  const { positionRow: _r, positionColumn: _c, ...older } = summary;
  const text = formatSummary(older as typeof summary);
  assert.doesNotMatch(text, /its row/);
  assert.match(text, /position \(where given\)\s+1\s+3/);
});
