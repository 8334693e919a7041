// Engine benchmark: what attnkit's eager ops cost against onnxruntime used directly, and against
// @tensorflow/tfjs-backend-wasm, measured side by side in one run.
//
// 1. dispatch: a 16-element float32 Add — attnkit `a.add(b)` vs a plain onnxruntime-node session through
//    its public async API (`await session.run`) vs the same one-node model through the native binding
//    (src/kernels/ort.ts createSession / runSession).
// 2. GEMM 1024³ float32: attnkit `a.matmul(b)` vs a plain session running MatMul vs tfjs-wasm `matMul`.
// 3. conv 3×3, 320→320 channels, 1×64×64, padding 1: attnkit `conv2d` vs a plain session vs tfjs-wasm.
// 4. an SD ResNet block (GroupNorm → SiLU → conv → +temb → GroupNorm → SiLU → conv → +x, 320 channels,
//    1×64×64) as 10 eager attnkit ops vs the same graph as one onnxruntime session, and vs the same 10
//    single-node sessions run back to back through the native binding, with onnxruntime's default session
//    options and with attnkit's. No target: this is what a sequence of eager ops costs beyond its kernels,
//    and where the per-op sessions' thread pools meet (see the spinning note in src/kernels/ort.ts).
//
// Both onnxruntime paths use the machine's cores as intra-op threads. Baseline in every case: the plain
// onnxruntime session (public API), as a user of onnxruntime-node would run it; for the block, the block as
// one session.

import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { buildModel, type GraphSpec, type NodeSpec } from '../src/kernels/graph.js';
import {
  binding,
  createSession,
  type NativeSession,
  type OrtTensor,
  runSession,
  setThreads,
  threads,
} from '../src/kernels/ort.js';
import { conv2d, groupNorm, noGrad, Tensor } from '../src/tensor/index.js';
import {
  type Bench,
  type BenchResult,
  type BenchRow,
  compare,
  packageVersion,
  type Target,
  type Timing,
  timeRounds,
} from './util.js';

const require = createRequire(import.meta.url);

type Tf = typeof import('@tensorflow/tfjs-core');

interface TfWasm {
  tf: Tf;
  threads: number;
}

/** Loads tfjs-core with the wasm backend from node_modules (no download); null when not installed. */
async function loadTfWasm(notes: string[]): Promise<TfWasm | null> {
  try {
    const tf = await import('@tensorflow/tfjs-core');
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    const wasmFile = require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm');
    wasm.setWasmPaths(`${path.dirname(wasmFile)}${path.sep}`);
    if (!(await tf.setBackend('wasm'))) throw new Error('setBackend("wasm") returned false');
    await tf.ready();
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threads = wasm.getThreadsCount();
    notes.push(
      `tfjs-backend-wasm ${packageVersion('@tensorflow/tfjs-backend-wasm')}: ${threads} thread(s), ` +
        `SIMD ${simd ? 'on' : 'off'} (Node has no threaded wasm build here); NHWC layout; times include dataSync().`,
    );
    return { tf, threads };
  } catch (e) {
    notes.push(`tfjs-backend-wasm not measured: ${(e as Error).message}`);
    return null;
  }
}

function random(shape: number[], seed: number): Tensor {
  // small LCG: deterministic inputs without depending on the library's RNG
  let s = seed >>> 0;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s / 2 ** 32 - 0.5;
  }
  return new Tensor(data, shape);
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] as number));
  return m;
}

/** Checks that two implementations computed the same thing before their timings are compared. */
function agree(what: string, ref: ArrayLike<number>, got: ArrayLike<number>, notes: string[], rtol = 1e-4) {
  const d = maxAbsDiff(ref, got);
  const scale = Math.max(maxAbs(ref), 1e-30);
  notes.push(`${what}: max |Δ| = ${d.toExponential(2)} (${(d / scale).toExponential(1)} of max |y|)`);
  if (!(d <= rtol * scale))
    throw new Error(`engine bench: ${what} disagree (max |Δ| ${d} vs scale ${scale})`);
}

