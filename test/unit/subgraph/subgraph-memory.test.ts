// Subgraph sessions hold a weight once (issue 32): after a module's session is built, its JavaScript weight
// arrays are parked (dropped; the session and the spill file hold the numbers) and read back bit for bit when
// eager code reads them. The resident-memory check counts the process's anonymous pages around a 256 MiB
// module: without parking it grows by two copies (JavaScript + onnxruntime's), with it by one.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { clearSubgraphCache, setSubgraphs, subgraphStats } from '../../../src/kernels/subgraph.js';
import { spillBytes } from '../../../src/kernels/subgraph-spill.js';
import { Linear, Module, ModuleList } from '../../../src/nn/index.js';
import { subgraphForward } from '../../../src/nn/subgraph.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { assertClose } from '../../helpers/tolerance.js';

// the spill file's folder, read when the first weight is spilled
const spillDir = mkdtempSync(join(tmpdir(), 'attnkit-spill-test-'));
process.env['ATTNKIT_SPILL_DIR'] = spillDir;
after(() => rmSync(spillDir, { recursive: true, force: true }));
setSubgraphs(true);

class Stack extends Module {
  layers: ModuleList<Linear>;
  constructor(width: number, depth: number, fill: (layer: number, i: number) => number) {
    super();
    this.layers = new ModuleList(
      Array.from({ length: depth }, (_, l) => {
        const lin = new Linear(width, width);
        const w = new Float32Array(width * width);
        for (let i = 0; i < w.length; i++) w[i] = fill(l, i);
        lin.weight.value = new Tensor(w, [width, width]);
        lin.bias = undefined;
        return lin;
      }),
    );
  }
  forward(x: Tensor): Tensor {
    return this.layers.items.reduce((h, l) => l.forward(h), x);
  }
}

function cached(m: Stack, x: Tensor): Tensor {
  return noGrad(() => subgraphForward({ module: m, name: 'stack' }, [x], () => [m.forward(x)])[0] as Tensor);
}

test('a built session parks its weights: read back bit for bit, same version, the session stays current', () => {
  clearSubgraphCache();
  const m = new Stack(64, 2, (l, i) => Math.sin(i * 0.37 + l) * 0.1);
  const copies = m.layers.items.map((l) => Float32Array.from(l.weight.value.data as Float32Array));
  const versions = m.layers.items.map((l) => l.weight.version);
  const x = Tensor.from(
    Array.from({ length: 3 * 64 }, (_, i) => Math.cos(i)),
    [3, 64],
  );
  const eager = m.forward(x);
  const built = subgraphStats().built;
  const first = cached(m, x);
  assert.equal(subgraphStats().built, built + 1);
  for (const l of m.layers.items) assert.equal(l.weight.resident, null, 'the JavaScript copy is dropped');
  assert.ok(spillBytes() >= 2 * 64 * 64 * 4, 'both weights are in the spill file');
  assert.deepEqual(readdirSync(spillDir), [], 'the spill file is unlinked: nothing left in its folder');
  // read back: the same bits, and not a new value (the session is not stale)
  m.layers.items.forEach((l, i) => {
    assert.deepEqual(l.weight.value.data, copies[i]);
    assert.equal(l.weight.version, versions[i]);
  });
  const again = cached(m, x);
  assert.equal(subgraphStats().built, built + 1, 'read-back weights keep the session');
  for (const l of m.layers.items) assert.equal(l.weight.resident, null, 'parked again when the session runs');
  assertClose(first, eager, { atol: 1e-5, rtol: 0 });
  assert.deepEqual(again.data, first.data);
  // a new value (a merged LoRA) is a new version: the session is rebuilt with it
  m.layers.at(0).weight.value = new Tensor(new Float32Array(64 * 64), [64, 64]);
  const zero = cached(m, x);
  assert.equal(subgraphStats().built, built + 2);
  assert.ok((zero.data as Float32Array).every((v) => v === 0));
});

function anonMiB(): number {
  const s = readFileSync('/proc/self/status', 'utf8');
  return Number(/RssAnon:\s+(\d+)/.exec(s)?.[1]) / 1024;
}

test('resident memory: a 256 MiB module costs one copy of its weights once its session is built', {
  skip: process.platform !== 'linux',
}, () => {
  clearSubgraphCache();
  const before = anonMiB();
  const m = new Stack(4096, 4, (l, i) => ((i * 7 + l) % 13) * 1e-4); // 4 × 64 MiB
  const weights = anonMiB() - before;
  assert.ok(weights > 240, `the weights are resident: +${weights.toFixed(0)} MiB`);
  const x = new Tensor(new Float32Array(2 * 4096).fill(0.5), [2, 4096]);
  cached(m, x);
  const after = anonMiB() - before;
  // two copies would be +512 MiB; one copy and the run's small buffers stay under 1.3×
  assert.ok(
    after < 1.3 * 256,
    `+${after.toFixed(0)} MiB resident after the session was built (weights 256 MiB)`,
  );
  clearSubgraphCache();
});

test('a spill folder that does not exist: an error naming ATTNKIT_SPILL_DIR, not a crash', () => {
  const src = new URL('../../../src/kernels/subgraph-spill.ts', import.meta.url).href;
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--input-type=module',
      '--eval',
      `import(${JSON.stringify(src)}).then((m) => { try { m.spill(new Float32Array(1024)); console.log('spilled'); } catch (e) { console.log(e.message); } });`,
    ],
    { encoding: 'utf8', env: { ...process.env, ATTNKIT_SPILL_DIR: join(spillDir, 'missing') } },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /spill folder .*missing does not exist; set ATTNKIT_SPILL_DIR/);
});
