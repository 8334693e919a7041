// ShapesEval over many prompts: per-prompt reports, the summary rates, and both as a text table and JSON
// (what `attnkit eval` prints and writes).

import type { Tensor } from '../../index.js';
import type { DetectOptions } from './detect.js';
import { evaluate, type ObjectReport, type SceneReport } from './eval.js';
import { cellPhrase } from './grid.js';
import type { ObjectSpec, SceneSpec } from './spec.js';

/** `correct` of `total`; `rate` is null when total is 0. */
export interface Rate {
  correct: number;
  total: number;
  rate: number | null;
}

/**
 * ShapesEval's rates over many images: all correct, per object count, and per attribute (colour, shape, size,
 * position, relations, background, count).
 */
export interface EvalSummary {
  prompts: number;
  /** Scenes with every object, relation and background right. */
  allCorrect: Rate;
  /** Per prompt object count (1, 2, 3): scenes whose every object has the right colour and shape, and all correct. */
  byObjectCount: Record<string, { colorShape: Rate; allCorrect: Rate }>;
  objects: Rate;
  color: Rate;
  shape: Rate;
  colorShape: Rate;
  /** Over objects whose prompt gives a size / a cell. */
  size: Rate;
  position: Rate;
  /**
   * Over objects whose prompt gives a cell: the matched object in the named row / column (chance 1/3 each,
   * against 1/9 for the cell) — whether a model that misses cells has learned half of them.
   */
  positionRow: Rate;
  positionColumn: Rate;
  relations: Rate;
  background: Rate;
  /** Scenes where exactly the prompt's number of objects was detected. */
  count: Rate;
}

/** An image to score and its prompt (a spec or caption text), with an optional name. */
export interface EvalItem {
  image: Tensor;
  prompt: SceneSpec | string;
  /** A name for the row (a file name, a seed). */
  id?: string;
}

/** Reports of many images and their summary. */
export interface EvalTable {
  rows: { id: string | null; report: SceneReport }[];
  summary: EvalSummary;
}

function rate(flags: readonly boolean[]): Rate {
  const correct = flags.filter(Boolean).length;
  return { correct, total: flags.length, rate: flags.length > 0 ? correct / flags.length : null };
}

const colorShape = (o: ObjectReport) => o.color && o.shape;

/** The summary rates of a list of reports. */
export function summarize(reports: readonly SceneReport[]): EvalSummary {
  const objects = reports.flatMap((r) => r.objects);
  const byObjectCount: EvalSummary['byObjectCount'] = {};
  for (const n of [...new Set(reports.map((r) => r.objects.length))].sort()) {
    const group = reports.filter((r) => r.objects.length === n);
    byObjectCount[String(n)] = {
      colorShape: rate(group.map((r) => r.objects.every(colorShape))),
      allCorrect: rate(group.map((r) => r.allCorrect)),
    };
  }
  const said = <T>(xs: readonly (T | null)[]) => xs.filter((x): x is T => x !== null);
  const located = objects.filter((o) => o.spec.cell);
  const inLine = (axis: 'row' | 'col') =>
    rate(located.map((o) => o.detected !== null && o.detected.cell[axis] === o.spec.cell?.[axis]));
  return {
    prompts: reports.length,
    allCorrect: rate(reports.map((r) => r.allCorrect)),
    byObjectCount,
    objects: rate(objects.map((o) => o.correct)),
    color: rate(objects.map((o) => o.color)),
    shape: rate(objects.map((o) => o.shape)),
    colorShape: rate(objects.map(colorShape)),
    size: rate(said(objects.map((o) => o.size))),
    position: rate(said(objects.map((o) => o.position))),
    positionRow: inLine('row'),
    positionColumn: inLine('col'),
    relations: rate(reports.flatMap((r) => r.relations.map((x) => x.holds))),
    background: rate(said(reports.map((r) => r.background.correct))),
    count: rate(reports.map((r) => r.countCorrect)),
  };
}