async function plainSession(model: Uint8Array, intraOp: number): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model, {
    intraOpNumThreads: intraOp,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
}

function row(c: string, impl: string, timing: Timing, extra: Partial<BenchRow> = {}): BenchRow {
  return { case: c, impl, timing, ...extra };
}

const PLAIN = 'onnxruntime session, public API (await run)';
const NATIVE = 'onnxruntime session, native binding (sync)';

async function dispatch(cores: number, notes: string[]): Promise<BenchRow[]> {
  const n = 16;
  const a = random([n], 1);
  const b = random([n], 2);
  const model = buildModel({
    name: 'add',
    nodes: [{ op: 'Add', inputs: ['x0', 'x1'], outputs: ['y0'] }],
    inputs: [
      { name: 'x0', dtype: 'float32', dims: ['n'] },
      { name: 'x1', dtype: 'float32', dims: ['n'] },
    ],
    outputs: [{ name: 'y0', dtype: 'float32' }],
  });
  const plain = await plainSession(model, cores);
  const native = createSession(model, { intraOpThreads: cores });
  const feeds = { x0: a.ort(), x1: b.ort() };
  const publicFeeds = feeds as unknown as Record<string, ort.Tensor>;
  const outputNames = ['y0'];
  const ref = (await plain.run(publicFeeds))['y0']!.data as Float32Array;
  agree('add: attnkit vs session', ref, a.add(b).data as Float32Array, notes, 1e-6);

  const c = `add, 2×${n} f32 (per call)`;
  const [tPlain, tNative, tAttn] = await timeRounds(
    [() => plain.run(publicFeeds), () => runSession(native, feeds, outputNames), () => a.add(b)],
    { rounds: 5, warmup: 300, repeats: 3, inner: 2000 },
  );
  await plain.release();
  native.dispose();
  return compare([
    row(c, PLAIN, tPlain!, { baseline: true }),
    row(c, NATIVE, tNative!),
    row(c, 'attnkit a.add(b)', tAttn!, {
      note: `${((tAttn!.median - tNative!.median) * 1e6).toFixed(2)} µs over the native binding`,
    }),
  ]);
}

function oneNodeModel(spec: Omit<GraphSpec, 'name'>): Uint8Array {
  return buildModel({ name: 'bench', ...spec });
}

async function gemm(cores: number, tfw: TfWasm | null, notes: string[]): Promise<BenchRow[]> {
  const n = 1024;
  const a = random([n, n], 3);
  const b = random([n, n], 4);
  const model = oneNodeModel({
    nodes: [{ op: 'MatMul', inputs: ['a', 'b'], outputs: ['y'] }],
    inputs: [
      { name: 'a', dtype: 'float32', dims: [n, n] },
      { name: 'b', dtype: 'float32', dims: [n, n] },
    ],
    outputs: [{ name: 'y', dtype: 'float32', dims: [n, n] }],
  });
  const plain = await plainSession(model, cores);
  const native = createSession(model, { intraOpThreads: cores });
  const feeds = { a: a.ort(), b: b.ort() };
  const publicFeeds = feeds as unknown as Record<string, ort.Tensor>;
  const ref = (await plain.run(publicFeeds))['y']!.data as Float32Array;
  agree('gemm: attnkit vs session', ref, a.matmul(b).data as Float32Array, notes);

  const fns: (() => unknown)[] = [
    () => plain.run(publicFeeds),
    () => runSession(native, feeds, ['y']),
    () => a.matmul(b),
  ];
  let tfRun: (() => Float32Array) | null = null;
  if (tfw) {
    const { tf } = tfw;
    const ta = tf.tensor2d(a.data as Float32Array, [n, n]);
    const tb = tf.tensor2d(b.data as Float32Array, [n, n]);
    tfRun = () => {
      const y = tf.matMul(ta, tb);
      const d = y.dataSync() as Float32Array;
      y.dispose();
      return d;
    };
    agree('gemm: tfjs-wasm vs session', ref, tfRun(), notes);
  }
  // onnxruntime paths: many short rounds, so load from other processes averages out in the ratios;
  // tfjs-wasm (several times slower, far from any target) gets one short block of its own
  const ts = await timeRounds(fns, { rounds: 9, warmup: 1, repeats: 3 });
  if (tfRun) ts.push(...(await timeRounds([tfRun], { rounds: 1, warmup: 1, repeats: 5 })));
  await plain.release();
  native.dispose();
  const c = `gemm ${n}³ f32`;
  const flops = 2 * n ** 3;
  const rows = [
    row(c, PLAIN, ts[0]!, { baseline: true, flops }),
    row(c, NATIVE, ts[1]!, { flops }),
    row(c, 'attnkit a.matmul(b)', ts[2]!, { flops }),
  ];
  if (tfRun) rows.push(row(c, `tfjs-wasm matMul (${tfw!.threads} thread)`, ts[3]!, { flops }));
  return compare(rows);
}

