// glibc's allocator settings for attnkit processes. Every eager op's output is a fresh Float32Array; glibc
// serves large ones with mmap and returns them to the kernel when they are freed, so the next op's output
// page-faults its memory in again, zeroed by the kernel: 340–390 thousand page faults in one SD1.5 UNet
// evaluation at 64×64. With a higher mmap threshold and trim threshold the freed memory stays in the heap
// and is reused: 3 thousand faults and 14 % less CPU time for the same evaluation (docs/performance.md).
// The settings are read at process start only, so the command re-launches itself once with them.

// One process to stop: the user's pid is the launcher; it forwards SIGINT, SIGTERM and SIGHUP to the child and
// exits with the child's status (128 + the signal's number when a signal ended it, as a shell reports it).
// A child never outlives its launcher, even one killed with SIGKILL (which cannot be caught and so cannot be
// forwarded): the child watches its parent pid from a small worker thread — the ops are synchronous, so the
// main thread's event loop does not turn during a generation — and stops itself when the parent is gone.

import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { Worker } from 'node:worker_threads';

/** Allocations below 1 GiB come from the heap, and up to 1 GiB of free heap is kept. */
export const MALLOC_TUNABLES =
  'glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=1073741824';

/**
 * The environment to re-launch with, or undefined to run as we are: on Linux, unless glibc malloc tunables
 * are already set (by us or the user) or ATTNKIT_MALLOC_TUNING=0.
 */
export function tunedEnvironment(env: NodeJS.ProcessEnv, platform: string): NodeJS.ProcessEnv | undefined {
  if (platform !== 'linux' || env['ATTNKIT_MALLOC_TUNING'] === '0') return undefined;
  const current = env['GLIBC_TUNABLES'];
  if (current?.includes('glibc.malloc.')) return undefined;
  return { ...env, GLIBC_TUNABLES: current ? `${current}:${MALLOC_TUNABLES}` : MALLOC_TUNABLES };
}

/** Set in the re-launched child's environment to the launcher's pid (and removed from it at once). */
const LAUNCHER_PID = 'ATTNKIT_LAUNCHER_PID';

/** The signals the launcher passes on to its child (the rest keep their default action). */
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Re-runs this process with the tuned allocator when it lacks it. In the launcher the promise never settles:
 * the process exits with the child's status. It resolves when this process should run the command itself
 * (already tuned, tuning off, not Linux, or the re-launch failed): callers must `await` it.
 */
export function relaunchWithMallocTuning(): Promise<void> {
  const launcher = process.env[LAUNCHER_PID];
  if (launcher !== undefined) {
    delete process.env[LAUNCHER_PID]; // processes this child starts have their own parents
    watchLauncher(Number(launcher));
    return Promise.resolve();
  }
  const tuned = tunedEnvironment(process.env, process.platform);
  if (!tuned) return Promise.resolve();
  const args = [...process.execArgv, ...process.argv.slice(1)];
  const env = { ...tuned, [LAUNCHER_PID]: String(process.pid) };
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: 'inherit', env });
    const forward = (sig: NodeJS.Signals) => {
      child.kill(sig);
    };
    for (const sig of FORWARDED) process.on(sig, forward);
    child.on('error', () => {
      // could not re-launch: run untuned
      for (const sig of FORWARDED) process.off(sig, forward);
      resolve();
    });
    child.on('exit', (code, signal) => {
      process.exit(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}

/**
 * Stops this process when its launcher (pid `launcher`) is gone: SIGTERM, then SIGKILL 3 s later if a
 * handler kept it alive. Polled every 200 ms from a worker thread, so it works while the main thread runs
 * synchronous ops; the worker does not keep the process alive.
 */
function watchLauncher(launcher: number): void {
  const source = `
    const { workerData } = require('node:worker_threads');
    const timer = setInterval(() => {
      if (process.ppid === workerData) return;
      clearInterval(timer);
      process.kill(process.pid, 'SIGTERM');
      setTimeout(() => process.kill(process.pid, 'SIGKILL'), 3000);
    }, 200);`;
  const worker = new Worker(source, { eval: true, workerData: launcher, execArgv: [] });
  worker.on('error', () => {}); // without the watch the command still runs
  worker.unref();
}

/** The environment without our malloc tunables (for processes whose memory figures are measured). */
export function untunedEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const rest = (env['GLIBC_TUNABLES'] ?? '')
    .split(':')
    .filter((t) => t !== '' && !t.startsWith('glibc.malloc.'))
    .join(':');
  const { GLIBC_TUNABLES: _, ...others } = env;
  return { ...others, ATTNKIT_MALLOC_TUNING: '0', ...(rest ? { GLIBC_TUNABLES: rest } : {}) };
}
