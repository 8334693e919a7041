// `attnkit serve` from the command line: it listens on loopback, serves the explorer page (bundled at start from
// the sources) and the API, refuses a --model that is not a model folder, and stops on SIGTERM.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { repoRoot } from '../../helpers/fixtures.js';

const CLI = ['--import', 'tsx', 'src/cli/main.ts'];

test('attnkit serve: loopback by default, the explorer at /, the API under /api/, stops on SIGTERM', async () => {
  const proc = spawn(process.execPath, [...CLI, 'serve', '--port', '0'], {
    cwd: repoRoot,
    env: { ...process.env, ATTNKIT_MALLOC_TUNING: '0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${log}`)), 60_000);
    proc.stderr!.on('data', (d: Buffer) => {
      log += d.toString();
      const m = /the explorer at (http:\/\/[^/\s]+)\//.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    proc.on('exit', (code) => reject(new Error(`serve exited (${code}): ${log}`)));
  });
  try {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>attnkit explorer<\/title>[\s\S]*explorer\.js/);
    const js = await fetch(`${url}/explorer.js`);
    assert.equal(js.status, 200);
    assert.ok((await js.arrayBuffer()).byteLength > 1000);
    const health = (await (await fetch(`${url}/api/health`)).json()) as { models: string[] };
    assert.deepEqual(health.models, ['shapes-v1']);
  } finally {
    const exited = new Promise<number | null>((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
  }
});

test('attnkit serve: a --model that is not a diffusers folder is refused, naming it', () => {
  const r = spawnSync(process.execPath, [...CLI, 'serve', '--model', 'src'], {
    cwd: repoRoot,
    env: { ...process.env, ATTNKIT_MALLOC_TUNING: '0' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--model src: not a diffusers folder \(no model_index\.json\)/);
});
