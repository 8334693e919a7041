// UNet benchmark (issue 3, item 7): one evaluation of the Stable Diffusion 1.5 UNet architecture (random
// weights, 859.5 M parameters = 3.44 GB in float32) at batch 2 with 77 text tokens, 32×32 and 64×64 latents:
//
//   (a) attnkit's eager forward — `unet.forward(x, t, context)` under `noGrad`, one cached onnxruntime session
//       per op;
//   (b) the same model traced by attnkit's exporter (`exportUNet`) into one ONNX graph, written with external
//       data (`writeOnnx`), loaded with `createSessionFromFile` and run with `runSession`: the baseline.
//
//   (c) issue 32: eager with subgraph sessions (src/kernels/subgraph.ts, `setSubgraphs(true)`) beside pure eager
//       (a), with no hooks, a store-only controller on the 16×16 cross-attention layers (DAAM's setting) and
//       Prompt-to-Prompt on every layer; at 1 and 2 threads; the graph (b) is the baseline of each. Then the
//       diffusers/PyTorch column (bench/diffusers-unet.py) where Debian's python3 and /root/oracle exist.
//       UNET_BENCH_SIZES, UNET_BENCH_THREADS, UNET_BENCH_HOOKS (comma-separated) and UNET_BENCH_RUNS_32 / _64
//       (timed rounds after the warm-up; default 2 / 1) pick a subset; UNET_BENCH_DIFFUSERS=0 leaves the
//       diffusers column out, =only runs it alone (so that each part fits a time limit).
//
// The graph's output must match the eager output within 1e-4 (max abs). Also: the largest SD1.5
// self-attention (batch 2, 8 heads, 4096 tokens, head size 40), `flashAttention` vs `softmaxAttention`.
//
// Every measured variant runs in its own child process (this file, `--child <mode> <json>`), so each one's
// peak memory is its own: peak RSS is the process's high-water mark (VmHWM), baseline is its RSS after
// imports and onnxruntime's initialisation, before any weight or input exists. Seconds are the median of a
// few evaluations after one warm-up evaluation (which builds the eager op sessions). The eager child also
// runs one extra profiled evaluation (src/kernels/dispatch.ts startProfile) for the time per op type.
//
// The exported .onnx files (2 × 3.44 GB) go to a temporary folder that is removed at the end.
//
// Where the eager engine loses time (UNET_BENCH_ANALYSIS=1, 32×32, busy 2-core machine, CPU s/eval, which
// other processes' load disturbs less than wall time): eager ≈ 1.34–1.40× the graph. Graph with its weights
// fed as inputs (what op sessions see: no prepacking, no NCHWc conv layout, no constant folding) ≈ 1.15×;
// graph at optimisation level 'basic' (no NCHWc, no extended fusions) ≈ 1.16×, so constant weights (mostly
// NCHWc convs) explain ≈ 15 %, one session per op (unfused elementwise ops, thread-pool hand-offs) the
// rest. Single ops: conv 3×3 with constant weights 1.15–1.24× less CPU at 320/640 channels (not at 1280×4×4);
// Conv + residual as com.microsoft.FusedConv with Z 1.1–1.36×; linear + bias as one Gemm 1.2–1.4× (done in
// src/tensor/ops/linalg.ts); SiLU as QuickGelu(alpha 1) ≈ 2× (done in elementwise.ts); together the last two
// gave 4–10 % on the whole eager UNet.
// Per op type at 64×64 (eager profile vs onnxruntime's profile of the graph, one run each, 2 threads):
// Conv 7.8 vs 6.7 s (+0.3 s NCHWc reorders), Gemm 3.8 vs 3.4, MultiHeadAttention 2.9 vs 3.6, Split (GEGLU
// chunk) 0.78 vs 0.24, GroupNorm 0.8 vs ≈0.7 (ORT expands it into primitives in both), Gelu 0.42 vs 0.25.

import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { flashAttention, softmaxAttention } from '../src/attention/functions.js';
import type { AttentionContext } from '../src/attention/hooks.js';
import type { TokenLookup } from '../src/attention/tokens.js';
import { initializerBytes, writeOnnx } from '../src/io/onnx.js';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { startProfile, stopProfile } from '../src/kernels/dispatch.js';
import type { GraphSpec } from '../src/kernels/graph.js';
import {
  binding,
  createSessionFromFile,
  type NativeSession,
  type OrtTensor,
  runSession,
  setThreads,
  threads,
} from '../src/kernels/ort.js';
import { setSubgraphs, subgraphStats } from '../src/kernels/subgraph.js';
import { spillBytes, spillReads } from '../src/kernels/subgraph-spill.js';
import { AttentionReplace } from '../src/methods/map/attention-replace.js';
import { AttentionStore } from '../src/methods/map/attention-store.js';
import { randomSD15UNet, SD15_UNET_CONFIG } from '../src/models/random-sd15.js';
import { UNet2DConditionModel } from '../src/models/unet2d-condition.js';
import { exportUNet } from '../src/pipelines/export.js';
import { noGrad, Tensor } from '../src/tensor/index.js';
import { Generator } from '../src/tensor/random.js';
import type { Bench, BenchResult, BenchRow, Target, Timing } from './util.js';

const THIS_FILE = fileURLToPath(import.meta.url);