/** ShapesEval of every item, in order, and the summary. */
export function evaluateMany(items: Iterable<EvalItem>, options: DetectOptions = {}): EvalTable {
  const rows = [...items].map((item) => ({
    id: item.id ?? null,
    report: evaluate(item.image, item.prompt, options),
  }));
  return { rows, summary: summarize(rows.map((r) => r.report)) };
}

const percent = (r: Rate) => (r.rate === null ? '—' : `${(100 * r.rate).toFixed(1)}%`);

/** The summary as an aligned text table: metric, correct, total, rate. */
export function formatSummary(summary: EvalSummary): string {
  const lines: [string, Rate][] = [['scenes all correct', summary.allCorrect]];
  for (const [n, g] of Object.entries(summary.byObjectCount)) {
    lines.push([`  ${n}-object prompts: colour + shape`, g.colorShape]);
    lines.push([`  ${n}-object prompts: all correct`, g.allCorrect]);
  }
  lines.push(
    ['objects correct', summary.objects],
    ['  colour', summary.color],
    ['  shape', summary.shape],
    ['  colour + shape', summary.colorShape],
    ['  size (where given)', summary.size],
    ['  position (where given)', summary.position],
    ['    its row', summary.positionRow],
    ['    its column', summary.positionColumn],
    ['relations (where given)', summary.relations],
    ['background (where given)', summary.background],
    ['object count exact', summary.count],
  );
  // a summary read from JSON written before a rate existed lacks it: leave its line out
  const present = lines.filter(([, r]) => r !== undefined);
  const width = Math.max(...present.map(([name]) => name.length));
  const header = `${'metric'.padEnd(width)}  ${'correct'.padStart(7)}  ${'total'.padStart(7)}  ${'rate'.padStart(7)}`;
  const body = present.map(
    ([name, r]) =>
      `${name.padEnd(width)}  ${String(r.correct).padStart(7)}  ${String(r.total).padStart(7)}  ${percent(r).padStart(7)}`,
  );
  return [`ShapesEval — ${summary.prompts} prompts`, header, '-'.repeat(header.length), ...body].join('\n');
}

function describe(o: ObjectSpec | ObjectReport['detected']): string {
  if (o === null) return 'nothing';
  const size = o.size ? `${o.size} ` : '';
  const cell = o.cell ? ` ${cellPhrase(o.cell)}` : '';
  return `${size}${o.color} ${o.shape}${cell}`;
}

const mark = (ok: boolean | null) => (ok === null ? '·' : ok ? '✓' : '✗');

/** One report as text: a line per prompt object, relation and the background. */
export function formatReport(report: SceneReport): string {
  const head = `${mark(report.allCorrect)} ${report.caption ?? '(spec)'}`;
  const objects = report.objects.map((o) => {
    const checks = `colour ${mark(o.present ? o.color : false)} shape ${mark(o.present ? o.shape : false)} size ${mark(o.size)} position ${mark(o.position)}`;
    return `  ${mark(o.correct)} ${describe(o.spec).padEnd(42)} → ${describe(o.detected).padEnd(42)} ${checks}`;
  });
  const relations = report.relations.map((r) => {
    const { subject, relation, object } = r.relation;
    const name = (i: number) => {
      const o = report.spec.objects[i]!;
      return `${o.color} ${o.shape}`;
    };
    return `  ${mark(r.holds)} ${name(subject)} ${relation} ${name(object)}`;
  });
  const bg = report.background;
  const background =
    bg.expected === null ? [] : [`  ${mark(bg.correct)} ${bg.expected} background → ${bg.detected}`];
  const counts = `  objects: ${report.counts.correct}/${report.counts.expected} correct, ${report.counts.detected} detected`;
  return [head, ...objects, ...relations, ...background, counts].join('\n');
}

/** The whole table as text: one report per row, then the summary. */
export function formatTable(table: EvalTable): string {
  const rows = table.rows.map(({ id, report }) => (id ? `[${id}] ` : '') + formatReport(report));
  return [...rows, '', formatSummary(table.summary)].join('\n');
}

/** The table as JSON text (summary first). */
export function tableToJSON(table: EvalTable): string {
  return JSON.stringify({ summary: table.summary, rows: table.rows }, null, 2);
}
