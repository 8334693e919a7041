// glibc's allocator settings for attnkit processes. Every eager op's output is a fresh Float32Array; glibc
// serves large ones with mmap and returns them to the kernel when they are freed, so the next op's output
// page-faults its memory in again, zeroed by the kernel: 340–390 thousand page faults in one SD1.5 UNet
// evaluation at 64×64. With a higher mmap threshold and trim threshold the freed memory stays in the heap
// and is reused: 3 thousand faults and 14 % less CPU time for the same evaluation (docs/performance.md).
// The settings are read at process start only, so the command re-launches itself once with them.

import { spawnSync } from 'node:child_process';

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

/** Re-runs this process with the tuned allocator when it lacks it, and exits with the child's status. */
export function relaunchWithMallocTuning(): void {
  const env = tunedEnvironment(process.env, process.platform);
  if (!env) return;
  const args = [...process.execArgv, ...process.argv.slice(1)];
  const r = spawnSync(process.execPath, args, { stdio: 'inherit', env });
  if (r.error) return; // could not re-launch: run untuned
  process.exit(r.status ?? 1);
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