const BATCH = 2;
const TEXT_TOKENS = 77;
const TIMESTEP = 981;
/** Latent sizes; UNET_BENCH_SIZES=32 (comma-separated) measures a subset. */
const SIZES: readonly number[] = (process.env['UNET_BENCH_SIZES'] ?? '32,64').split(',').map(Number);
/** Timed evaluations per size after the warm-up (the 64×64 ones take several seconds each). */
const RUNS: Record<number, number> = {
  32: Number(process.env['UNET_BENCH_RUNS_32'] ?? 2),
  64: Number(process.env['UNET_BENCH_RUNS_64'] ?? 1),
};
const PARITY_TOL = 1e-4;
/** Issue 32's targets: eager with subgraphs vs the exported graph, without hooks and with a 16×16 store. */
const SUBGRAPH_VS_GRAPH_MAX: Record<BenchHooks, number> = { none: 1.05, store: 1.15, p2p: Number.NaN };
/** Eager with subgraphs vs pure eager, max |Δ| of the UNet output. */
const SUBGRAPH_TOL = 1e-5;
/** Peak RSS of the subgraph child without hooks, as a multiple of the float32 weights. */
const SUBGRAPH_RSS_MAX = 1.3;
const HOOKS = (process.env['UNET_BENCH_HOOKS'] ?? 'none,store,p2p').split(',') as BenchHooks[];
const ATTN = { batch: 2, heads: 8, tokens: 4096, headDim: 40 };
const FLASH_TOL = 1e-5;

// ─── helpers shared by the parent and the children ───────────────────────────────────────────────────────

interface Mem {
  /** Current resident set, bytes. */
  rss: number;
  /** High-water mark of the resident set, bytes. */
  hwm: number;
}

function mem(): Mem {
  try {
    const s = readFileSync('/proc/self/status', 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? Number.NaN);
    return { rss: kb('VmRSS') * 1024, hwm: kb('VmHWM') * 1024 };
  } catch {
    const maxRSS = process.resourceUsage().maxRSS * 1024;
    return { rss: process.memoryUsage().rss, hwm: maxRSS };
  }
}

