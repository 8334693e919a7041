// One process to stop: `attnkit` re-launches itself once with glibc's allocator tuned
// (src/process/malloc-tuning.ts). Stopping the pid the user started stops the work: SIGINT / SIGTERM reach
// the re-launched child, the command exits with the child's status (128 + signal number for a signal
// death), and the child never outlives its parent, even one killed with SIGKILL.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { repoRoot } from '../../helpers/fixtures.js';

const linux = process.platform === 'linux';
const dir = mkdtempSync(join(tmpdir(), 'attnkit-process-'));
const started: number[] = [];
after(() => {
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    // a zombie (dead, not yet reaped) counts as gone
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The pids whose parent is `ppid` (from /proc/<pid>/stat: "pid (comm) state ppid …"). */
function childrenOf(ppid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(name));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts a long generation (the built-in model, many steps) through the launcher; resolves once the re-launched child runs. */
async function startLongGenerate(name: string): Promise<{
  parent: ChildProcess;
  child: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}> {
  const parent = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'src/cli/main.ts'),
      'generate',
      'a red circle',
      '--model',
      join(repoRoot, 'models/shapes-v1'),
      '--steps',
      '1000', // the most the scheduler takes: minutes on one thread
      '--threads',
      '1',
      '--out',
      join(dir, `${name}.png`),
    ],
    // as a user starts it: the malloc re-launch on
    {
      cwd: repoRoot,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, GLIBC_TUNABLES: '', ATTNKIT_MALLOC_TUNING: '1' },
    },
  );
  started.push(parent.pid as number);
  let stderr = '';
  parent.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    parent.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let child = 0;
  await until(
    're-launched child',
    () => {
      child = childrenOf(parent.pid as number)[0] ?? 0;
      return child !== 0;
    },
    20_000,
  );
  started.push(child);
  // the progress bar's first line: the child is in the sampling loop (synchronous: no JS event turns there)
  await until('the sampling loop', () => /\/1000/.test(stderr), 30_000);
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(alive(child), `the child exited early: ${stderr}`);
  return { parent, child, exited };
}

const opts = { skip: !linux && 'reads /proc', timeout: 60_000 };

for (const sig of ['SIGTERM', 'SIGINT'] as const) {
  test(
    `process: ${sig} to attnkit stops the re-launched child and exits with 128 + ${constants.signals[sig]}`,
    opts,
    async () => {
      const { parent, child, exited } = await startLongGenerate(sig);
      parent.kill(sig);
      const r = await exited;
      assert.deepEqual(r, { code: 128 + constants.signals[sig], signal: null });
      await until('the child to exit', () => !alive(child), 5000);
    },
  );
}

test(
  'process: SIGKILL to attnkit: the re-launched child notices and exits within seconds',
  opts,
  async () => {
    const { parent, child, exited } = await startLongGenerate('SIGKILL');
    parent.kill('SIGKILL');
    assert.deepEqual(await exited, { code: null, signal: 'SIGKILL' });
    await until('the orphaned child to exit', () => !alive(child), 5000);
  },
);

test("process: a child killed by a signal gives attnkit's exit status 128 + signal", opts, async () => {
  const { exited, child } = await startLongGenerate('child-killed');
  process.kill(child, 'SIGKILL');
  assert.deepEqual(await exited, { code: 128 + constants.signals.SIGKILL, signal: null });
});
