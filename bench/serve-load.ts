// Load on `attnkit serve` (issue 30), loopback only and bounded. Fires N concurrent generate requests on the
// built-in model and follows every accepted job to its end: each request must end as a completed job or a 429
// (none lost); reports p50 / p95 latency (submit → done) and throughput (completed jobs per second of wall time).
// Each job is followed as a client would, by its server-sent events (polling every job's record every 100 ms cost
// the server's process, on the same cores as the workers, more CPU than Redis and the server's own work together).
// With --redis it also reports CPU seconds per job of each process (this one: the server and its clients; Redis;
// the workers with their model workers), from /proc: the share that is not the model.
//
//   node --import tsx bench/serve-load.ts                     in-process queue (bound 16), 50 requests
//   node --import tsx bench/serve-load.ts --redis 1,2         BullMQ on a throwaway redis-server, 1 then 2
//                                                             `attnkit worker` processes; the 2/1 throughput ratio
//   options: --requests 50 --steps 10 --queue 16 --worker-threads 1 --pin (worker i on core i, taskset)
//            --out bench/results/serve-load.json
//
// Throughput only scales with workers on a machine with a core free per worker: measure on a quiet machine.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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

/** CPU seconds (user + system) of processes, from /proc (Linux). */
interface CpuSeconds {
  server: number;
  redis?: number;
  workers?: number;
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
  /** CPU seconds per completed job, by process. */
  cpuSecondsPerJob?: CpuSeconds;
}

const CLOCK_TICKS = 100; // Linux's USER_HZ

/** CPU seconds of `pid` and every process under it (the worker, its re-launched child, its model worker). */
function treeCpuSeconds(pid: number): number {
  let stats: { pid: number; ppid: number; ticks: number }[];
  try {
    stats = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .flatMap((d) => {
        try {
          // fields after the command's closing parenthesis: state ppid … utime (14) stime (15)
          const f = readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ');
          return [{ pid: Number(d), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) }];
        } catch {
          return []; // ended meanwhile
        }
      });
  } catch {
    return Number.NaN; // no /proc
  }
  let total = 0;
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    for (const s of stats) {
      if (s.pid === p) total += s.ticks;
      if (s.ppid === p) todo.push(s.pid);
    }
  }
  return total / CLOCK_TICKS;
}

function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Follows a job's server-sent events to its end: the status it ended with. */
async function follow(url: string, id: string): Promise<string> {
  const res = await fetch(`${url}/api/jobs/${id}/events`);
  let last = '';
  let tail = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    tail += decoder.decode(chunk as Uint8Array, { stream: true });
    for (const m of tail.matchAll(/^event: (\w+)$/gm)) last = m[1]!;
    tail = tail.slice(Math.max(0, tail.lastIndexOf('\n\n')));
  }
  return last;
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
async function load(
  name: string,
  makeQueue: (b: JobBoard) => Promise<JobQueue>,
  n: number,
  steps: number,
  pids: { redis?: number; workers?: number[] } = {},
) {
  const cpu = () => ({
    server: ownCpuSeconds(),
    ...(pids.redis ? { redis: treeCpuSeconds(pids.redis) } : {}),
    ...(pids.workers ? { workers: pids.workers.reduce((a, p) => a + treeCpuSeconds(p), 0) } : {}),
  });
  const out = mkdtempSync(path.join(os.tmpdir(), 'attnkit-serve-load-'));
  const board = new JobBoard(out);
  const queue = await makeQueue(board);
  const app = buildServer({ board, queue, models: Object.keys(MODELS) });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const cpu0 = cpu();
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
      const status = await follow(url, a.job.id);
      return { status, seconds: (performance.now() - a.at) / 1000 };
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = cpu();
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
    cpuSecondsPerJob: Object.fromEntries(
      Object.entries(cpu1).map(([k, v]) => [
        k,
        (v - cpu0[k as keyof CpuSeconds]!) / Math.max(1, done.length),
      ]),
    ) as unknown as CpuSeconds,
  };
  console.log(JSON.stringify(result));
  return result;
}

async function withRedis<T>(fn: (url: string, pid: number) => Promise<T>): Promise<T> {
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
    return await fn(`redis://127.0.0.1:${port}`, redis.pid!);
  } finally {
    redis.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `count` worker processes on `url`, resolved once each says it takes jobs. */
async function startWorkers(
  url: string,
  count: number,
  threads: string,
  pin: boolean,
): Promise<ChildProcess[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const cmd = [
        process.execPath,
        '--import',
        'tsx',
        'src/cli/main.ts',
        'worker',
        '--redis',
        url,
        '--threads',
        threads,
      ];
      // --pin: worker i and its model worker on core i (taskset's affinity is inherited), one core per worker as a
      // deployment runs them; unpinned, one worker's two processes spread over both cores
      const argv = pin ? ['taskset', '-c', String(i % os.cpus().length), ...cmd] : cmd;
      const w = spawn(argv[0]!, argv.slice(1), {
        cwd: root,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
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
  const pin = process.argv.includes('--pin');
  const runs: RunResult[] = [];
  if (!redis) runs.push(await load('in-process', async (b) => new LocalQueue(b, MODELS, bound), n, steps));
  else
    await withRedis(async (url, redisPid) => {
      for (const count of redis) {
        const workers = await startWorkers(url, count, arg('--worker-threads', '1'), pin);
        // warm-up jobs (two per worker): the model workers start and load the model before the clock runs
        await load(`bullmq warm-up`, (b) => BullQueue.connect(b, url, 10_000), 2 * count, 2);
        const pids = { redis: redisPid, workers: workers.map((w) => w.pid!) };
        runs.push(
          await load(`bullmq, ${count} workers`, (b) => BullQueue.connect(b, url, 10_000), n, steps, pids),
        );
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
    ...(redis ? { workerThreads: Number(arg('--worker-threads', '1')), pinned: pin } : {}),
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