const GB = 1e9;
const gb = (bytes: number) => `${(bytes / GB).toFixed(2)} GB`;

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function timing(samples: readonly number[]): Timing {
  return { median: median(samples), min: Math.min(...samples), repeats: samples.length, inner: 1 };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = d; // NaN propagates as "not ≤"
  }
  return m;
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function saveF32(file: string, a: Float32Array): void {
  writeFileSync(file, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

function loadF32(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/**
 * The SD1.5 UNet with seeded random weights (src/models/random-sd15.ts, shared with `attnkit bench`):
 * deterministic, so every child process builds the same model.
 */
export const buildUNet = randomSD15UNet;

/**
 * The same model read from the weights file the export child wrote (`weights.safetensors` in the run's temporary
 * folder): reading 3.44 GB from the page cache takes seconds, generating it takes ≈ 12 s per child on a quiet
 * machine (28 children). Generated when there is no file.
 */
function loadUNet(file: string | undefined): UNet2DConditionModel {
  if (!file || !existsSync(file)) return buildUNet();
  return UNet2DConditionModel.fromConfig(SD15_UNET_CONFIG).load(readSafetensors(file).tensors);
}

export interface UNetInputs {
  sample: Tensor;
  context: Tensor;
  timestep: Tensor;
}

export function unetInputs(size: number): UNetInputs {
  return {
    sample: new Generator(1).randn([BATCH, 4, size, size]),
    context: new Generator(2).randn([BATCH, TEXT_TOKENS, 768]),
    timestep: Tensor.from(new Array<number>(BATCH).fill(TIMESTEP)),
  };
}

const now = () => performance.now() / 1000;

// ─── children ────────────────────────────────────────────────────────────────────────────────────────────
//
// A measured child sets its variant up, then serves commands from stdin, one line each: `run` (one
// evaluation; answers its seconds and the CPU seconds other processes used meanwhile), `profile` (eager only:
// one evaluation with per-op-type kernel times) and `finish` (writes its last output to a file, answers its
// memory figures and exits). The parent alternates `run` between the graph child and the eager child, so a
// burst of load from another process on the shared machine falls on both alike.

interface ExportArgs {
  dir: string;
  sizes: number[];
  /** Sizes for which to also write the graph with its weights as graph inputs (see `weightsAsInputs`). */
  inputsVariant?: number[];
}
interface ExportResult {
  buildSeconds: number;
  parameters: number;
  weightBytes: number;
  graphs: {
    size: number;
    file: string;
    nodes: number;
    initializers: number;
    bytes: number;
    seconds: number;
  }[];
}

function childExport(a: ExportArgs): ExportResult {
  let t0 = now();
  const unet = buildUNet();
  const buildSeconds = now() - t0;
  writeSafetensors(
    path.join(a.dir, 'weights.safetensors'),
    new Map([...unet.namedParameters()].map(([k, p]) => [k, p.value])),
  );
  const graphs: ExportResult['graphs'] = [];
  for (const size of a.sizes) {
    t0 = now();
    const g = exportUNet(unet, { batch: BATCH, height: size, width: size, textLength: TEXT_TOKENS });
    const file = path.join(a.dir, `unet-${size}.onnx`);
    writeOnnx(file, g);
    if (a.inputsVariant?.includes(size)) weightsAsInputs(g, file);
    graphs.push({
      size,
      file,
      nodes: g.nodes.length,
      initializers: g.initializers?.length ?? 0,
      bytes: initializerBytes(g),
      seconds: now() - t0,
    });
  }
  const parameters = unet.numParameters();
  return { buildSeconds, parameters, weightBytes: parameters * 4, graphs };
}

/** An initializer moved to a graph input: where its data lies in the exported graph's external data file. */
interface MovedWeight {
  name: string;
  dims: number[];
  offset: number;
  length: number;
}

/**
 * For the analysis variant "weights as graph inputs" (what the eager engine's op sessions see): writes
 * `<file>-inputs.onnx`, the same graph with every externally stored initializer turned into a graph input, and
 * `<file>-inputs.json` saying where each one's data lies in `<file>.data` (offsets as writeOnnx /
 * buildModelWithExternalData lay them out: initializers of ≥ 1024 bytes, each 4096-aligned, in order).
 */
function weightsAsInputs(g: GraphSpec, file: string): void {
  const moved: MovedWeight[] = [];
  const kept: NonNullable<GraphSpec['initializers']>[number][] = [];
  let offset = 0;
  for (const t of g.initializers ?? []) {
    if (t.data.byteLength < 1024) {
      kept.push(t);
      continue;
    }
    offset += (4096 - (offset % 4096)) % 4096;
    if (t.dtype !== 'float32') throw new Error(`unet bench: large non-float initializer ${t.name}`);
    moved.push({ name: t.name, dims: [...t.dims], offset, length: t.data.byteLength });
    offset += t.data.byteLength;
  }
  const g2: GraphSpec = {
    ...g,
    inputs: [...g.inputs, ...moved.map((m) => ({ name: m.name, dtype: 'float32' as const, dims: m.dims }))],
    initializers: kept,
  };
  writeOnnx(`${file}-inputs.onnx`, g2, { external: false });
  writeFileSync(`${file}-inputs.json`, JSON.stringify(moved));
}

/** CPU time so far: all processes' busy time (from /proc/stat) and this process's own, in seconds. */
function cpuTimes(): { busy: number; self: number } {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const busy = f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!;
    const st = readFileSync('/proc/self/stat', 'utf8');
    const g = st.slice(st.lastIndexOf(')') + 2).split(' ');
    const self = Number(g[11]) + Number(g[12]); // utime, stime (fields 14 and 15)
    return { busy: busy / 100, self: self / 100 };
  } catch {
    return { busy: Number.NaN, self: Number.NaN };
  }
}

/** What a child reports when it finishes. */
interface ChildReport {
  setupSeconds: number;
  baseline: Mem;
  afterSetup: Mem;
  peak: Mem;
  maxAbs: number;
  extra?: Record<string, unknown>;
}

interface Variant {
  /** One evaluation; returns the output data. */
  step(): Float32Array;
  profile?(): { ops: { op: string; calls: number; ms: number }[]; seconds: number };
  extra?: Record<string, unknown>;
}

/**
 * The hook settings of issue 32's comparison: none; a store-only controller on the 16×16 cross-attention layers
 * (DAAM's setting: the maps of one guided step's conditional row); Prompt-to-Prompt's replacement on every
 * attention layer (the reference's defaults: every cross-attention layer, self-attention up to 16² queries) of
 * a batch of [source, target]. A fresh controller per evaluation, as one generation step would see it.
 */
export type BenchHooks = 'none' | 'store' | 'p2p';

/** One token per word at positions 1, 2, … of 77 text states: what P2P's replacement needs of a tokenizer. */
const wordPerToken: TokenLookup = {
  modelMaxLength: TEXT_TOKENS,
  wordTokens: (prompt) => prompt.split(' ').map((word, i) => ({ word, indices: [i + 1] })),
  tokenIndices(prompt, word) {
    const words = prompt.split(' ');
    const i = typeof word === 'number' ? word : words.indexOf(word);
    if (i < 0 || i >= words.length) throw new Error(`bench tokens: no word ${word} in '${prompt}'`);
    return [i + 1];
  },
  keptTokenIndices(prompt, word) {
    return this.tokenIndices(prompt, word);
  },
  call: (prompt) => ({ ids: [[0, ...prompt.split(' ').map((_, i) => i + 1), 49407]] }),
};

function benchContext(hooks: BenchHooks): AttentionContext | undefined {
  const step = { step: 0, numSteps: 1, timestep: TIMESTEP };
  if (hooks === 'store') {
    const store = new AttentionStore({
      kinds: ['cross'],
      layers: (c) => c.size?.[0] === 16 && c.size[1] === 16,
    });
    return { ...step, controllers: [store], batch: { guidance: ['uncond', 'cond'], prompt: [0, 0] } };
  }
  if (hooks === 'p2p') {
    const prompts = ['a cat riding a bike', 'a dog riding a bike'];
    const p2p = new AttentionReplace({
      tokenizer: wordPerToken,
      prompts,
      crossReplaceSteps: 1,
      selfReplaceSteps: 1,
    });
    return { ...step, controllers: [p2p], batch: { guidance: ['cond', 'cond'], prompt: [0, 1] } };
  }
  return undefined;
}

function setupEager(size: number, subgraphs: boolean, hooks: BenchHooks, weights?: string): Variant {
  setSubgraphs(subgraphs);
  const unet = loadUNet(weights);
  const inputs = unetInputs(size);
  const forward = () =>
    noGrad(() => unet.forward(inputs.sample, inputs.timestep, inputs.context, { ctx: benchContext(hooks) }));
  return {
    step: () => forward().data as Float32Array,
    profile() {
      startProfile();
      const t0 = now();
      forward();
      const seconds = now() - t0;
      const ops = [...stopProfile()]
        .map(([op, p]) => ({ op, calls: p.calls, ms: p.ms }))
        .sort((x, y) => y.ms - x.ms);
      return { ops, seconds };
    },
  };
}

interface GraphArgs {
  size: number;
  file: string;
  /** Analysis variants: onnxruntime's graph optimisation level (default 'all', as src/kernels/ort.ts). */
  opt?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Analysis variant: run `<file>-inputs.onnx`, feeding the weights from `<file>.data` as inputs. */
  weightsAsInputs?: boolean;
}

/** The whole-graph session options of src/kernels/ort.ts (not exported there), another optimisation level. */
function analysisSession(file: string, opt: string): NativeSession {
  const session = new (binding().InferenceSession)();
  session.loadModel(file, {
    intraOpNumThreads: threads(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: opt,
    executionProviders: [{ name: 'cpu' }],
    enableCpuMemArena: false,
    extra: { session: { force_spinning_stop: '1' } },
  });
  return session;
}

function setupGraph(a: GraphArgs): Variant {
  const inputs = unetInputs(a.size);
  const feeds: Record<string, OrtTensor> = {
    sample: inputs.sample.ort(),
    timestep: inputs.timestep.ort(),
    encoder_hidden_states: inputs.context.ort(),
  };
  let session: NativeSession;
  if (a.weightsAsInputs) {
    const moved = JSON.parse(readFileSync(`${a.file}-inputs.json`, 'utf8')) as MovedWeight[];
    const fd = openSync(`${a.file}.data`, 'r');
    for (const m of moved) {
      const w = new Float32Array(m.length / 4);
      const bytes = new Uint8Array(w.buffer);
      for (let off = 0; off < m.length; ) off += readSync(fd, bytes, off, m.length - off, m.offset + off);
      feeds[m.name] = new Tensor(w, m.dims).ort();
    }
    closeSync(fd);
    session = analysisSession(`${a.file}-inputs.onnx`, a.opt ?? 'all');
  } else if (a.opt && a.opt !== 'all') {
    session = analysisSession(a.file, a.opt);
  } else {
    session = createSessionFromFile(a.file);
  }
  return { step: () => (runSession(session, feeds, ['noise_pred'])[0] as OrtTensor).data as Float32Array };
}

function setupAttention(impl: 'flash' | 'softmax'): Variant {
  const { batch, heads, tokens, headDim } = ATTN;
  const shape = [batch, heads, tokens, headDim];
  const q = new Generator(11).randn(shape);
  const k = new Generator(12).randn(shape);
  const v = new Generator(13).randn(shape);
  const fn = impl === 'flash' ? flashAttention : softmaxAttention;
  const scale = 1 / Math.sqrt(headDim);
  return { step: () => noGrad(() => fn.run({ q, k, v, scale })).data as Float32Array };
}

async function serve(mode: string, args: Record<string, unknown>): Promise<void> {
  const say = (tag: string, v: unknown) => process.stdout.write(`\n@@ ${tag} ${JSON.stringify(v)}\n`);
  if (mode === 'export') {
    say('RESULT', childExport(args as unknown as ExportArgs));
    return;
  }
  binding(); // onnxruntime loaded and initialised: part of the baseline
  if (typeof args['threads'] === 'number') setThreads(args['threads']);
  const size = args['size'] as number;
  let baseline = mem();
  const t0 = now();
  let variant: Variant;
  if (mode === 'eager')
    variant = setupEager(
      size,
      args['subgraphs'] === true,
      (args['hooks'] as BenchHooks | undefined) ?? 'none',
      args['weights'] as string | undefined,
    );
  else if (mode === 'graph') variant = setupGraph(args as unknown as GraphArgs);
  else if (mode === 'attention') {
    variant = setupAttention(args['impl'] as 'flash' | 'softmax');
    baseline = mem(); // after the inputs (3 × 10.5 MB): the peak over it is the function's own memory
  } else throw new Error(`unet bench: unknown child mode '${mode}'`);
  // with hooks, the first call traces the whole UNet and drops that graph (a hook applied), the second traces and
  // builds the hook-free modules' sessions: one more untimed evaluation, so that the warm-up run is the second
  if (mode === 'eager' && args['subgraphs'] === true && args['hooks'] !== 'none') variant.step();
  const setupSeconds = now() - t0;
  const afterSetup = mem();
  say('READY', { setupSeconds });
  let last: Float32Array | null = null;
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    const cmd = line.trim();
    if (cmd === 'run') {
      const c0 = cpuTimes();
      const r0 = now();
      last = variant.step();
      const seconds = now() - r0;
      const c1 = cpuTimes();
      const cpu = c1.self - c0.self;
      say('TIME', { seconds, cpu, othersCpu: c1.busy - c0.busy - cpu });
    } else if (cmd === 'profile') {
      say('PROFILE', variant.profile ? variant.profile() : null);
    } else if (cmd === 'finish') {
      const peak = mem();
      if (last) saveF32(args['out'] as string, last);
      const report: ChildReport = {
        setupSeconds,
        baseline,
        afterSetup,
        peak,
        maxAbs: last ? maxAbs(last) : 0,
        extra: { subgraphs: subgraphStats(), spill: { written: spillBytes(), read: spillReads() } },
      };
      say('RESULT', report);
      lines.close();
      break;
    } else if (cmd) {
      throw new Error(`unet bench: unknown command '${cmd}'`);
    }
  }
}

// ─── parent ──────────────────────────────────────────────────────────────────────────────────────────────

interface RunSample {
  /** Wall-clock seconds of one evaluation. */
  seconds: number;
  /** CPU seconds this process used during it (all its threads). */
  cpu: number;
  /** CPU seconds all other processes on the machine used meanwhile. */
  othersCpu: number;
}

/** A child process running this file with `--child <mode> <json>`; its stderr passes through. */
class Child {
  readonly #proc: ChildProcessWithoutNullStreams;
  readonly #waiting: { tag: string; resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  #buffer = '';
  #exit: Error | null = null;

  constructor(
    readonly mode: string,
    args: object,
  ) {
    this.#proc = spawn(
      process.execPath,
      [...process.execArgv, THIS_FILE, '--child', mode, JSON.stringify(args)],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    ) as unknown as ChildProcessWithoutNullStreams;
    this.#proc.stdout.on('data', (d: Buffer) => {
      this.#buffer += d.toString();
      let i = this.#buffer.indexOf('\n');
      while (i >= 0) {
        const line = this.#buffer.slice(0, i);
        this.#buffer = this.#buffer.slice(i + 1);
        if (line.startsWith('@@ ')) {
          const sp = line.indexOf(' ', 3);
          const tag = line.slice(3, sp);
          const w = this.#waiting.shift();
          if (w && w.tag === tag) w.resolve(JSON.parse(line.slice(sp + 1)));
          else w?.reject(new Error(`unet bench: child '${mode}' answered ${tag}, expected ${w.tag}`));
        } else if (line.trim()) process.stderr.write(`[${mode}] ${line}\n`);
        i = this.#buffer.indexOf('\n');
      }
    });
    const fail = (e: Error) => {
      this.#exit = e;
      for (const w of this.#waiting.splice(0)) w.reject(e);
    };
    this.#proc.on('error', fail);
    this.#proc.on('close', (code, signal) => {
      if (code !== 0) fail(new Error(`unet bench: child '${mode}' exited with ${code ?? signal}`));
    });
  }

  /** Waits for the next protocol line with `tag` (after sending `cmd`, if given). */
  next<T>(tag: string, cmd?: string): Promise<T> {
    if (this.#exit) return Promise.reject(this.#exit);
    const p = new Promise<T>((resolve, reject) =>
      this.#waiting.push({ tag, resolve: resolve as (v: unknown) => void, reject }),
    );
    if (cmd) this.#proc.stdin.write(`${cmd}\n`);
    return p;
  }

  run(): Promise<RunSample> {
    return this.next<RunSample>('TIME', 'run');
  }

  kill(): void {
    if (this.#proc.exitCode === null) this.#proc.kill();
  }
}

interface Measured {
  setupSeconds: number;
  first: RunSample;
  samples: RunSample[];
  report: ChildReport;
  profile?: { ops: { op: string; calls: number; ms: number }[]; seconds: number } | null;
}

/**
 * Starts the children (one after the other: their setups are not timed against each other), warms each up
 * with one evaluation, then runs `rounds` rounds of one evaluation per child in turn.
 */
async function measure(
  specs: { mode: string; args: object; profile?: boolean }[],
  rounds: number,
): Promise<Measured[]> {
  const children: Child[] = [];
  try {
    const ready: { setupSeconds: number }[] = [];
    for (const s of specs) {
      const c = new Child(s.mode, s.args);
      children.push(c);
      ready.push(await c.next<{ setupSeconds: number }>('READY'));
    }
    const first: RunSample[] = [];
    for (const c of children) first.push(await c.run());
    const samples: RunSample[][] = children.map(() => []);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < children.length; i++) samples[i]!.push(await children[i]!.run());
    }
    const out: Measured[] = [];
    for (let i = 0; i < children.length; i++) {
      const c = children[i]!;
      const profile = specs[i]!.profile ? await c.next<Measured['profile']>('PROFILE', 'profile') : undefined;
      const report = await c.next<ChildReport>('RESULT', 'finish');
      out.push({
        setupSeconds: ready[i]!.setupSeconds,
        first: first[i]!,
        samples: samples[i]!,
        report,
        profile,
      });
    }
    return out;
  } finally {
    for (const c of children) c.kill();
  }
}

