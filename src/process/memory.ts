// The process's memory as benchmarks read it.

import { readFileSync } from 'node:fs';

/** Resident set and its high-water mark, bytes (Linux /proc; elsewhere maxRSS of the process). */
export function memory(): { rss: number; hwm: number } {
  try {
    const s = readFileSync('/proc/self/status', 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? Number.NaN);
    return { rss: kb('VmRSS') * 1024, hwm: kb('VmHWM') * 1024 };
  } catch {
    return { rss: process.memoryUsage().rss, hwm: process.resourceUsage().maxRSS * 1024 };
  }
}