async function conv(cores: number, tfw: TfWasm | null, notes: string[]): Promise<BenchRow[]> {
  const [ch, hw] = [320, 64];
  const x = random([1, ch, hw, hw], 5);
  const w = random([ch, ch, 3, 3], 6);
  const model = oneNodeModel({
    nodes: [
      { op: 'Conv', inputs: ['x', 'w'], outputs: ['y'], attrs: { pads: [1, 1, 1, 1], kernel_shape: [3, 3] } },
    ],
    inputs: [
      { name: 'x', dtype: 'float32', dims: [1, ch, hw, hw] },
      { name: 'w', dtype: 'float32', dims: [ch, ch, 3, 3] },
    ],
    outputs: [{ name: 'y', dtype: 'float32', dims: [1, ch, hw, hw] }],
  });
  const plain = await plainSession(model, cores);
  const feeds = { x: x.ort(), w: w.ort() } as unknown as Record<string, ort.Tensor>;
  const ref = (await plain.run(feeds))['y']!.data as Float32Array;
  const attn = () => conv2d(x, w, null, { padding: 1 });
  agree('conv: attnkit vs session', ref, attn().data as Float32Array, notes);

  const fns: (() => unknown)[] = [() => plain.run(feeds), attn];
  let tfRun: (() => Float32Array) | null = null;
  if (tfw) {
    const { tf } = tfw;
    // tfjs-wasm convolves NHWC with (kh, kw, in, out) filters: the same work, its own layout
    const tx = tf.transpose(tf.tensor4d(x.data as Float32Array, [1, ch, hw, hw]), [0, 2, 3, 1]);
    const tw = tf.transpose(tf.tensor4d(w.data as Float32Array, [ch, ch, 3, 3]), [2, 3, 1, 0]);
    tfRun = () => {
      const y = tf.conv2d(tx, tw, 1, 'same');
      const d = y.dataSync() as Float32Array;
      y.dispose();
      return d;
    };
    const nhwc = tf.tidy(() => tf.transpose(tf.tensor4d(tfRun!(), [1, hw, hw, ch]), [0, 3, 1, 2]).dataSync());
    agree('conv: tfjs-wasm vs session', ref, nhwc as Float32Array, notes);
  }
  const ts = await timeRounds(fns, { rounds: 9, warmup: 1, repeats: 3 });
  if (tfRun) ts.push(...(await timeRounds([tfRun], { rounds: 1, warmup: 1, repeats: 4 })));
  await plain.release();
  const c = `conv 3×3 ${ch}→${ch}, 1×${hw}×${hw}`;
  const flops = 2 * ch * ch * 9 * hw * hw;
  const rows = [
    row(c, PLAIN, ts[0]!, { baseline: true, flops }),
    row(c, 'attnkit conv2d', ts[1]!, { flops }),
  ];
  if (tfRun) rows.push(row(c, `tfjs-wasm conv2d (${tfw!.threads} thread)`, ts[2]!, { flops }));
  return compare(rows);
}