function log(msg: string): void {
  process.stderr.write(`[unet] ${msg}\n`);
}

function secondsOf(m: Measured): Timing {
  return timing(m.samples.map((s) => s.seconds));
}

/** Median CPU seconds the variant's process used per evaluation. */
function cpuOf(m: Measured): number {
  return median(m.samples.map((s) => s.cpu));
}

function peakOverBaseline(m: Measured): number {
  return m.report.peak.hwm - m.report.baseline.rss;
}

function memNote(m: Measured): string {
  return `peak RSS ${gb(m.report.peak.hwm)} (+${gb(peakOverBaseline(m))} over baseline)`;
}

function othersNote(ms: readonly Measured[]): string {
  const all = ms.flatMap((m) => m.samples);
  const busy = all.reduce((n, s) => n + s.othersCpu, 0) / all.reduce((n, s) => n + s.seconds, 0);
  return `other processes used ${busy.toFixed(2)} cores on average during the timed runs`;
}

const unet: Bench = {
  name: 'unet',
  description: 'SD1.5 UNet (batch 2, 77 tokens, 32×32 and 64×64): eager vs exported graph; flash vs softmax',
  async run(): Promise<BenchResult> {
    const cores = os.availableParallelism();
    // UNET_BENCH_THREADS=1 measures single-threaded kernels (less sensitive to other processes' load)
    // UNET_BENCH_THREADS=1 (comma-separated) measures a subset of the thread counts
    const threadCounts = (process.env['UNET_BENCH_THREADS'] ?? '1,2').split(',').map(Number);
    const nThreads = Math.max(...threadCounts);
    // UNET_BENCH_ANALYSIS=1 adds the graph variants that split the eager/graph gap (see `analyse`)
    const analysis = process.env['UNET_BENCH_ANALYSIS'] === '1';
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'attnkit-bench-unet-'));
    // the exported graphs take 7 GB: remove them on Ctrl-C / kill too, not only when run() ends
    const cleanup = () => rmSync(tmp, { recursive: true, force: true });
    const onSignal = (sig: NodeJS.Signals) => {
      cleanup();
      process.kill(process.pid, sig);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const rows: BenchRow[] = [];
    const targets: Target[] = [];
    const notes: string[] = [
      `${nThreads} intra-op threads (the machine has ${cores} cores) for the eager op sessions and the graph ` +
        'session alike, with the session options of src/kernels/ort.ts (CPU memory arena off; op sessions ' +
        'never spin, the graph session spins only within a run). Each variant runs in its own process; the timed evaluations alternate ' +
        'between the two processes of a case (one warm-up each first). Peak = VmHWM; baseline = RSS after ' +
        'imports and onnxruntime initialisation.',
      `load average at start: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    ];
    const details: Record<string, unknown> = {
      cores,
      sizes: SIZES,
      batch: BATCH,
      textTokens: TEXT_TOKENS,
      timestep: TIMESTEP,
      config: SD15_UNET_CONFIG,
    };
    // UNET_BENCH_DIFFUSERS=0: attnkit only; =only: the diffusers/PyTorch column only
    const diffusers = process.env['UNET_BENCH_DIFFUSERS'] ?? '1';
    try {
      if (diffusers !== 'only') await attnkitCases();
      if (diffusers !== '0') diffusersColumn();
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      cleanup();
    }
    notes.push(
      `load average at end: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    const result = { name: 'unet', rows, targets, notes, details };
    return result;

    async function attnkitCases(): Promise<void> {
      // ── attention functions (UNET_BENCH_ATTENTION=0 skips them)
      if (process.env['UNET_BENCH_ATTENTION'] !== '0')
        await attentionCase(nThreads, tmp, rows, targets, details);
      // ── the UNet: export both sizes from one process (a graph's shapes are those of its traced call)
      log(`exporting the UNet at ${SIZES.join(' and ')} into ${tmp}`);
      const exportChild = new Child('export', {
        dir: tmp,
        sizes: SIZES,
        inputsVariant: analysis ? [ANALYSIS_SIZE] : [],
      });
      const exp = await exportChild.next<ExportResult>('RESULT');
      details['export'] = exp;
      notes.push(
        `model: ${(exp.parameters / 1e6).toFixed(1)} M parameters = ${gb(exp.weightBytes)} in float32 ` +
          `(random: U(±0.02·√3), norms 1 / 0), built in ${exp.buildSeconds.toFixed(1)} s. Exported graphs: ` +
          exp.graphs
            .map(
              (g) =>
                `${g.size}×${g.size}: ${g.nodes} nodes, ${g.initializers} initializers (${g.seconds.toFixed(1)} s)`,
            )
            .join('; '),
      );
      const weightBytes = exp.weightBytes;

      for (const size of SIZES) {
        const g = exp.graphs.find((x) => x.size === size)!;
        for (const n of threadCounts) {
          const pair = await subgraphCases(size, n, g.file, weightBytes, tmp, rows, targets, notes, details);
          if (analysis && size === ANALYSIS_SIZE && n === threadCounts[0] && pair)
            rows.push(...(await analyse(`unet ${size}×${size}`, g.file, pair.graph, pair.eager, n, tmp)));
        }
        rmSync(g.file, { force: true });
        rmSync(`${g.file}.data`, { force: true });
      }
    }

    function diffusersColumn(): void {
      const py = runDiffusers(threadCounts);
      details['diffusers'] = py;
      if ('results' in py) {
        for (const r of py.results) {
          rows.push({
            case: `unet ${BATCH}×4×${r.size}×${r.size}, ${TEXT_TOKENS} tokens, ${r.threads} thread(s), no hooks`,
            impl: `diffusers ${py.diffusers} on PyTorch ${py.torch}`,
            timing: timing(r.seconds),
            note: 'run after the attnkit children, not alternated with them',
          });
        }
      } else notes.push(`diffusers/PyTorch column: not run (${py.notRun})`);
    }
  },
};

