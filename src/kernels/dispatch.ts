// Runs one ONNX operator on concrete tensors: builds a single-node graph once per
// (domain, op, attributes, input dtypes and ranks, output dtypes), caches its session, and calls it
// synchronously. Input dims are symbolic, so one session serves every shape of that rank.

import { type AttrValue, buildModel, type DType } from './graph.js';
import {
  assertMainThread,
  createSession,
  type NativeSession,
  type OrtTensor,
  runSession,
  threads,
} from './ort.js';

export interface KernelInput {
  dtype: DType;
  rank: number;
  /** Fixed dims for this input (used for small int64 parameter vectors such as Resize sizes). */
  dims?: readonly number[];
  /** Lazily created onnxruntime tensor that views the data without copying. */
  ort(): OrtTensor;
}

export interface KernelSpec {
  op: string;
  domain?: string;
  attrs?: Record<string, AttrValue | undefined>;
  /** Output dtypes, one per output. */
  outputs: readonly DType[];
}

interface CachedKernel {
  session: NativeSession;
  inputNames: string[];
  outputNames: string[];
}

const cache = new Map<string, CachedKernel>();
let sessionsBuilt = 0;
/** The intra-op thread count the cached sessions were built with (setThreads may change it). */
let cacheThreads = 0;

function attrKey(attrs: KernelSpec['attrs']): string {
  if (!attrs) return '';
  let s = '';
  for (const k of Object.keys(attrs).sort()) {
    const v = attrs[k];
    if (v === undefined) continue;
    s += `${k}=${typeof v === 'object' && !Array.isArray(v) ? tensorAttrKey(v.tensor) : JSON.stringify(v)};`;
  }
  return s;
}

function tensorAttrKey(t: {
  dtype: DType;
  dims: readonly number[];
  data: ArrayLike<number | bigint>;
}): string {
  return `T(${t.dtype},${t.dims.join('x')},${Array.from(t.data as ArrayLike<number>, String).join(',')})`;
}

function kernelFor(spec: KernelSpec, inputs: readonly (KernelInput | null)[]): CachedKernel {
  if (threads() !== cacheThreads) {
    // a new count takes effect now: sessions keep the count they were built with
    clearKernelCache();
    cacheThreads = threads();
  }
  let key = `${spec.domain ?? ''}:${spec.op}|${attrKey(spec.attrs)}|`;
  // fixed dims and symbolic rank are tagged apart: [2] (fixed) and rank 2 must not share a session
  for (const x of inputs) key += x ? `${x.dtype}/${x.dims ? `d${x.dims.join('x')}` : `r${x.rank}`},` : '-,';
  key += `|${spec.outputs.join(',')}`;
  let k = cache.get(key);
  if (k) return k;
  assertMainThread(); // its own message, not an op's build failure
  const inputNames = inputs.map((x, i) => (x ? `x${i}` : ''));
  const outputNames = spec.outputs.map((_, i) => `y${i}`);
  const model = buildModel({
    name: spec.op,
    nodes: [
      { op: spec.op, domain: spec.domain, inputs: inputNames, outputs: outputNames, attrs: spec.attrs },
    ],
    inputs: inputs.flatMap((x, i) =>
      x
        ? [
            {
              name: `x${i}`,
              dtype: x.dtype,
              dims: x.dims ?? Array.from({ length: x.rank }, (_, d) => `x${i}_${d}`),
            },
          ]
        : [],
    ),
    outputs: spec.outputs.map((dtype, i) => ({ name: `y${i}`, dtype })),
  });
  let session: NativeSession;
  try {
    session = createSession(model);
  } catch (e) {
    const sig = inputs.map((x) => (x ? `${x.dtype}/rank ${x.rank}` : '-')).join(', ');
    throw new Error(
      `${spec.op}: onnxruntime could not build this op for inputs (${sig}): ${(e as Error).message}`,
    );
  }
  sessionsBuilt++;
  k = { session, inputNames, outputNames };
  cache.set(key, k);
  return k;
}

/**
 * Runs one op. `inputs` may contain null for an omitted optional input (ONNX's empty name).
 * Errors from onnxruntime are rethrown naming the op; callers validate shapes first where they can.
 */
export function runKernel(
  spec: KernelSpec,
  inputs: readonly (KernelInput | null)[],
  preallocated?: readonly (OrtTensor | null)[],
): OrtTensor[] {
  const k = kernelFor(spec, inputs);
  const feeds: Record<string, OrtTensor> = {};
  for (let i = 0; i < inputs.length; i++) {
    const x = inputs[i];
    if (x) feeds[k.inputNames[i] as string] = x.ort();
  }
  try {
    if (!profile) return runSession(k.session, feeds, k.outputNames, preallocated);
    const t0 = performance.now();
    const out = runSession(k.session, feeds, k.outputNames, preallocated);
    const key = `${spec.op}`;
    const p = profile.get(key) ?? { calls: 0, ms: 0 };
    p.calls++;
    p.ms += performance.now() - t0;
    profile.set(key, p);
    return out;
  } catch (e) {
    const shapes = inputs.map((x) => (x ? `[${x.ort().dims.join(', ')}]` : '-')).join(', ');
    throw new Error(`${spec.op}: onnxruntime failed on inputs ${shapes}: ${(e as Error).message}`);
  }
}

let profile: Map<string, { calls: number; ms: number }> | null = null;

/** Starts collecting time per op type (for profiling); `stopProfile` returns and clears it. */
export function startProfile(): void {
  profile = new Map();
}

export function stopProfile(): Map<string, { calls: number; ms: number }> {
  const p = profile ?? new Map();
  profile = null;
  return p;
}

export function kernelCacheStats(): { sessions: number; built: number } {
  return { sessions: cache.size, built: sessionsBuilt };
}

/** Drops every cached session (e.g. after a thread-count change). */
export function clearKernelCache(): void {
  for (const k of cache.values()) k.session.dispose();
  cache.clear();
}
