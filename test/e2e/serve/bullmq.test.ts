// Scale-out on BullMQ: `attnkit serve --redis`'s queue with two `attnkit worker` processes. One worker is killed
// with SIGKILL in the middle of a job; its job stalls, goes back to the queue when its lock expires and is run by
// the other worker: every job completes, and exactly once (the workers' own completion lines are counted). Then a
// running job is cancelled through the API.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { QueueEvents } from 'bullmq';
import { BullQueue, QUEUE_NAME } from '../../../src/serve/bull-queue.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { followJob, post, startServer, type TestServer, until } from './helpers.js';
import { redisMissing, startRedis, type TestRedis } from './redis.js';

const skip = redisMissing();
let redis: TestRedis;
let server: TestServer;
const workers: { proc: ChildProcess; log: string }[] = [];
let events: QueueEvents | undefined;

function startWorker(url: string): { proc: ChildProcess; log: string } {
  const w = {
    proc: spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/main.ts', 'worker', '--redis', url, '--lock-ms', '2000'],
      {
        cwd: repoRoot,
        env: { ...process.env, ATTNKIT_MALLOC_TUNING: '0' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    ),
    log: '',
  };
  w.proc.stderr!.on('data', (d: Buffer) => {
    w.log += d.toString();
  });
  workers.push(w);
  return w;
}

before(async () => {
  if (skip) return;
  redis = await startRedis();
  server = await startServer((board) => BullQueue.connect(board, redis.url, 100));
});
after(async () => {
  await events?.close(); // left open, it would keep the test process alive after a failure
  for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
  await server?.close();
  await redis?.stop();
});

test('serve on BullMQ: a worker killed mid-job loses no job, and each job completes exactly once', {
  skip,
}, async () => {
  const a = startWorker(redis.url);
  const b = startWorker(redis.url);
  await until(
    () => a.log.includes('taking jobs') && b.log.includes('taking jobs'),
    120_000,
    'the workers to start',
  ).catch((e: Error) => {
    throw new Error(`${e.message}; worker a: ${a.log || '(nothing)'}; worker b: ${b.log || '(nothing)'}`);
  });
  events = new QueueEvents(QUEUE_NAME, { connection: { url: redis.url } });
  let stalled = 0;
  events.on('stalled', () => stalled++);
  await events.waitUntilReady();

  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await post(`${server.url}/api/jobs/generate`, {
      prompt: 'a green triangle',
      steps: 40,
      seed: i,
    });
    assert.equal(r.status, 202, r.json.error);
    ids.push(r.json.id);
  }
  // kill worker a without warning while it runs a job (its last 'running' line has no 'completed' after it)
  const midJob = () => {
    const last = [...a.log.matchAll(/running (\S+)/g)].at(-1)?.[1];
    return last !== undefined && !a.log.includes(`completed ${last}`);
  };
  await until(midJob, 60_000, 'worker a to run a job').catch((e: Error) => {
    throw new Error(`${e.message}; worker a: ${a.log}; worker b: ${b.log}`);
  });
  a.proc.kill('SIGKILL');

  // progress and files come back through the server as with the in-process queue
  const first = await followJob(server.url, ids[0]!);
  assert.equal(first.at(-1)!.type, 'done', first.at(-1)!.job.error);
  assert.ok(first.some((e) => e.job.step > 0 && e.job.step < 40));
  const image = await fetch(`${server.url}/api/jobs/${ids[0]}/files/image.png`);
  assert.equal(image.status, 200);
  await until(
    () => server.board.counts().done === ids.length || server.board.counts().failed > 0,
    120_000,
    'every job',
  );
  assert.deepEqual(server.board.counts(), { queued: 0, running: 0, done: 4, failed: 0, cancelled: 0 });
  assert.ok(stalled >= 1, 'the killed worker’s job never stalled: it was not killed mid-job');
  const completions = [...a.log.matchAll(/completed (\S+)/g), ...b.log.matchAll(/completed (\S+)/g)].map(
    (m) => m[1],
  );
  assert.deepEqual([...completions].sort(), [...ids].sort(), 'each job completed exactly once');

  // cancelling an active job stops it on the worker running it (its model worker is ended, the job fails as
  // 'cancelled'), and that worker takes the next job
  const failed = new Map<string, string>();
  events.on('failed', ({ jobId, failedReason }) => failed.set(jobId, failedReason));
  const long = await post(`${server.url}/api/jobs/generate`, { prompt: 'a green triangle', steps: 100 });
  await until(() => server.board.get(long.json.id)!.step >= 2, 60_000, 'the long job to run');
  const cancel = await fetch(`${server.url}/api/jobs/${long.json.id}`, { method: 'DELETE' });
  assert.equal(cancel.status, 200);
  await until(() => failed.has(long.json.id), 30_000, 'the worker to stop the cancelled job');
  assert.equal(failed.get(long.json.id), 'cancelled');
  assert.ok(server.board.get(long.json.id)!.step < 100);
  const next = await post(`${server.url}/api/jobs/generate`, { prompt: 'a green triangle', steps: 3 });
  assert.equal((await followJob(server.url, next.json.id)).at(-1)!.type, 'done');
});