/** flashAttention vs softmaxAttention on the largest SD1.5 self-attention, each in its own child. */
async function attentionCase(
  nThreads: number,
  tmp: string,
  rows: BenchRow[],
  targets: Target[],
  details: Record<string, unknown>,
): Promise<void> {
  const { batch, heads, tokens, headDim } = ATTN;
  const attnCase = `self-attention ${batch}×${heads}×${tokens}×${headDim}`;
  log(`${attnCase}: flash vs softmax`);
  const [soft, flash] = (await measure(
    [
      {
        mode: 'attention',
        args: { impl: 'softmax', threads: nThreads, out: path.join(tmp, 'a-softmax') },
      },
      { mode: 'attention', args: { impl: 'flash', threads: nThreads, out: path.join(tmp, 'a-flash') } },
    ],
    3,
  )) as [Measured, Measured];
  const attnDiff = maxAbsDiff(loadF32(path.join(tmp, 'a-softmax')), loadF32(path.join(tmp, 'a-flash')));
  const tSoft = secondsOf(soft);
  const tFlash = secondsOf(flash);
  rows.push(
    {
      case: attnCase,
      impl: 'softmaxAttention (reference)',
      timing: tSoft,
      baseline: true,
      speedVsBaseline: 1,
      note: `peak +${gb(peakOverBaseline(soft))} over inputs`,
    },
    {
      case: attnCase,
      impl: 'flashAttention',
      timing: tFlash,
      speedVsBaseline: tSoft.median / tFlash.median,
      speedVsBaselineMin: tSoft.min / tFlash.min,
      note: `peak +${gb(peakOverBaseline(flash))} over inputs; max |Δ| ${attnDiff.toExponential(2)}`,
    },
  );
  const memFraction = peakOverBaseline(flash) / peakOverBaseline(soft);
  targets.push(
    {
      name: 'flash vs softmax reference',
      requirement: 'max |Δ| ≤ 1e-5 (shown ×1e-6)',
      value: attnDiff / 1e-6,
      unit: '×1e-6',
      pass: attnDiff <= FLASH_TOL,
    },
    {
      name: 'flash peak memory',
      requirement: '< 1/4 of the reference’s (fraction shown)',
      value: memFraction,
      unit: '',
      pass: memFraction < 0.25,
    },
  );
  details['attention'] = { ...ATTN, flash, softmax: soft, maxAbsDiff: attnDiff };
}

