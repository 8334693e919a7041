// The one module that touches onnxruntime-node's native binding.
//
// The public `InferenceSession.run` of onnxruntime-node is async only because its wrapper defers the native
// call with a promise and `setImmediate`; the native binding it loads runs synchronously and costs a few µs.
// attnkit ops are synchronous, so we call the binding directly. It is internal to onnxruntime-node: the
// version is pinned in package.json and `test/kernels/binding.test.ts` fails loudly if its shape changes.

import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { Tensor as OrtTensor } from 'onnxruntime-common';

export { OrtTensor };

export interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  loadModel(path: string, options: object): void;
  readonly inputMetadata: { name: string }[];
  readonly outputMetadata: { name: string }[];
  run(
    feeds: Record<string, OrtTensor>,
    fetches: Record<string, OrtTensor | null>,
    options: object,
  ): Record<string, OrtTensor>;
  dispose(): void;
}

interface NativeBinding {
  InferenceSession: new () => NativeSession;
  initOrtOnce(logLevel: number, tensorConstructor: typeof OrtTensor): void;
}

const require = createRequire(import.meta.url);
export const ORT_VERSION: string = require('onnxruntime-node/package.json').version;

let native: NativeBinding | undefined;

/**
 * Kernels run on the main thread only. `Worker.terminate()` (or the process exiting) while a worker is inside
 * one of the binding's calls aborts the whole process: the binding's call into the terminating thread fails,
 * node-addon-api turns that into a C++ `Napi::Error`, and rethrowing it as a JavaScript exception fails again
 * in the same thread, so the exception leaves the N-API callback and std::terminate aborts ("terminate called
 * after throwing an instance of 'Napi::Error'"; 3 of 6 timings in test/e2e/process/worker-thread.test.ts).
 * Nothing in JavaScript can catch or delay that, and the ops are synchronous, so a generation is inside the
 * binding nearly all the time. A child process (child_process.fork) can be stopped at any point instead.
 */
export function assertMainThread(): void {
  if (isMainThread) return;
  throw new Error(
    'attnkit: kernels cannot run in a worker thread: terminating a worker while onnxruntime-node runs an op ' +
      'aborts the whole process. Run attnkit on the main thread of a child process (child_process.fork), ' +
      'which can be stopped at any time.',
  );
}

/** Loads the native binding once; throws a clear error when onnxruntime-node's internals moved. */
export function binding(): NativeBinding {
  if (native) return native;
  assertMainThread(); // loading the addon is one of those calls too
  const mod = require('onnxruntime-node/dist/binding') as { binding?: NativeBinding };
  const b = mod.binding;
  if (!b || typeof b.InferenceSession !== 'function' || typeof b.initOrtOnce !== 'function') {
    throw new Error(
      `onnxruntime-node ${ORT_VERSION}: its internal native binding (dist/binding → binding.InferenceSession, ` +
        'initOrtOnce) is not where attnkit expects it. Install the onnxruntime-node version pinned in ' +
        "attnkit's package.json.",
    );
  }
  b.initOrtOnce(3, OrtTensor); // log level 3 = errors only
  native = b;
  return b;
}

export interface SessionSettings {
  /** Threads inside one op (default: the machine's cores). */
  intraOpThreads: number;
}

const settings: SessionSettings = { intraOpThreads: availableParallelism() };

/**
 * The most threads setThreads takes: 4 × the machine's cores, and never over 256. Every cached op session
 * has its own intra-op pool of that many threads (a generation builds ≈ 40 sessions): 64 threads on 2 cores
 * made 2,700 OS threads and a generation 4× slower; 10000 took 2.7 GB and over 90 s.
 */
export const MAX_THREADS = Math.min(256, 4 * availableParallelism());

