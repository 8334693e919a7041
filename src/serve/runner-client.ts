// The parent's side of the model worker (runner.ts): starts it, hands it one job at a time, relays its progress,
// and ends it to cancel a running job (the next job starts a fresh one). A runner that dies mid-job fails that
// job with a message saying so.

import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { RunMessage, RunnerMessage } from './runner.js';
import type { JobSpec } from './spec.js';

/** A finished job's files (base64) and facts, as the runner sends them. */
export interface RunnerResult {
  files: Record<string, string>;
  meta: Record<string, unknown>;
}

/** A step's progress as the runner reports it. */
export interface RunnerProgress {
  step: number;
  numSteps: number;
  /** base64 PNG */
  preview?: string;
}

/** How to start runner.ts: compiled (dist/serve/runner.js) or from source through tsx. */
function runnerEntry(): { path: string; execArgv: string[] } {
  const self = fileURLToPath(import.meta.url);
  if (self.endsWith('.js')) return { path: self.replace(/runner-client\.js$/, 'runner.js'), execArgv: [] };
  return {
    path: self.replace(/runner-client\.ts$/, 'runner.ts'),
    execArgv: ['--import', import.meta.resolve('tsx')],
  };
}

/** One model worker process, started on the first job and after a cancellation. */
export class RunnerClient {
  private child?: ChildProcess;
  private current?: {
    id: string;
    resolve: (r: RunnerResult) => void;
    reject: (e: Error) => void;
    onProgress: (p: RunnerProgress) => void;
  };

  /** `models`: name → diffusers folder, the only models a job may name; `threads`: onnxruntime's (default all cores). */
  constructor(
    private readonly models: Readonly<Record<string, string>>,
    private readonly threads?: number,
  ) {}

  /** Runs one job; rejects with the runner's message if it fails, or if it is cancelled or dies. */
  run(id: string, spec: JobSpec, onProgress: (p: RunnerProgress) => void): Promise<RunnerResult> {
    if (this.current) throw new Error(`RunnerClient: job ${this.current.id} is still running`);
    const child = this.start();
    return new Promise<RunnerResult>((resolve, reject) => {
      this.current = { id, resolve, reject, onProgress };
      child.send({ type: 'run', id, spec } satisfies RunMessage);
    });
  }

  /** Ends the runner (and so its job, which fails with `reason`). */
  kill(reason = 'cancelled'): void {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null) child.kill('SIGKILL');
    this.finish()?.reject(new Error(reason));
  }

  /** The pid of the runner process, while one runs. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private finish() {
    const c = this.current;
    this.current = undefined;
    return c;
  }

  private start(): ChildProcess {
    if (this.child && this.child.exitCode === null && this.child.connected) return this.child;
    const entry = runnerEntry();
    const child = fork(entry.path, [], {
      execArgv: entry.execArgv,
      env: {
        ...process.env,
        ATTNKIT_SERVE_MODELS: JSON.stringify(this.models),
        ...(this.threads ? { ATTNKIT_SERVE_THREADS: String(this.threads) } : {}),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    child.on('message', (m: RunnerMessage) => {
      const c = this.current;
      if (m.type === 'ready' || !c || m.id !== c.id) return;
      if (m.type === 'progress') c.onProgress({ step: m.step, numSteps: m.numSteps, preview: m.preview });
      else if (m.type === 'done') this.finish()?.resolve({ files: m.files, meta: m.meta });
      else this.finish()?.reject(new Error(m.error));
    });
    child.on('exit', (code, signal) => {
      if (this.child !== child) return; // killed on purpose: kill() failed its job already
      this.child = undefined;
      this.finish()?.reject(
        new Error(
          `the model worker process ended mid-job (${signal ?? `exit code ${code}`}); resubmit the job`,
        ),
      );
    });
    this.child = child;
    return child;
  }
}
