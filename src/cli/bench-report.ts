// `attnkit bench` results: the rows of each section, the printed tables, and the targets of issue 6
// checked against this run's numbers.

import type { ShapesScore } from './bench-shapes.js';

export interface Row {
  method: string;
  /** Median seconds per call / per denoising step, and the samples. */
  seconds: number;
  samples: number[];
  /** Peak RSS over the worker's RSS before the timed calls (bytes). */
  peak: number;
  /** The worker's output file (not written to the JSON). */
  out: string;
  note?: string;
  /** Reference seconds / these seconds (> 1: faster than the softmax reference). */
  speedup?: number;
  speedupVsFlash?: number;
  /** Against the reference's output. */
  quality?: { mse: number; relative: number; maxAbs: number };
  shapes?: ShapesScore;
}

export interface Section {
  name: string;
  key: string;
  rows: Row[];
}

export interface Target {
  name: string;
  requirement: string;
  measured: string;
  pass: boolean;
}

const fmt = (x: number | undefined, digits = 2) =>
  x === undefined || Number.isNaN(x) ? '—' : x.toFixed(digits);
const sci = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '—' : x.toExponential(1));
const pct = (x: number | undefined) => (x === undefined ? '—' : `${(100 * x).toFixed(1)}%`);
const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;

function table(rows: readonly (readonly string[])[]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? '')].length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(rows[0] ?? []), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join(
    '\n',
  );
}

/** The section as a text table (also used for docs/performance.md). */
export function formatSection(s: Section): string {
  const shapes = s.rows.some((r) => r.shapes);
  const head = ['method', 's/step', 'peak', 'vs softmax', 'vs flash', 'MSE', 'rel. MSE', 'max |Δ|'];
  if (shapes) head.push('ShapesEval', 'objects', 'mean IoU');
  const body = s.rows.map((r) => {
    const row = [r.method, fmt(r.seconds, 3), mb(r.peak), `${fmt(r.speedup)}×`, `${fmt(r.speedupVsFlash)}×`];
    row.push(sci(r.quality?.mse), sci(r.quality?.relative), sci(r.quality?.maxAbs));
    if (shapes) row.push(pct(r.shapes?.accuracy), pct(r.shapes?.objectAccuracy), fmt(r.shapes?.meanIoU));
    return row;
  });
  return table([head, ...body]);
}

export function printSection(s: Section, targets?: readonly Target[]): void {
  console.log(`\n${s.name}\n`);
  if (targets)
    console.log(
      table([
        ['target', 'requirement', 'measured', ''],
        ...targets.map((t) => [t.name, t.requirement, t.measured, t.pass ? 'PASS' : 'FAIL']),
      ]),
    );
  else console.log(formatSection(s));
}

/** Issue 6's "done when" figures, from the sections present in this run. */
export function benchTargets(sections: readonly Section[]): Target[] {
  const row = (key: string, m: string) =>
    sections.find((s) => s.key === key)?.rows.find((r) => r.method === m);
  const out: Target[] = [];
  const add = (name: string, requirement: string, measured: string, pass: boolean) =>
    out.push({ name, requirement, measured, pass });
  const [soft, chunked] = [row('attention', 'softmax'), row('attention', 'chunked')];
  if (soft && chunked) {
    const q = chunked.quality?.maxAbs ?? Number.NaN;
    add('chunked exact', 'max |Δ| ≤ 1e-5 vs softmax (4096 tokens)', sci(q), q <= 1e-5);
    add(
      'chunked memory',
      'peak ≤ 1/8 of softmax',
      `${fmt(chunked.peak / soft.peak, 3)} of it`,
      chunked.peak <= soft.peak / 8,
    );
    add(
      'chunked time',
      'time ≤ 1.1× softmax',
      `${fmt(chunked.seconds / soft.seconds)}×`,
      chunked.seconds <= 1.1 * soft.seconds,
    );
  }
  const tome = row('unet64', 'tome');
  if (tome)
    add(
      'ToMe 0.5 speed (64×64)',
      '≥ 1.5× faster UNet than without (flash)',
      `${fmt(tome.speedupVsFlash)}×`,
      (tome.speedupVsFlash ?? 0) >= 1.5,
    );
  const tomeRef = row('unet64', 'tome+softmax');
  if (tomeRef)
    add(
      'ToMe 0.5 speed, reference attn',
      '≥ 1.5× faster than softmax',
      `${fmt(tomeRef.speedup)}×`,
      (tomeRef.speedup ?? 0) >= 1.5,
    );
  for (const size of [32, 64]) {
    const a = row(`unet${size}`, 'agent');
    if (a)
      add(
        `agent speed (${size}×${size})`,
        size === 64 ? '≥ 1.3× faster than flash' : 'report',
        `${fmt(a.speedupVsFlash)}× (${fmt(a.speedup)}× vs softmax)`,
        size !== 64 || (a.speedupVsFlash ?? 0) >= 1.3,
      );
  }
  const drop = (m: string) => {
    const [ref, r] = [row('shapes', 'softmax')?.shapes, row('shapes', m)?.shapes];
    return ref && r ? 100 * (ref.accuracy - r.accuracy) : undefined;
  };
  for (const [m, limit] of [
    ['tome', 3],
    ['agent', 5],
    ['caching', 3],
    ['block-caching', 3],
  ] as const) {
    const d = drop(m);
    if (d !== undefined) add(`${m} ShapesEval drop`, `≤ ${limit} points`, `${fmt(d, 1)} points`, d <= limit);
  }
  for (const m of ['caching', 'block-caching']) {
    const cache = row('shapes', m) ?? row('loop', m);
    if (cache)
      add(
        `${m} speed`,
        `≥ 1.3× faster generation (${row('shapes', m) ? 'built-in model' : 'SD1.5 loop'}) than flash`,
        `${fmt(cache.speedupVsFlash)}×`,
        (cache.speedupVsFlash ?? 0) >= 1.3,
      );
  }
  return out;
}