async function resnetBlock(cores: number, notes: string[]): Promise<BenchRow[]> {
  const [ch, hw, groups, eps] = [320, 64, 32, 1e-5];
  const x = random([1, ch, hw, hw], 7);
  const temb = random([1, ch, 1, 1], 8);
  const p = {
    gn1w: random([ch], 9),
    gn1b: random([ch], 10),
    w1: random([ch, ch, 3, 3], 11).mul(0.05),
    b1: random([ch], 12),
    gn2w: random([ch], 13),
    gn2b: random([ch], 14),
    w2: random([ch, ch, 3, 3], 15).mul(0.05),
    b2: random([ch], 16),
  };
  const eager = () =>
    noGrad(() => {
      let h = groupNorm(x, groups, p.gn1w, p.gn1b, eps).silu();
      h = conv2d(h, p.w1, p.b1, { padding: 1 }).add(temb);
      h = groupNorm(h, groups, p.gn2w, p.gn2b, eps).silu();
      h = conv2d(h, p.w2, p.b2, { padding: 1 });
      return x.add(h);
    });
  const gn = { num_groups: groups, epsilon: eps };
  const cv = { pads: [1, 1, 1, 1], kernel_shape: [3, 3] };
  const nodes: NodeSpec[] = [
    { op: 'GroupNormalization', inputs: ['x', 'gn1w', 'gn1b'], outputs: ['n1'], attrs: gn },
    { op: 'Sigmoid', inputs: ['n1'], outputs: ['s1'] },
    { op: 'Mul', inputs: ['n1', 's1'], outputs: ['a1'] },
    { op: 'Conv', inputs: ['a1', 'w1', 'b1'], outputs: ['c1'], attrs: cv },
    { op: 'Add', inputs: ['c1', 'temb'], outputs: ['t1'] },
    { op: 'GroupNormalization', inputs: ['t1', 'gn2w', 'gn2b'], outputs: ['n2'], attrs: gn },
    { op: 'Sigmoid', inputs: ['n2'], outputs: ['s2'] },
    { op: 'Mul', inputs: ['n2', 's2'], outputs: ['a2'] },
    { op: 'Conv', inputs: ['a2', 'w2', 'b2'], outputs: ['c2'], attrs: cv },
    { op: 'Add', inputs: ['x', 'c2'], outputs: ['y'] },
  ];
  const model = buildModel({
    name: 'resnet_block',
    nodes,
    inputs: [
      { name: 'x', dtype: 'float32', dims: [1, ch, hw, hw] },
      { name: 'temb', dtype: 'float32', dims: [1, ch, 1, 1] },
    ],
    outputs: [{ name: 'y', dtype: 'float32', dims: [1, ch, hw, hw] }],
    initializers: Object.entries(p).map(([name, t]) => ({
      name,
      dtype: 'float32' as const,
      dims: t.shape,
      data: t.data as Float32Array,
    })),
  });
  // The eager engine without attnkit's TypeScript: one single-node session per op, run in sequence through
  // the native binding, once with onnxruntime's default session options (thread-pool workers keep spinning
  // after a Run) and once with attnkit's (src/kernels/ort.ts createSession).
  const values: Record<string, OrtTensor> = { x: x.ort(), temb: temb.ort() };
  for (const [name, t] of Object.entries(p)) values[name] = t.ort();
  const perOp = (defaults: boolean) =>
    nodes.map((node) => {
      const m = buildModel({
        name: node.op,
        nodes: [node],
        inputs: node.inputs.map((name) => ({ name, dtype: 'float32' as const })),
        outputs: node.outputs.map((name) => ({ name, dtype: 'float32' as const })),
      });
      let session: NativeSession;
      if (defaults) {
        session = new (binding().InferenceSession)();
        session.loadModel(m.buffer as ArrayBuffer, m.byteOffset, m.byteLength, {
          intraOpNumThreads: cores,
          interOpNumThreads: 1,
          executionMode: 'sequential',
          graphOptimizationLevel: 'all',
        });
      } else {
        session = createSession(m, { intraOpThreads: cores });
      }
      return { node, session };
    });
  const runPerOp = (sessions: ReturnType<typeof perOp>) => {
    const env = { ...values };
    for (const { node, session } of sessions) {
      const feeds: Record<string, OrtTensor> = {};
      for (const name of node.inputs) feeds[name] = env[name]!;
      const out = runSession(session, feeds, node.outputs);
      node.outputs.forEach((name, i) => {
        env[name] = out[i]!;
      });
    }
    return env['y']!;
  };
  const defaultSessions = perOp(true);
  const attnkitSessions = perOp(false);
  const fused = await plainSession(model, cores);
  const feeds = { x: x.ort(), temb: temb.ort() } as unknown as Record<string, ort.Tensor>;
  const ref = (await fused.run(feeds))['y']!.data as Float32Array;
  agree('resnet block: attnkit eager vs one session', ref, eager().data as Float32Array, notes, 1e-3);
  agree(
    'resnet block: per-op sessions vs one session',
    ref,
    runPerOp(attnkitSessions).data as Float32Array,
    notes,
    1e-3,
  );
  const ts = await timeRounds(
    [() => fused.run(feeds), () => runPerOp(defaultSessions), () => runPerOp(attnkitSessions), eager],
    { rounds: 7, warmup: 1, repeats: 3 },
  );
  await fused.release();
  for (const { session } of [...defaultSessions, ...attnkitSessions]) session.dispose();
  const c = `resnet block ${ch}ch 1×${hw}×${hw} (10 ops)`;
  const flops = 2 * (2 * ch * ch * 9 * hw * hw);
  return compare([
    row(c, 'onnxruntime, whole block as one session', ts[0]!, { baseline: true, flops }),
    row(c, 'one native session per op, ORT default options', ts[1]!, {
      flops,
      note: 'thread pools keep spinning after Run',
    }),
    row(c, "one native session per op, attnkit's options", ts[2]!, {
      flops,
      note: 'session.intra_op.allow_spinning = 0',
    }),
    row(c, 'attnkit eager (10 ops)', ts[3]!, { flops }),
  ]);
}

