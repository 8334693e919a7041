// Scale-out on BullMQ over Redis: `attnkit serve --redis <url>` enqueues jobs (BullQueue) and any number of
// `attnkit worker --redis <url>` processes run them (runWorker), each through its own model worker process so
// its event loop keeps renewing the job's lock while the model runs. A worker that dies mid-job stops renewing;
// once the lock expires BullMQ's stalled-job check moves the job back to the waiting list and another worker
// runs it; only the holder of the lock can complete a job, so each job completes once.

import { Job, Queue, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import { HttpError, type JobBoard, type JobQueue, type JobRecord } from './jobs.js';
import { RunnerClient, type RunnerProgress, type RunnerResult } from './runner-client.js';
import type { JobSpec } from './spec.js';

/** The BullMQ queue's name (Redis keys `bull:attnkit-jobs:*`). */
export const QUEUE_NAME = 'attnkit-jobs';

/** A job's data with this field set asks the worker running it to stop it. */
interface Cancellable {
  cancel?: boolean;
}

/** `ready`, or an error naming the Redis URL when it has not settled within 10 s. */
async function withTimeout<T>(ready: Promise<T>, url: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no Redis answered at ${url} within 10 s; start redis-server or fix --redis`)),
      10_000,
    );
  });
  try {
    return await Promise.race([ready, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The server's side: jobs go to Redis, and the queue's events come back to the job board. */
export class BullQueue implements JobQueue {
  private readonly queue: Queue;
  private readonly events: QueueEvents;
  private closing = false;

  private constructor(
    private readonly board: JobBoard,
    url: string,
    private readonly maxQueued: number,
  ) {
    this.queue = new Queue(QUEUE_NAME, { connection: { url } });
    this.events = new QueueEvents(QUEUE_NAME, { connection: { url } });
    // connection errors: ioredis reconnects, and connect() names the URL when Redis never answers
    this.queue.on('error', () => {});
    this.events.on('error', () => {});
    this.events.on('active', ({ jobId }) => board.started(jobId));
    this.events.on('progress', ({ jobId, data }) => board.progress(jobId, data as RunnerProgress));
    this.events.on('completed', ({ jobId }) => void this.collect(jobId));
    this.events.on('failed', ({ jobId, failedReason }) => board.failed(jobId, failedReason));
  }

  /** Connects to Redis at `url` (redis://host:port); fails with a message naming the URL when it cannot. */
  static async connect(board: JobBoard, url: string, maxQueued: number): Promise<BullQueue> {
    const q = new BullQueue(board, url, maxQueued);
    try {
      await withTimeout(Promise.all([q.queue.waitUntilReady(), q.events.waitUntilReady()]), url);
    } catch (e) {
      await Promise.allSettled([q.queue.close(), q.events.close()]);
      throw e;
    }
    return q;
  }

  async submit(job: JobRecord): Promise<void> {
    if (this.closing)
      throw new HttpError(503, 'the server is shutting down; submit the job to another server');
    const waiting = await this.queue.getWaitingCount();
    if (waiting >= this.maxQueued)
      throw new HttpError(429, `the queue is full (${waiting} jobs waiting); retry when one has finished`);
    this.board.add(job);
    await this.queue.add(job.kind, job.spec, {
      jobId: job.id,
      removeOnComplete: { age: 3600 },
      removeOnFail: { age: 3600 },
    });
  }

  async cancel(id: string): Promise<boolean> {
    const job = await Job.fromId(this.queue, id);
    if (!job) return false;
    const state = await job.getState();
    if (state === 'waiting' || state === 'delayed' || state === 'prioritized') await job.remove();
    else if (state === 'active') await job.updateData({ ...job.data, cancel: true } satisfies Cancellable);
    else return false;
    this.board.cancelled(id);
    return true;
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.events.close();
    await this.queue.close();
  }

  /** A completed job's results, read from Redis into the server's output folder. */
  private async collect(id: string): Promise<void> {
    try {
      const job = await Job.fromId(this.queue, id);
      if (!job) throw new Error('it left Redis before its results were read');
      this.board.done(id, job.returnvalue as RunnerResult);
    } catch (e) {
      this.board.failed(id, `the job completed but its results could not be read: ${(e as Error).message}`);
    }
  }
}

/** The options of `runWorker` (`attnkit worker`). */
export interface WorkerOptions {
  /** ms a job's lock lasts without renewal: a dead worker's job is retried this long after it died (30 s). */
  lockDuration?: number;
  /** Times a job may stall (its worker dying) before it fails (default 3). */
  maxStalledCount?: number;
  /** onnxruntime threads of the model worker (default all cores; 1 per worker when workers share a machine). */
  threads?: number;
  /** When a job starts on this worker (the CLI logs it). */
  onActive?: (id: string) => void;
  /** After each completed job (the CLI logs it; tests count them). */
  onCompleted?: (id: string) => void;
}

/** A BullMQ worker running jobs from the queue at `url` on `models`, one at a time, until closed. */
export async function runWorker(
  url: string,
  models: Readonly<Record<string, string>>,
  o: WorkerOptions = {},
): Promise<{ close: () => Promise<void> }> {
  const runner = new RunnerClient(models, o.threads);
  const queue = new Queue(QUEUE_NAME, { connection: { url } }); // to read cancellations
  queue.on('error', () => {});
  const lockDuration = o.lockDuration ?? 30_000;
  const worker = new Worker<JobSpec, RunnerResult>(
    QUEUE_NAME,
    async (job) => {
      const id = job.id!;
      const poll = setInterval(() => {
        Job.fromId<Cancellable>(queue, id).then(
          (j) => j?.data.cancel && runner.kill('cancelled'),
          () => {},
        );
      }, 250);
      try {
        return await runner.run(id, job.data, (p) => void job.updateProgress(p).catch(() => {}));
      } catch (e) {
        // a job that fails (bad word, model error, cancelled) fails the same way again: no retry
        throw new UnrecoverableError((e as Error).message);
      } finally {
        clearInterval(poll);
      }
    },
    {
      connection: { url },
      concurrency: 1,
      lockDuration,
      stalledInterval: Math.max(1000, Math.round(lockDuration / 2)),
      maxStalledCount: o.maxStalledCount ?? 3,
    },
  );
  worker.on('active', (job) => o.onActive?.(job.id!));
  worker.on('completed', (job) => o.onCompleted?.(job.id!));
  worker.on('error', () => {}); // connection errors: ioredis reconnects
  try {
    await withTimeout(Promise.all([worker.waitUntilReady(), queue.waitUntilReady()]), url);
  } catch (e) {
    await Promise.allSettled([worker.close(true), queue.close()]);
    throw e;
  }
  return {
    close: async () => {
      runner.kill('the worker shut down');
      await worker.close();
      await queue.close();
    },
  };
}