const ANALYSIS_SIZE = 32;

/**
 * Issue 32's comparison at one size and thread count: for each hook setting, pure eager (one session per op) and
 * eager with subgraph sessions, timed alternately — with the exported graph too in the first setting, the
 * baseline every setting is compared with.
 */
async function subgraphCases(
  size: number,
  threads: number,
  file: string,
  weightBytes: number,
  tmp: string,
  rows: BenchRow[],
  targets: Target[],
  notes: string[],
  details: Record<string, unknown>,
): Promise<{ graph: Measured; eager: Measured } | undefined> {
  const c = `unet ${BATCH}×4×${size}×${size}, ${TEXT_TOKENS} tokens, ${threads} thread(s)`;
  let graph: Measured | undefined;
  let plain: { graph: Measured; eager: Measured } | undefined;
  const out = (name: string) => path.join(tmp, `${name}-${size}-${threads}`);
  for (const hooks of HOOKS) {
    log(`${c}, hooks ${hooks}: ${graph ? '' : 'graph, '}eager, eager + subgraphs; ${RUNS[size]} rounds`);
    const eagerArgs = (subgraphs: boolean) => ({
      size,
      threads,
      subgraphs,
      hooks,
      weights: path.join(tmp, 'weights.safetensors'),
      out: out(`${hooks}-${subgraphs ? 'sub' : 'eager'}`),
    });
    const specs: { mode: string; args: object }[] = [
      { mode: 'eager', args: eagerArgs(false) },
      { mode: 'eager', args: eagerArgs(true) },
    ];
    if (!graph) specs.unshift({ mode: 'graph', args: { size, threads, file, out: out('graph') } });
    const ms = await measure(specs, RUNS[size]!);
    if (!graph) graph = ms.shift() as Measured;
    const [eager, sub] = ms as [Measured, Measured];
    if (hooks === 'none') plain = { graph, eager };
    const tg = secondsOf(graph);
    const te = secondsOf(eager);
    const ts = secondsOf(sub);
    const diff = maxAbsDiff(loadF32(eagerArgs(true).out), loadF32(eagerArgs(false).out));
    const cc = `${c}, ${hooks === 'none' ? 'no hooks' : hooks === 'store' ? 'store on 16×16 cross-attention' : 'P2P on every layer'}`;
    const row = (impl: string, m: Measured, extra = ''): BenchRow => {
      const t = secondsOf(m);
      return {
        case: cc,
        impl,
        timing: t,
        speedVsBaseline: tg.median / t.median,
        speedVsBaselineMin: tg.min / t.min,
        note: `${memNote(m)}; CPU ${cpuOf(m).toFixed(2)} s/eval${extra}`,
      };
    };
    if (hooks === HOOKS[0]) {
      const gdiff = maxAbsDiff(loadF32(out('graph')), loadF32(eagerArgs(false).out));
      rows.push({ ...row('onnxruntime, exported graph (one session)', graph), baseline: true });
      if (hooks === 'none')
        targets.push({
          name: `graph vs eager output ${size}×${size}, ${threads} thread(s)`,
          requirement: 'max |Δ| ≤ 1e-4 (shown ×1e-6)',
          value: gdiff / 1e-6,
          unit: '×1e-6',
          pass: gdiff <= PARITY_TOL,
        });
    }
    const stats = sub.report.extra?.['subgraphs'] as { sessions: number; bytes: number } | undefined;
    rows.push(
      row('attnkit eager (one session per op)', eager),
      row(
        'attnkit eager + subgraph sessions',
        sub,
        `; ${stats?.sessions ?? '?'} sessions holding ${gb(stats?.bytes ?? 0)}; vs pure eager ` +
          `${(ts.median / te.median).toFixed(2)}×, max |Δ| ${diff.toExponential(2)}`,
      ),
    );
    const limit = SUBGRAPH_VS_GRAPH_MAX[hooks];
    const at = `${size}×${size}, ${threads} thread(s)`;
    if (Number.isFinite(limit))
      targets.push({
        name: `subgraphs vs graph, ${hooks === 'none' ? 'no hooks' : '16×16 store'}, ${at}`,
        requirement: `≤ ${limit}× the exported graph`,
        value: ts.median / tg.median,
        unit: '×',
        pass: ts.median / tg.median <= limit,
      });
    else
      targets.push({
        name: `subgraphs vs pure eager, P2P everywhere, ${at}`,
        requirement: 'no slower than pure eager (≤ 1×)',
        value: ts.median / te.median,
        unit: '×',
        pass: ts.median <= te.median,
      });
    targets.push({
      name: `subgraphs vs pure eager output, ${hooks}, ${at}`,
      requirement: `max |Δ| ≤ ${SUBGRAPH_TOL} (shown ×1e-6)`,
      value: diff / 1e-6,
      unit: '×1e-6',
      pass: diff <= SUBGRAPH_TOL,
    });
    if (hooks === 'none')
      targets.push({
        name: `subgraphs peak RSS, no hooks, ${at}`,
        requirement: `≤ ${SUBGRAPH_RSS_MAX}× the float32 weights (${gb(SUBGRAPH_RSS_MAX * weightBytes)})`,
        value: sub.report.peak.hwm / weightBytes,
        unit: '× weights',
        pass: sub.report.peak.hwm <= SUBGRAPH_RSS_MAX * weightBytes,
      });
    notes.push(`${cc}: ${othersNote([graph, eager, sub])}`);
    details[`unet${size}-t${threads}-${hooks}`] = {
      graph: hooks === HOOKS[0] ? graph : undefined,
      eager,
      subgraphs: sub,
      maxAbsDiff: diff,
      subgraphsOverGraph: ts.median / tg.median,
      eagerOverGraph: te.median / tg.median,
      subgraphsOverEager: ts.median / te.median,
    };
    console.log(
      `\n${cc}\n  graph ${tg.median.toFixed(2)} s, eager ${te.median.toFixed(2)} s, eager + subgraphs ` +
        `${ts.median.toFixed(2)} s (${(ts.median / tg.median).toFixed(2)}× graph, ${(ts.median / te.median).toFixed(2)}× eager); ` +
        `max |Δ| ${diff.toExponential(2)}; peak RSS graph ${gb(graph.report.peak.hwm)}, eager ` +
        `${gb(eager.report.peak.hwm)}, subgraphs ${gb(sub.report.peak.hwm)} (weights ${gb(weightBytes)}); ` +
        `runs ${sub.samples.map((x) => x.seconds.toFixed(2)).join(' ')} s, first ${sub.first.seconds.toFixed(2)} s`,
    );
  }
  return plain;
}

