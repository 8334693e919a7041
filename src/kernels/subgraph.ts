// Cached sessions of whole subgraphs (issue 32): a module traced once into one ONNX graph whose weights are
// constant initializers, so onnxruntime prepacks them (NCHWc convolutions, packed GEMM operands) and fuses
// across ops — what one session per op (dispatch.ts) cannot do. nn/subgraph.ts traces and runs them;
// this file keeps the sessions: keyed by owner (a module) and a key (input shapes, what else changes the
// graph), built with the current thread count, and bounded by a byte budget.
//
// Each session holds its own (prepacked) copy of the weights it uses. Its graph's weights are written to the
// spill file (subgraph-spill.ts) and onnxruntime reads them from there, so the JavaScript copies can be
// dropped (parked, nn/subgraph.ts) before the session is built: a weight then lives once, in the session, and
// is read back from the spill file only where eager code needs it. The budget bounds the sessions' copies:
// sessions are counted by their initializers' bytes. A cache that is full evicts the least recently used session only if it was not used during the
// last round of uses (as many uses as there are sessions); otherwise the new subgraph is not built and its
// module runs eagerly. That keeps a forward pass whose modules do not all fit from evicting and rebuilding
// its own sessions on every call.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import onnxProto from 'onnx-proto';
import { buildModelWithExternalData, type GraphSpec } from './graph.js';
import {
  assertMainThread,
  createGraphSession,
  type NativeSession,
  type OrtTensor,
  runSession,
  threads,
} from './ort.js';
import { spill, spillLocation } from './subgraph-spill.js';

const { onnx } = onnxProto;

interface Entry {
  readonly session: NativeSession;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly bytes: number;
  readonly owner: number;
  readonly id: string;
  lastUse: number;
}

/** A built subgraph session: run it with `runSubgraph`. */
export type Subgraph = Omit<Entry, 'lastUse'>;

const GIB = 2 ** 30;

function envBudget(): number {
  const v = process.env['ATTNKIT_SUBGRAPH_BYTES'];
  const n = v === undefined ? Number.NaN : Number(v);
  return Number.isFinite(n) && n >= 0 ? n : 4 * GIB;
}

const state = {
  /**
   * Off unless ATTNKIT_SUBGRAPHS=1 or `setSubgraphs(true)`: a session's fusions round differently from the op
   * by op path (≤ 1e-5 on the UNet), so with them on an identity hook no longer gives the same bits as no hook.
   */
  enabled: process.env['ATTNKIT_SUBGRAPHS'] === '1',
  budget: envBudget(),
  used: 0,
  tick: 0,
  built: 0,
  evicted: 0,
  refused: 0,
  threads: 0,
};

/** LRU order: a Map iterates in insertion order, and a use re-inserts its entry at the end. */
const entries = new Map<string, Entry>();
const ownerIds = new WeakMap<object, number>();
let nextOwner = 1;
const collected = new FinalizationRegistry<number>((owner) => {
  for (const [id, e] of entries) if (e.owner === owner) drop(id, e);
});

function ownerId(owner: object): number {
  let id = ownerIds.get(owner);
  if (id === undefined) {
    id = nextOwner++;
    ownerIds.set(owner, id);
    collected.register(owner, id);
  }
  return id;
}

function drop(id: string, e: Entry): void {
  e.session.dispose();
  entries.delete(id);
  state.used -= e.bytes;
}

/** Whether hook-free modules run as cached subgraph sessions (`ATTNKIT_SUBGRAPHS=1` or `setSubgraphs(true)`). */
export function subgraphsEnabled(): boolean {
  return state.enabled;
}

/**
 * Turns subgraph sessions on or off (issue 32; off, the default: every module runs op by op — the reference
 * path). Sessions stay cached while off (`clearSubgraphCache` drops them).
 */
export function setSubgraphs(on: boolean): void {
  state.enabled = on;
}

/**
 * Sets the byte budget of the cached subgraph sessions (their weights' bytes, beyond the JavaScript copy; default
 * 4 GiB or `ATTNKIT_SUBGRAPH_BYTES`). Sessions over a smaller budget are dropped, least recently used first.
 */
export function setSubgraphBudget(bytes: number): void {
  if (!Number.isFinite(bytes) || bytes < 0)
    throw new Error(`setSubgraphBudget: expected a byte count ≥ 0, got ${bytes}`);
  state.budget = bytes;
  for (const [id, e] of entries) {
    if (state.used <= bytes) break;
    drop(id, e);
    state.evicted++;
  }
}

/** The cached session of (owner, key), or undefined; a thread-count change drops every session first. */
export function findSubgraph(owner: object, key: string): Subgraph | undefined {
  if (state.threads !== threads()) {
    clearSubgraphCache(); // sessions keep the thread count they were built with
    state.threads = threads();
  }
  const id = `${ownerId(owner)}|${key}`;
  const e = entries.get(id);
  if (!e) return undefined;
  entries.delete(id);
  entries.set(id, e);
  e.lastUse = ++state.tick;
  return e;
}

/** Bytes of a graph's initializers: what its session holds beside the JavaScript copy. */
export function graphBytes(g: GraphSpec): number {
  let n = 0;
  for (const t of g.initializers ?? []) n += t.data.byteLength;
  return n;
}

