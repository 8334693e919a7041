// Support for `attnkit bench`: process memory (peak RSS), timing, and running one measurement in a child
// process of its own. The SD1.5 UNet with random weights it measures is src/models/random-sd15.ts.

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { untunedEnvironment } from '../process/malloc-tuning.js';

import type { Tensor } from '../tensor/index.js';

let collect: (() => void) | undefined;

/**
 * Collects garbage and restarts the peak-RSS counter (Linux: clear_refs 5), so that the next `memory().hwm`
 * is the peak of what runs from here on, not of the warm-up before.
 */
export function startPeak(): void {
  if (!collect) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  collect();
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // not Linux: the high-water mark stays that of the whole process
  }
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export const now = (): number => performance.now() / 1000;

export function saveF32(file: string, a: Tensor): void {
  const d = a.data as Float32Array;
  writeFileSync(file, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
}

export function loadF32(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Mean squared difference, and the same relative to the reference's mean square. */
export function mse(a: Float32Array, ref: Float32Array): { mse: number; relative: number; maxAbs: number } {
  if (a.length !== ref.length) return { mse: Number.NaN, relative: Number.NaN, maxAbs: Number.NaN };
  let se = 0;
  let ss = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] as number) - (ref[i] as number);
    se += d * d;
    ss += (ref[i] as number) ** 2;
    if (!(Math.abs(d) <= maxAbs)) maxAbs = Math.abs(d); // NaN propagates
  }
  return { mse: se / a.length, relative: se / Math.max(ss, 1e-30), maxAbs };
}

/**
 * Runs `attnkit bench --worker <json>` in a child process (so that its peak memory is its own) and returns
 * the object it prints on its last `RESULT ` line; its stderr passes through.
 */
export function runWorker<T>(job: object, threads?: number): Promise<T> {
  const script = process.argv[1] as string;
  const threadFlags = threads ? ['--threads', String(threads)] : [];
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      [...process.execArgv, script, 'bench', ...threadFlags, '--worker', JSON.stringify(job)],
      // the default allocator: a tuned one keeps the warm-up's freed memory resident
      // (src/process/malloc-tuning.ts), and the peak over the RSS before the timed calls would then miss what
      // those calls allocate
      { stdio: ['ignore', 'pipe', 'inherit'], env: untunedEnvironment(process.env) },
    );
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.on('error', reject);
    p.on('close', (code, signal) => {
      const line = out
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) {
        reject(
          new Error(
            `bench worker ${JSON.stringify(job)} failed (exit ${code ?? signal}):\n${out.slice(-2000)}`,
          ),
        );
        return;
      }
      resolve(JSON.parse(line.slice('RESULT '.length)) as T);
    });
  });
}
