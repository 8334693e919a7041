// The server's record of its jobs: state, progress with an ETA, the latest preview, the files of a finished job
// (written into the server's output folder as one unit), and a stream of events per job for server-sent events.
// Where a job runs — the in-process queue or BullMQ workers — is a `JobQueue`; both report back here.

import { EventEmitter } from 'node:events';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFolderAtomic } from '../io/atomic.js';
import type { RunnerProgress, RunnerResult } from './runner-client.js';
import type { JobKind, JobSpec } from './spec.js';

/** Where a job is in its life: waiting, running, or finished one of three ways. */
export type JobStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

/** A job as the API shows it (GET /api/jobs/:id). */
export interface JobRecord {
  id: string;
  kind: JobKind;
  status: JobStatus;
  spec: JobSpec;
  createdAt: number;
  startedAt?: number;
  finishedAt?: number;
  step: number;
  numSteps?: number;
  /** Seconds left, from the time per step so far. */
  etaSeconds?: number;
  /** Names of the finished job's files (GET /api/jobs/:id/files/:name). */
  files: string[];
  meta: Record<string, unknown>;
  error?: string;
}

/** One event of a job's stream: the record after a change, and a preview PNG (base64) when a step made one. */
export interface JobEvent {
  job: JobRecord;
  preview?: string;
}

/** Where jobs run. `submit` throws an `HttpError` (429 full, 503 shutting down) instead of queueing. */
export interface JobQueue {
  submit(job: JobRecord): Promise<void>;
  /** Stops a queued or running job; false when it is not this queue's to stop. */
  cancel(id: string): Promise<boolean>;
  close(): Promise<void>;
}

/** An error with the HTTP status the API answers with. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** The file names a job may have: requests name files from this list, never a path. */
export const JOB_FILES = [
  'image.png',
  'maps.json',
  'mask.png',
  'source.png',
  'target.png',
  'edit.png',
] as const;

/** Jobs kept in memory (the oldest finished one, and its folder, goes when a new one would pass it). */
const KEPT = 1000;

/** The server's jobs by id, their events, and their files under the output folder. */
export class JobBoard {
  private readonly jobs = new Map<string, JobRecord>();
  private readonly events = new EventEmitter().setMaxListeners(0);

  /** `outDir`: the server's own output folder; job files go to `outDir/<job id>/`. */
  constructor(readonly outDir: string) {}

  add(job: JobRecord): void {
    this.jobs.set(job.id, job);
    if (this.jobs.size > KEPT) {
      const old = [...this.jobs.values()].find((j) => j.finishedAt !== undefined);
      if (old) this.forget(old.id);
    }
  }

  get(id: string): JobRecord | undefined {
    return this.jobs.get(id);
  }

  /** Listens to a job's events until the returned function is called. */
  listen(id: string, fn: (e: JobEvent) => void): () => void {
    this.events.on(id, fn);
    return () => this.events.off(id, fn);
  }

  started(id: string): void {
    const j = this.live(id);
    if (!j) return;
    j.status = 'running';
    j.startedAt = Date.now();
    this.emit(j);
  }

  progress(id: string, p: RunnerProgress): void {
    const j = this.live(id);
    if (!j) return;
    if (j.status === 'queued') {
      j.status = 'running';
      j.startedAt ??= Date.now();
    }
    j.step = p.step;
    j.numSteps = p.numSteps;
    const perStep = (Date.now() - (j.startedAt ?? Date.now())) / 1000 / Math.max(1, p.step);
    j.etaSeconds = Math.max(0, (p.numSteps - p.step) * perStep);
    this.emit(j, p.preview);
  }

  /** A job's results: its files written to outDir/<id>/ as one unit, then the record marked done. */
  done(id: string, r: RunnerResult): void {
    const j = this.live(id);
    if (!j) return;
    const names = Object.keys(r.files).filter((n): n is (typeof JOB_FILES)[number] =>
      (JOB_FILES as readonly string[]).includes(n),
    );
    writeFolderAtomic(join(this.outDir, id), (dir) => {
      for (const n of names) writeFileSync(join(dir, n), Buffer.from(r.files[n]!, 'base64'));
    });
    this.finish(j, 'done', { files: names, meta: r.meta, etaSeconds: 0 });
  }

  failed(id: string, error: string): void {
    const j = this.live(id);
    if (j) this.finish(j, 'failed', { error });
  }

  cancelled(id: string): void {
    const j = this.live(id);
    if (j) this.finish(j, 'cancelled', {});
  }

  /** Jobs by status, for /api/health and the load benchmark. */
  counts(): Record<JobStatus, number> {
    const c: Record<JobStatus, number> = { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0 };
    for (const j of this.jobs.values()) c[j.status]++;
    return c;
  }

  private live(id: string): JobRecord | undefined {
    const j = this.jobs.get(id);
    return j && j.finishedAt === undefined ? j : undefined;
  }

  private finish(j: JobRecord, status: JobStatus, patch: Partial<JobRecord>): void {
    Object.assign(j, patch, { status, finishedAt: Date.now() });
    this.emit(j);
  }

  private emit(j: JobRecord, preview?: string): void {
    this.events.emit(j.id, { job: { ...j }, ...(preview ? { preview } : {}) } satisfies JobEvent);
  }

  private forget(id: string): void {
    this.jobs.delete(id);
    rmSync(join(this.outDir, id), { recursive: true, force: true });
  }
}