/** A traced graph serialized for onnxruntime, its weights in the spill file (no JavaScript array referenced). */
export interface SpilledGraph {
  readonly model: Uint8Array;
  readonly bytes: number;
  readonly nodes: number;
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
}

/** Initializers smaller than this stay inside the model bytes (biases of a few channels, scalars). */
const INLINE_BYTES = 1024;

/**
 * Writes a traced graph's weights to the spill file (those already there are not written again) and serializes
 * the graph with its weights as external data read from there.
 */
export function spillGraph(g: GraphSpec): SpilledGraph {
  const { model, chunks } = buildModelWithExternalData(g, 'w', INLINE_BYTES, true);
  const big = (g.initializers ?? []).filter((t) => t.data.byteLength >= INLINE_BYTES);
  if (big.length !== chunks.length)
    throw new Error(`${g.name}: ${chunks.length} external chunks for ${big.length} weights`);
  const proto = onnx.ModelProto.decode(model);
  const location = spillLocation();
  for (const t of proto.graph?.initializer ?? []) {
    const loc = t.externalData?.find((e) => e.key === 'location')?.value;
    if (!loc) continue;
    const k = Number(loc.slice(2)); // `w.k`: chunk k, the k-th large initializer
    const ref = spill((big[k] as (typeof big)[number]).data);
    t.externalData = [
      { key: 'location', value: location },
      { key: 'offset', value: String(ref.offset) },
      { key: 'length', value: String(ref.length) },
    ];
  }
  return {
    model: onnx.ModelProto.encode(proto).finish(),
    bytes: graphBytes(g),
    nodes: g.nodes.length,
    inputNames: g.inputs.map((i) => i.name),
    outputNames: g.outputs.map((o) => o.name),
  };
}

/** Whether the budget has room for a session of `bytes`, evicting idle sessions if that makes room. */
export function subgraphRoom(bytes: number): boolean {
  if (makeRoom(bytes)) return true;
  state.refused++;
  return false;
}

let collectGarbage: (() => void) | undefined;

/**
 * Runs V8's garbage collector now: after a module's weights were parked, so that their arrays are freed before
 * onnxruntime allocates its own copy (otherwise both may be alive at once — the peak this cache exists to avoid).
 */
export function freeParkedArrays(): void {
  if (!collectGarbage) {
    setFlagsFromString('--expose-gc');
    collectGarbage = runInNewContext('gc') as () => void;
  }
  collectGarbage();
}

/**
 * Builds and caches the session of a spilled graph for (owner, key); `name` says what it is in errors. Returns
 * undefined, building nothing, when the budget has no room for it (the caller runs its module eagerly).
 */
export function addSubgraph(owner: object, key: string, g: SpilledGraph, name: string): Subgraph | undefined {
  if (!makeRoom(g.bytes)) {
    state.refused++;
    return undefined;
  }
  assertMainThread();
  let session: NativeSession;
  try {
    session = createGraphSession(g.model, []);
  } catch (e) {
    throw new Error(
      `${name}: onnxruntime could not build its subgraph session (${g.nodes} nodes); ` +
        `set ATTNKIT_SUBGRAPHS=0 to run it op by op: ${(e as Error).message}`,
    );
  }
  state.built++;
  const id = `${ownerId(owner)}|${key}`;
  const old = entries.get(id);
  if (old) drop(id, old);
  const e: Entry = {
    session,
    inputNames: g.inputNames,
    outputNames: g.outputNames,
    bytes: g.bytes,
    owner: ownerId(owner),
    id,
    lastUse: ++state.tick,
  };
  entries.set(id, e);
  state.used += g.bytes;
  return e;
}

/** Frees budget for `bytes` by evicting sessions idle for a whole round of uses; false if it cannot. */
function makeRoom(bytes: number): boolean {
  if (bytes > state.budget) return false;
  for (const [id, e] of entries) {
    if (state.used + bytes <= state.budget) break;
    if (state.tick - e.lastUse <= entries.size) return false; // still in use: do not thrash
    drop(id, e);
    state.evicted++;
  }
  return state.used + bytes <= state.budget;
}

/** Drops one cached session (its weights changed, so the graph's constants are stale). */
export function dropSubgraph(s: Subgraph): void {
  const e = entries.get(s.id);
  if (e === s) drop(s.id, e);
}

/** Runs a subgraph session on its inputs (in the order of its graph inputs); outputs in graph order. */
export function runSubgraph(s: Subgraph, inputs: readonly OrtTensor[]): OrtTensor[] {
  const feeds: Record<string, OrtTensor> = {};
  for (let i = 0; i < inputs.length; i++) feeds[s.inputNames[i] as string] = inputs[i] as OrtTensor;
  return runSession(s.session, feeds, s.outputNames);
}

/** Counts of the subgraph cache: live sessions and their bytes, the budget, and sessions built / evicted / refused. */
export function subgraphStats(): {
  sessions: number;
  bytes: number;
  budget: number;
  built: number;
  evicted: number;
  refused: number;
} {
  const { used, budget, built, evicted, refused } = state;
  return { sessions: entries.size, bytes: used, budget, built, evicted, refused };
}

/** Drops every cached subgraph session. */
export function clearSubgraphCache(): void {
  for (const [id, e] of entries) drop(id, e);
}