function find(rows: readonly BenchRow[], c: string, impl: string): BenchRow {
  const r = rows.find((x) => x.case.startsWith(c) && x.impl.startsWith(impl));
  if (!r) throw new Error(`engine bench: no row ${c} / ${impl}`);
  return r;
}

function targets(rows: readonly BenchRow[]): Target[] {
  const add = find(rows, 'add', 'attnkit');
  const mm = find(rows, 'gemm', 'attnkit');
  const cv = find(rows, 'conv', 'attnkit');
  const dispatchUs = add.timing.median * 1e6;
  return [
    {
      name: 'dispatch overhead',
      requirement: 'attnkit small op ≤ 25 µs per call',
      value: dispatchUs,
      unit: 'µs',
      pass: dispatchUs <= 25,
    },
    {
      name: 'gemm 1024³',
      requirement: 'attnkit ≥ 0.9× onnxruntime session',
      value: mm.speedVsBaseline!,
      unit: '×',
      pass: mm.speedVsBaseline! >= 0.9,
    },
    {
      name: 'conv 3×3 320→320',
      requirement: 'attnkit ≥ 0.9× onnxruntime session',
      value: cv.speedVsBaseline!,
      unit: '×',
      pass: cv.speedVsBaseline! >= 0.9,
    },
  ];
}

const engine: Bench = {
  name: 'engine',
  description: 'eager op dispatch, 1024³ GEMM and 3×3 conv: attnkit vs onnxruntime-node vs tfjs-wasm',
  async run(): Promise<BenchResult> {
    const cores = os.availableParallelism();
    setThreads(cores); // attnkit's op sessions: the same intra-op thread count as the plain sessions
    const notes: string[] = [
      `onnxruntime-node ${packageVersion('onnxruntime-node')}: ${threads()} intra-op threads for attnkit and ` +
        'for the plain sessions; "vs baseline" = baseline time / this time (> 1 is faster).',
    ];
    const tfw = await loadTfWasm(notes);
    const rows = [
      ...(await dispatch(cores, notes)),
      ...(await gemm(cores, tfw, notes)),
      ...(await conv(cores, tfw, notes)),
      ...(await resnetBlock(cores, notes)),
    ];
    return { name: 'engine', rows, targets: targets(rows), notes };
  },
};

export default engine;