interface DiffusersResult {
  torch: string;
  diffusers: string;
  results: { size: number; threads: number; seconds: number[]; median: number }[];
}

/** The diffusers/PyTorch column (bench/diffusers-unet.py) where Debian's python3 and the oracle sources exist. */
function runDiffusers(threadCounts: readonly number[]): DiffusersResult | { notRun: string } {
  const py = '/usr/bin/python3';
  const oracle = process.env['ATTNKIT_ORACLE'] ?? '/root/oracle';
  const shims = process.env['ATTNKIT_ORACLE_SHIMS'] ?? '/work/shared/oracle/shims';
  if (!existsSync(py) || !existsSync(path.join(oracle, 'diffusers/src/diffusers')))
    return { notRun: `no ${py} or no diffusers sources under ${oracle}` };
  log(`diffusers/PyTorch: ${SIZES.join(', ')} × ${threadCounts.join(', ')} thread(s)`);
  const r = spawnSync(
    py,
    [
      path.join(path.dirname(THIS_FILE), 'diffusers-unet.py'),
      '--sizes',
      SIZES.join(','),
      '--threads',
      threadCounts.join(','),
      '--runs',
      SIZES.map((s) => RUNS[s] ?? 1).join(','),
    ],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      env: {
        ...process.env,
        PYTHONPATH: [`${oracle}/diffusers/src`, `${oracle}/hub/src`, `${oracle}/clip/clip`, shims].join(':'),
      },
    },
  );
  const last = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status !== 0) return { notRun: `python exited with ${r.status ?? r.signal}` };
  try {
    return JSON.parse(last) as DiffusersResult;
  } catch {
    return { notRun: `unreadable output: ${last.slice(0, 200)}` };
  }
}

