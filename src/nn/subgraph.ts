// A module's forward as one cached onnxruntime session (issue 32, kernels/subgraph.ts): the first call for an
// input signature runs eagerly under a trace (tensor/trace.ts, as `attnkit export` does), and the traced
// graph — the module's parameters as constant initializers — becomes a session; later calls with the same
// signature run that session. The eager path stays the reference and runs whenever gradients are recorded, a
// trace is already open (an export, or a bigger subgraph being traced), subgraphs are off, or the caller's
// `accept` refuses the traced graph (a hook applied while it was traced).

import type { GraphSpec } from '../kernels/graph.js';
import {
  addSubgraph,
  dropSubgraph,
  findSubgraph,
  freeParkedArrays,
  graphBytes,
  runSubgraph,
  type Subgraph,
  spillGraph,
  subgraphRoom,
  subgraphsEnabled,
} from '../kernels/subgraph.js';
import { markSpilled, readSpill, type SpillRef, spill, spilledAt } from '../kernels/subgraph-spill.js';
import { activeTrace, GraphTrace, isGradEnabled, Tensor, tracksGrad, withTrace } from '../tensor/index.js';
import type { Module, Parameter } from './module.js';

/** One cached forward: its module (owner of the session and its constants), key and name in errors. */
export interface SubgraphCall {
  /** The module whose parameters the graph holds as constants; the cache drops the graph if one is replaced. */
  module: Module;
  /** What else makes a different graph than the inputs' shapes (an upsampling size, a branch taken). */
  key?: string;
  /** The module's path, for errors. */
  name: string;
  /**
   * Called after a traced (eager) run, before its graph is kept: false means the run was not the hook-free
   * path (a hook applied), so the graph is discarded and the output, computed eagerly, is used as it is.
   */
  accept?: () => boolean;
}

const paramsOf = new WeakMap<Module, Parameter[]>();
/** The parameter versions each session was traced with: a replaced tensor (LoRA merge, load) makes it stale. */
const tracedWith = new WeakMap<Subgraph, number[]>();

function params(m: Module): Parameter[] {
  let p = paramsOf.get(m);
  if (!p) {
    p = m.parameters();
    paramsOf.set(m, p);
  }
  return p;
}

/** True when this call must run eagerly: subgraphs off, a trace open, or gradients to record. */
export function mustRunEager(module: Module, inputs: readonly Tensor[]): boolean {
  if (!subgraphsEnabled() || activeTrace()) return true;
  if (!isGradEnabled()) return false;
  return inputs.some(tracksGrad) || params(module).some((p) => p.resident !== null && tracksGrad(p.value));
}

function signature(inputs: readonly Tensor[], key: string | undefined): string {
  let s = key ?? '';
  for (const x of inputs) s += `|${x.dtype}[${x.shape.join(',')}]`;
  return s;
}

function current(s: Subgraph, ps: readonly Parameter[]): boolean {
  const traced = tracedWith.get(s);
  if (!traced || traced.length !== ps.length) return false;
  for (let i = 0; i < ps.length; i++) if ((ps[i] as Parameter).version !== traced[i]) return false;
  return true;
}

/**
 * Runs `eager`, the module's forward, as a cached subgraph session, or eagerly where it must; returns its
 * outputs. Every tensor `eager` reads must be one of `inputs`, a parameter of the module, or a constant that
 * depends only on the inputs' shapes: anything else would be frozen into the graph as it was when traced.
 * The caller decides that no hook applies before calling this (models/subgraph-gate.ts).
 */
export function subgraphForward(
  call: SubgraphCall,
  inputs: readonly Tensor[],
  eager: () => readonly Tensor[],
): Tensor[] {
  if (mustRunEager(call.module, inputs)) return [...eager()];
  const key = signature(inputs, call.key);
  const ps = params(call.module);
  let s = findSubgraph(call.module, key);
  if (s && !current(s, ps)) {
    dropSubgraph(s);
    s = undefined;
  }
  if (s) {
    park(ps, false); // read back by an eager run since (a hook applied, a gradient): the session holds them
    return run(s, inputs);
  }
  // first call for this signature: run eagerly while tracing it
  let trace: GraphTrace | undefined = new GraphTrace();
  inputs.forEach((x, i) => {
    trace?.input(`x${i}`, x);
  });
  let outs: readonly Tensor[] | undefined = withTrace(trace, eager);
  // a tensor fed twice would be one graph input; a hook that applied makes the graph not the hook-free one
  if (new Set(inputs).size !== inputs.length || (call.accept && !call.accept())) {
    park(ps, true); // it runs eagerly from now on: read back per parameter, not the loaded file as a whole
    return [...outs];
  }
  let g: GraphSpec | undefined = trace.graph(
    outs.map((t, i) => ({ name: `y${i}`, tensor: t })),
    call.name,
  );
  if (!subgraphRoom(graphBytes(g))) return [...outs];
  spillAll(ps); // whole parameters first: the graph's views of them (GEGLU's halves) are found inside
  const spilled = spillGraph(g);
  // the weights are in the spill file now: drop every JavaScript copy before onnxruntime makes its own
  g = undefined;
  trace = undefined;
  outs = undefined;
  parkedSinceFree += park(ps, false);
  if (parkedSinceFree >= FREE_BYTES) {
    freeParkedArrays();
    parkedSinceFree = 0;
  }
  const built = addSubgraph(call.module, key, spilled, call.name);
  if (!built) return [...eager()];
  tracedWith.set(
    built,
    ps.map((p) => p.version),
  );
  // the session's output, not the traced eager one: every call of a signature then gives the same bits
  return run(built, inputs);
}

/**
 * Parked bytes from which a garbage collection runs before the next session is built: parked arrays wait at most
 * this long for V8 to free them (≈ 7 % of SD1.5's UNet), and a collection runs every few large modules, not each.
 */
const FREE_BYTES = 256 * 2 ** 20;
let parkedSinceFree = 0;

/**
 * Parks the module's weights that are in the spill file (with `all`, writes the others there first): their
 * JavaScript arrays are dropped and read back from the file when eager code reads them. Returns the bytes parked.
 */
function spillAll(ps: readonly Parameter[]): void {
  for (const p of ps) {
    const v = p.resident;
    if (v && v.data.byteLength >= 1024) spill(v.data);
  }
}

function park(ps: readonly Parameter[], all: boolean): number {
  let bytes = 0;
  for (const p of ps) {
    const v = p.resident;
    if (!v || v.data.byteLength < 1024) continue;
    const ref = all ? spill(v.data) : spilledAt(v.data);
    if (!ref) continue;
    p.park(restorer(ref, v.shape, v.dtype));
    bytes += ref.length;
  }
  return bytes;
}

function restorer(ref: SpillRef, shape: Tensor['shape'], dtype: Tensor['dtype']): () => Tensor {
  return () => {
    const buf = readSpill(ref);
    const data =
      dtype === 'int32'
        ? new Int32Array(buf)
        : dtype === 'int64'
          ? new BigInt64Array(buf)
          : dtype === 'uint8' || dtype === 'bool'
            ? new Uint8Array(buf)
            : new Float32Array(buf);
    markSpilled(data, ref);
    return new Tensor(data, shape, dtype);
  };
}

function run(s: Subgraph, inputs: readonly Tensor[]): Tensor[] {
  return runSubgraph(
    s,
    inputs.map((x) => x.ort()),
  ).map((t) => Tensor.fromOrt(t));
}