/**
 * Sets the intra-op thread count. It takes effect at the next op: the op sessions cached with another count
 * are dropped and built again (src/kernels/dispatch.ts). Images are bit-identical at the same count; counts
 * can differ in the last bits of the sums an op splits between threads.
 */
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`setThreads: expected a positive integer, got ${n}`);
  if (n > MAX_THREADS) {
    throw new Error(
      `setThreads: got ${n}, at most ${MAX_THREADS} (4 × this machine's ${availableParallelism()} cores, ` +
        'and never over 256): each op session has a pool of that many threads; use at most the core count',
    );
  }
  settings.intraOpThreads = n;
}

export function threads(): number {
  return settings.intraOpThreads;
}

/**
 * Session options. `spinning` says what the session's intra-op thread-pool workers do when their work is
 * done. By default onnxruntime lets them spin for a while; every cached op has its own session and so its
 * own pool, and the next op (another session) then competes with those spinning workers for the cores: on
 * 2 cores a GroupNorm→SiLU→Conv ResNet block ran 3–5× slower than its ops timed alone (bench/engine.ts,
 * "resnet block"). 'none' (op sessions): workers sleep at once. 'within-run' (whole-graph sessions): they
 * spin between a graph's nodes and stop when Run returns (`session.force_spinning_stop`); for op sessions
 * that did as well as 'none' on a quiet machine but 2–3× worse while other processes loaded it.
 */
function sessionOptions(opts: Partial<SessionSettings>, spinning: 'none' | 'within-run'): object {
  return {
    intraOpNumThreads: opts.intraOpThreads ?? settings.intraOpThreads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    executionProviders: [{ name: 'cpu' }],
    enableCpuMemArena: false,
    extra:
      spinning === 'none'
        ? { session: { intra_op: { allow_spinning: '0' } } }
        : { session: { force_spinning_stop: '1' } },
  };
}

/** Creates a synchronous native session from serialized ONNX model bytes (an op's or a small graph's). */
export function createSession(model: Uint8Array, opts: Partial<SessionSettings> = {}): NativeSession {
  const session = new (binding().InferenceSession)();
  session.loadModel(
    model.buffer as ArrayBuffer,
    model.byteOffset,
    model.byteLength,
    sessionOptions(opts, 'none'),
  );
  return session;
}

/**
 * Creates a session for a graph of many ops from model bytes whose external data files are given from memory
 * (`files`: name → bytes, as buildModelWithExternalData lays them out), spinning only within a run like a
 * whole-graph session (src/kernels/subgraph.ts).
 */
export function createGraphSession(
  model: Uint8Array,
  files: readonly { path: string; data: Uint8Array }[],
  opts: Partial<SessionSettings> = {},
): NativeSession {
  const session = new (binding().InferenceSession)();
  const options = { ...sessionOptions(opts, 'within-run'), externalData: files };
  session.loadModel(model.buffer as ArrayBuffer, model.byteOffset, model.byteLength, options);
  return session;
}

/** Creates a session from an .onnx file (external data files are found beside it), e.g. a whole exported model. */
export function createSessionFromFile(path: string, opts: Partial<SessionSettings> = {}): NativeSession {
  const session = new (binding().InferenceSession)();
  session.loadModel(path, sessionOptions(opts, 'within-run'));
  return session;
}

const runOptions = {};

/**
 * Runs a session synchronously; outputs come back in `outputNames` order. `preallocated[i]`, when given, is
 * a tensor of output i's exact shape that onnxruntime writes into (no allocation and copy of that output).
 */
export function runSession(
  session: NativeSession,
  feeds: Record<string, OrtTensor>,
  outputNames: readonly string[],
  preallocated?: readonly (OrtTensor | null)[],
): OrtTensor[] {
  // plain loops, no closures: this runs once per op
  const fetches: Record<string, OrtTensor | null> = {};
  for (let i = 0; i < outputNames.length; i++) fetches[outputNames[i] as string] = preallocated?.[i] ?? null;
  const out = session.run(feeds, fetches, runOptions);
  const res = new Array<OrtTensor>(outputNames.length);
  for (let i = 0; i < outputNames.length; i++)
    res[i] = preallocated?.[i] ?? (out[outputNames[i] as string] as OrtTensor);
  return res;
}