/**
 * Splits the eager/graph gap at one size with two more variants of the exported graph, timed in alternation
 * with the graph as exported: (1) onnxruntime optimisation level 'basic' instead of 'all' (no NCHWc conv
 * layout, none of the extended fusions; constants still prepacked), (2) the weights as graph inputs, as the
 * eager engine's op sessions see them (no prepacking, no NCHWc, no constant folding; fusions that do not
 * need constant weights remain). Eager vs (2) is then the cost of one session per op; (2) vs the graph the
 * cost of weights that are not constants. Rows compare CPU seconds per evaluation too (less sensitive to
 * other processes' load than wall time).
 */
async function analyse(
  c: string,
  file: string,
  graph: Measured,
  eager: Measured,
  nThreads: number,
  tmp: string,
): Promise<BenchRow[]> {
  const size = ANALYSIS_SIZE;
  log(`${c}: analysis variants`);
  const [all, basic, inputs] = (await measure(
    [
      { mode: 'graph', args: { size, threads: nThreads, file, out: path.join(tmp, 'x-all') } },
      {
        mode: 'graph',
        args: { size, threads: nThreads, file, opt: 'basic', out: path.join(tmp, 'x-basic') },
      },
      {
        mode: 'graph',
        args: { size, threads: nThreads, file, weightsAsInputs: true, out: path.join(tmp, 'x-inputs') },
      },
    ],
    RUNS[size]!,
  )) as [Measured, Measured, Measured];
  const ref = loadF32(path.join(tmp, 'x-all'));
  const row = (impl: string, m: Measured, base: Measured, extra = ''): BenchRow => {
    const t = secondsOf(m);
    const tb = secondsOf(base);
    return {
      case: `${c} (analysis)`,
      impl,
      timing: t,
      baseline: m === base,
      speedVsBaseline: tb.median / t.median,
      speedVsBaselineMin: tb.min / t.min,
      note:
        `CPU ${cpuOf(m).toFixed(2)} s/eval (${(cpuOf(m) / cpuOf(base)).toFixed(2)}× the graph's); ` +
        `peak RSS ${gb(m.report.peak.hwm)}${extra}`,
    };
  };
  const diffOf = (name: string) => maxAbsDiff(ref, loadF32(path.join(tmp, name)));
  const rows = [
    row('graph as exported, optimisation level all', all, all),
    row('graph, optimisation level basic', basic, all, `; max |Δ| ${diffOf('x-basic').toExponential(1)}`),
    row('graph, weights as graph inputs', inputs, all, `; max |Δ| ${diffOf('x-inputs').toExponential(1)}`),
  ];
  console.log(
    `\n${c} (analysis; earlier in the main pair: graph ${cpuOf(graph).toFixed(2)} CPU s/eval, eager ${cpuOf(eager).toFixed(2)})`,
  );
  for (const r of rows)
    console.log(
      `  ${r.impl.padEnd(46)} ${r.timing.median.toFixed(2)} s (min ${r.timing.min.toFixed(2)}); ${r.note}`,
    );
  return rows;
}

export default unet;

if (process.argv[1] && path.resolve(process.argv[1]) === THIS_FILE && process.argv[2] === '--child') {
  await serve(process.argv[3] ?? '', JSON.parse(process.argv[4] ?? '{}') as Record<string, unknown>);
}
