// Load on `attnkit serve` (issue 30), loopback only and bounded. Fires N concurrent generate requests on the
// built-in model and follows every accepted job to its end: each request must end as a completed job or a 429
// (none lost); reports p50 / p95 latency (submit → done) and throughput (completed jobs per second of wall time).
//
//   node --import tsx bench/serve-load.ts                     in-process queue (bound 16), 50 requests
//   node --import tsx bench/serve-load.ts --redis 1,2         BullMQ on a throwaway redis-server, 1 then 2
//                                                             `attnkit worker` processes; the 2/1 throughput ratio
//   options: --requests 50 --steps 10 --queue 16 --worker-threads 1 --out bench/results/serve-load.json
//
// Throughput only scales with workers on a machine with a core free per worker: measure on a quiet machine.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILTIN_MODEL } from '../src/cli/models.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { BullQueue } from '../src/serve/bull-queue.js';
import { JobBoard, type JobQueue, type JobRecord } from '../src/serve/jobs.js';
import { LocalQueue } from '../src/serve/local-queue.js';
import { buildServer } from '../src/serve/server.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MODELS = { 'shapes-v1': BUILTIN_MODEL };

function arg(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at >= 0 && process.argv[at + 1] ? process.argv[at + 1]! : fallback;
}

interface RunResult {
  queue: string;
  requests: number;
  accepted: number;
  refused429: number;
  completed: number;
  failed: number;
  lost: number;
  wallSeconds: number;
  throughputPerSecond: number;
  latencySeconds: { p50: number; p95: number; max: number };
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** N concurrent generate requests against a server over `queue`, each followed to its end. */
async function load(name: string, makeQueue: (b: JobBoard) => Promise<JobQueue>, n: number, steps: number) {
  const out = mkdtempSync(path.join(os.tmpdir(), 'attnkit-serve-load-'));
  const board = new JobBoard(out);
  const queue = await makeQueue(board);
  const app = buildServer({ board, queue, models: Object.keys(MODELS) });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const t0 = performance.now();
  const answers = await Promise.all(
    Array.from({ length: n }, (_, i) =>
      fetch(`${url}/api/jobs/generate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'a red circle on the left', steps, seed: i }),
      }).then(async (r) => ({ status: r.status, job: (await r.json()) as JobRecord, at: performance.now() })),
    ),
  );
  const accepted = answers.filter((a) => a.status === 202);
  const ends = await Promise.all(
    accepted.map(async (a) => {
      for (;;) {
        const j = (await (await fetch(`${url}/api/jobs/${a.job.id}`)).json()) as JobRecord;
        if (j.finishedAt !== undefined)
          return { status: j.status, seconds: (performance.now() - a.at) / 1000 };
        await new Promise((r) => setTimeout(r, 100));
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  await queue.close();
  await app.close();
  rmSync(out, { recursive: true, force: true });
  const done = ends.filter((e) => e.status === 'done');
  const lat = done.map((e) => e.seconds).sort((a, b) => a - b);
  const refused = answers.filter((a) => a.status === 429).length;
  const result: RunResult = {
    queue: name,
    requests: n,
    accepted: accepted.length,
    refused429: refused,
    completed: done.length,
    failed: ends.length - done.length,
    lost: n - done.length - refused - (ends.length - done.length),
    wallSeconds: wall,
    throughputPerSecond: done.length / wall,
    latencySeconds: { p50: quantile(lat, 0.5), p95: quantile(lat, 0.95), max: lat.at(-1) ?? Number.NaN },
  };
  console.log(JSON.stringify(result));
  return result;
}

async function withRedis<T>(fn: (url: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'attnkit-redis-'));
  const port = await freePort();
  const redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve) => {
    redis.stdout!.on('data', (d: Buffer) => d.toString().includes('Ready to accept') && resolve());
  });
  try {
    return await fn(`redis://127.0.0.1:${port}`);
  } finally {
    redis.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `count` worker processes on `url`, resolved once each says it takes jobs. */
async function startWorkers(url: string, count: number, threads: string): Promise<ChildProcess[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const w = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/cli/main.ts', 'worker', '--redis', url, '--threads', threads],
        {
          cwd: root,
          stdio: ['ignore', 'ignore', 'pipe'],
        },
      );
      await new Promise<void>((resolve) => {
        w.stderr!.on('data', (d: Buffer) => d.toString().includes('taking jobs') && resolve());
      });
      return w;
    }),
  );
}

async function main(): Promise<void> {
  const n = Number(arg('--requests', '50'));
  const steps = Number(arg('--steps', '10'));
  const bound = Number(arg('--queue', '16'));
  const redis = process.argv.includes('--redis') ? arg('--redis', '1,2').split(',').map(Number) : undefined;
  const runs: RunResult[] = [];
  if (!redis) runs.push(await load('in-process', async (b) => new LocalQueue(b, MODELS, bound), n, steps));
  else
    await withRedis(async (url) => {
      for (const count of redis) {
        const workers = await startWorkers(url, count, arg('--worker-threads', '1'));
        // warm-up jobs (two per worker): the model workers start and load the model before the clock runs
        await load(`bullmq warm-up`, (b) => BullQueue.connect(b, url, 10_000), 2 * count, 2);
        runs.push(await load(`bullmq, ${count} workers`, (b) => BullQueue.connect(b, url, 10_000), n, steps));
        for (const w of workers) w.kill();
      }
    });
  const scaling =
    runs.length >= 2 ? runs.at(-1)!.throughputPerSecond / runs[0]!.throughputPerSecond : undefined;
  const report = {
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, loadAverage1m: os.loadavg()[0] },
    note: 'loopback; latency is submit → done; throughput is completed jobs / wall seconds',
    steps,
    ...(redis ? { workerThreads: Number(arg('--worker-threads', '1')) } : {}),
    runs,
    ...(scaling !== undefined ? { throughputRatioLastToFirst: scaling } : {}),
  };
  const out = arg(
    '--out',
    path.join(root, 'bench', 'results', redis ? 'serve-load-bullmq.json' : 'serve-load.json'),
  );
  writeFileAtomic(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`wrote ${out}${scaling !== undefined ? `; throughput ratio ${scaling.toFixed(2)}` : ''}`);
  process.exit(0);
}

await main();
