// The default job queue: in the server's process, one model worker (a runner child process), a bounded
// waiting line. Full → 429; closing → 503; a cancelled queued job leaves the line, a cancelled running one
// ends its runner.

import { HttpError, type JobBoard, type JobQueue, type JobRecord } from './jobs.js';
import { RunnerClient } from './runner-client.js';

/** The in-process job queue: one model worker process, at most `maxQueued` jobs waiting. */
export class LocalQueue implements JobQueue {
  private readonly waiting: JobRecord[] = [];
  private running?: JobRecord;
  private closing = false;
  private readonly runner: RunnerClient;

  constructor(
    private readonly board: JobBoard,
    models: Readonly<Record<string, string>>,
    /** Jobs that may wait besides the running one. */
    private readonly maxQueued: number,
  ) {
    this.runner = new RunnerClient(models);
  }

  async submit(job: JobRecord): Promise<void> {
    if (this.closing)
      throw new HttpError(503, 'the server is shutting down; submit the job to another server');
    if (this.waiting.length >= this.maxQueued)
      throw new HttpError(
        429,
        `the queue is full (${this.maxQueued} jobs waiting); retry when one has finished`,
      );
    this.board.add(job);
    this.waiting.push(job);
    this.next();
  }

  async cancel(id: string): Promise<boolean> {
    const at = this.waiting.findIndex((j) => j.id === id);
    if (at >= 0) {
      this.waiting.splice(at, 1);
      this.board.cancelled(id);
      return true;
    }
    if (this.running?.id !== id) return false;
    this.board.cancelled(id);
    this.runner.kill('cancelled');
    return true;
  }

  async close(): Promise<void> {
    this.closing = true;
    for (const j of this.waiting.splice(0)) this.board.cancelled(j.id);
    if (this.running) this.board.cancelled(this.running.id);
    this.runner.kill('the server shut down');
  }

  private next(): void {
    if (this.running || this.closing) return;
    const job = this.waiting.shift();
    if (!job) return;
    this.running = job;
    this.board.started(job.id);
    this.runner
      .run(job.id, job.spec, (p) => this.board.progress(job.id, p))
      .then(
        (r) => this.board.done(job.id, r),
        (e: Error) => this.board.failed(job.id, e.message),
      )
      .catch((e: Error) => this.board.failed(job.id, `writing the results failed: ${e.message}`))
      .finally(() => {
        this.running = undefined;
        this.next();
      });
  }
}
