// Timing and machine info shared by every bench in bench/.
//
// A measurement is: `warmup` untimed runs, then `repeats` timed samples; each sample times `inner` calls in a
// row and divides, so a sample of a µs-scale op is long enough for the clock. We report the median and the
// minimum per call. The project machine is shared and noisy, so benches compare implementations measured in
// the same run (ratios against a baseline), never against numbers from another run.

import { createRequire } from 'node:module';
import os from 'node:os';

export interface TimingOptions {
  /** Untimed calls before sampling (compiles sessions, warms caches and the JIT). */
  warmup?: number;
  /** Timed samples. */
  repeats?: number;
  /** Calls per sample; the sample's time is divided by this. */
  inner?: number;
}

export interface Timing {
  /** Median seconds per call over the samples. */
  median: number;
  /** Fastest sample, seconds per call. */
  min: number;
  /** Number of samples and calls per sample. */
  repeats: number;
  inner: number;
}

/** One measured implementation of one case (a row of the printed table). */
export interface BenchRow {
  /** What is measured, e.g. "gemm 1024³ f32". */
  case: string;
  /** Who runs it, e.g. "attnkit", "onnxruntime session (public API)". */
  impl: string;
  /** Seconds per call. */
  timing: Timing;
  /** Work per call in floating-point operations, when that makes sense (GFLOP/s is derived from it). */
  flops?: number;
  /** Median GFLOP/s (flops / median). */
  gflops?: number;
  /** Median time of the case's baseline row divided by this row's median: > 1 means faster than it. */
  speedVsBaseline?: number;
  /** The same ratio on the fastest samples (less sensitive to load from other processes). */
  speedVsBaselineMin?: number;
  /** True on the row that the others in the case are compared with. */
  baseline?: boolean;
  note?: string;
}

/** A target from the issue, checked against this run's numbers. */
export interface Target {
  name: string;
  /** Human-readable requirement, e.g. "≥ 0.9× onnxruntime session". */
  requirement: string;
  /** The measured value in the requirement's unit. */
  value: number;
  unit: string;
  pass: boolean;
}

export interface BenchResult {
  name: string;
  rows: BenchRow[];
  targets: Target[];
  notes: string[];
}

/** What every bench module exports; bench/run.ts keeps a list of them. */
export interface Bench {
  name: string;
  /** One-line description shown by `npm run bench -- --list`. */
  description: string;
  run(): Promise<BenchResult>;
}

export interface MachineInfo {
  cores: number;
  cpu: string;
  platform: string;
  arch: string;
  totalMemGiB: number;
  node: string;
  onnxruntime: string;
  /** 1-minute load average when the info was taken: other work on the (shared) machine. */
  loadAverage1m: number;
}

const require = createRequire(import.meta.url);

function packageVersion(name: string): string {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

export function machineInfo(): MachineInfo {
  return {
    cores: os.availableParallelism(),
    cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
    platform: `${os.platform()} ${os.release()}`,
    arch: os.arch(),
    totalMemGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    onnxruntime: packageVersion('onnxruntime-node'),
    loadAverage1m: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
  };
}

export { packageVersion };

function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

function summarize(samples: number[], inner: number): Timing {
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, repeats: samples.length, inner };
}

/** Times a synchronous function. */
export function timeSync(fn: () => unknown, opts: TimingOptions = {}): Timing {
  const { warmup = 3, repeats = 10, inner = 1 } = opts;
  for (let i = 0; i < warmup; i++) fn();
  const samples: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = now();
    for (let i = 0; i < inner; i++) fn();
    samples.push((now() - t0) / inner);
  }
  return summarize(samples, inner);
}

/** Times an async function, awaiting every call before the next. */
export async function timeAsync(fn: () => Promise<unknown>, opts: TimingOptions = {}): Promise<Timing> {
  const { warmup = 3, repeats = 10, inner = 1 } = opts;
  for (let i = 0; i < warmup; i++) await fn();
  const samples: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = now();
    for (let i = 0; i < inner; i++) await fn();
    samples.push((now() - t0) / inner);
  }
  return summarize(samples, inner);
}

/**
 * Measures several implementations of one case in rounds: each round runs every implementation in turn, as a
 * block of `warmup` untimed calls and `repeats` timed samples; the samples of all rounds are pooled. Rounds
 * spread a burst of load from another process on the shared machine over all implementations alike; blocks
 * (rather than alternating single calls) keep one onnxruntime session's thread pool from running into the
 * next one's, which would measure the pools' contention rather than the implementations.
 */
export async function timeRounds(
  fns: readonly (() => unknown)[],
  opts: TimingOptions & { rounds?: number } = {},
): Promise<Timing[]> {
  const { rounds = 3, warmup = 3, repeats = 5, inner = 1 } = opts;
  const samples: number[][] = fns.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let f = 0; f < fns.length; f++) {
      const fn = fns[f]!;
      for (let i = 0; i < warmup; i++) {
        const p = fn();
        if (p instanceof Promise) await p;
      }
      for (let k = 0; k < repeats; k++) {
        const t0 = now();
        // sync functions are not awaited: an `await` would add a microtask turn to every call
        for (let i = 0; i < inner; i++) {
          const p = fn();
          if (p instanceof Promise) await p;
        }
        samples[f]!.push((now() - t0) / inner);
      }
    }
  }
  return samples.map((s) => summarize(s, inner));
}

/** Fills the baseline comparison and GFLOP/s of a case's rows; the first row with `baseline` is the baseline. */
export function compare(rows: BenchRow[]): BenchRow[] {
  const base = rows.find((r) => r.baseline);
  for (const r of rows) {
    if (r.flops !== undefined) r.gflops = r.flops / r.timing.median / 1e9;
    if (base) {
      r.speedVsBaseline = base.timing.median / r.timing.median;
      r.speedVsBaselineMin = base.timing.min / r.timing.min;
    }
  }
  return rows;
}

/** Formats seconds with a unit that keeps 3 significant digits readable. */
export function formatSeconds(s: number): string {
  if (s < 1e-3) return `${(s * 1e6).toFixed(s < 1e-5 ? 2 : 1)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(s < 1e-2 ? 2 : 1)} ms`;
  return `${s.toFixed(2)} s`;
}

/** Renders rows of strings as an aligned text table (first row = header). */
export function textTable(rows: readonly (readonly string[])[], alignRight: readonly boolean[] = []): string {
  const widths: number[] = [];
  for (const row of rows) {
    for (let i = 0; i < row.length; i++) widths[i] = Math.max(widths[i] ?? 0, [...(row[i] as string)].length);
  }
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => {
        const pad = ' '.repeat((widths[i] ?? 0) - [...c].length);
        return alignRight[i] ? pad + c : c + pad;
      })
      .join('  ')
      .trimEnd();
  const [head, ...body] = rows;
  if (!head) return '';
  return [line(head), widths.map((w) => '─'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}
