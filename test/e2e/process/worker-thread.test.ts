// Kernels refuse to run in a worker thread. `Worker.terminate()` while an op ran aborted the whole host
// process ("terminate called after throwing an instance of 'Napi::Error'", 6 of 10 timings): onnxruntime-node's
// binding fails a call into the terminating thread, and its rethrow escapes the N-API callback (see
// src/kernels/ort.ts). The host runs in a child process so that an abort does not take the test runner down.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../../helpers/fixtures.js';

const url = (p: string) => pathToFileURL(join(repoRoot, p)).href;

// the worker: tsx for the sources, the built-in model, generations until terminated
const WORKER = `
const { parentPort } = require('node:worker_threads');
(async () => {
  (await import(${JSON.stringify(url('node_modules/tsx/dist/esm/api/index.mjs'))})).register();
  const { StableDiffusion, setThreads } = await import(${JSON.stringify(url('src/index.ts'))});
  setThreads(1);
  const sd = StableDiffusion.fromPretrained(${JSON.stringify(join(repoRoot, 'models/shapes-v1'))});
  const opts = { prompt: 'a red circle', steps: 2, guidanceScale: 7.5, seed: 0 };
  try {
    sd.generate(opts);
  } catch (e) {
    parentPort.postMessage({ refused: e.message });
    return;
  }
  parentPort.postMessage({ running: true });
  for (;;) sd.generate(opts);
})();`;

// the host: one worker, terminated \`process.argv[1]\` ms after its first generation (one host per timing: a
// worker terminated inside onnxruntime's addon can leave the addon unloadable for the next one)
const HOST = `
import { Worker } from 'node:worker_threads';
const w = new Worker(${JSON.stringify(WORKER)}, { eval: true, execArgv: [] });
const first = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
if (first.refused) console.log('refused: ' + first.refused);
else await new Promise((r) => setTimeout(r, Number(process.argv[1])));
await w.terminate();
console.log('host done');`;

for (const ms of [0, 1, 2, 5, 10, 20]) {
  test(`kernels in a worker thread: refused with a clear error; terminate() ${ms} ms after the first generation leaves the host running`, () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', HOST, String(ms)], {
      cwd: repoRoot,
      encoding: 'utf8',
      timeout: 60_000,
      killSignal: 'SIGKILL',
    });
    const output = `${r.stdout}${r.stderr}`.slice(-2000);
    assert.equal(r.signal, null, `host killed by ${r.signal}:\n${output}`);
    assert.equal(r.status, 0, `host exited ${r.status}:\n${output}`);
    assert.match(r.stdout, /^refused: .*worker thread/m, output);
    assert.match(r.stdout, /host done/);
  });
}
