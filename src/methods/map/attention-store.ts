// Prompt-to-Prompt's attention store (Hertz et al. 2022, "Prompt-to-Prompt Image Editing with Cross Attention Control").
//
// Records the attention probabilities of the UNet's layers, keyed like the reference (`down_cross`, `mid_self`, …),
// summed over steps and averaged on read. As the reference, it skips maps with more than 32² query tokens and
// keeps only the conditional rows of a classifier-free-guidance batch (both options can be changed). Unlike the
// reference, nothing is found by counting calls: each map is keyed by its layer's module path.
//
// Temporal layers (kind 'temporal', AnimateDiff's motion modules) are recorded when `kinds` names them. Their
// rows are the clips' spatial positions, not the UNet's batch rows, so they get entries of their own
// (`temporalMaps`): per clip of the UNet batch, head and position, the frame × frame map; `framePairMap` and
// `temporalHeatMap` aggregate them per frame pair and over space.

import type { AttentionCall, AttentionKind, Place } from '../../attention/call.js';
import type { Controller } from '../../attention/hooks.js';
import { concat, formatShape, type Tensor } from '../../tensor/index.js';

/** The reference's store keys: place and kind. */
export type StoreKey = `${'down' | 'mid' | 'up'}_${'cross' | 'self'}`;

/** One layer's map, averaged over the steps it was recorded in. */
export interface StoredMap {
  path: string;
  place: 'down' | 'mid' | 'up';
  kind: 'cross' | 'self';
  /** Ordinal of the layer among layers of its kind (forward order). */
  index: number;
  /** Spatial size (h, w) of the queries. */
  size: readonly [number, number];
  /** (rows, heads, Tq, Tk): the recorded rows, in batch order. */
  map: Tensor;
  /** Prompt index (batch role) of each row of `map`. */
  prompts: readonly number[];
  /** Guidance branch of each row of `map`. */
  guidance: readonly ('cond' | 'uncond')[];
  /** Number of steps summed. */
  steps: number;
}

/**
 * Options of the attention store: the largest maps kept, the kinds, places, guidance rows and steps recorded,
 * and a layer filter.
 */
export interface AttentionStoreOptions {
  /** Maps with more query tokens are not stored (reference: 32², "avoid memory overhead"). */
  maxTokens?: number;
  /** Kinds to record (default cross and self; 'temporal' adds the motion modules' layers, see `temporalMaps`). */
  kinds?: readonly ('cross' | 'self' | 'temporal')[];
  /** Places to record (default down, mid, up). */
  places?: readonly ('down' | 'mid' | 'up')[];
  /** Guidance branches whose rows are recorded (default `['cond']`, as the reference; plain batches are all cond). */
  guidance?: readonly ('cond' | 'uncond')[];
  /** Steps recorded: [start, end) indices of denoising steps (default all). */
  steps?: readonly [number, number];
  /** Further layer filter, e.g. on `call.size` or `call.path`. */
  layers?: (call: AttentionCall) => boolean;
}

const UNET_PLACES: readonly Place[] = ['down', 'mid', 'up'];

interface Entry extends Omit<StoredMap, 'map' | 'steps'> {
  sum: Tensor;
  steps: number;
  lastStep: number;
}

export class AttentionStore implements Controller {
  readonly name: string = 'AttentionStore';
  readonly maxTokens: number;
  readonly kinds: readonly ('cross' | 'self' | 'temporal')[];
  readonly places: readonly ('down' | 'mid' | 'up')[];
  readonly guidance: readonly ('cond' | 'uncond')[];
  readonly steps?: readonly [number, number];
  private readonly layers?: (call: AttentionCall) => boolean;
  private entries = new Map<string, Entry>();
  private temporal = new Map<string, TemporalEntry>();

  constructor(opts: AttentionStoreOptions = {}) {
    this.maxTokens = opts.maxTokens ?? 32 ** 2;
    this.kinds = opts.kinds ?? ['cross', 'self'];
    this.places = opts.places ?? ['down', 'mid', 'up'];
    this.guidance = opts.guidance ?? ['cond'];
    this.steps = opts.steps;
    this.layers = opts.layers;
  }

  appliesTo(call: AttentionCall): boolean {
    if (!UNET_PLACES.includes(call.place) || !isStoredKind(call.kind)) return false;
    if (!this.kinds.includes(call.kind) || !this.places.includes(call.place as 'down')) return false;
    if (!call.size) return false;
    // temporal maps hold F × F per position: bound the positions as self-attention's queries are bounded
    const tokens = call.kind === 'temporal' ? call.size[0] * call.size[1] : call.queryTokens;
    if (tokens > this.maxTokens) return false;
    if (this.steps && (call.step < this.steps[0] || call.step >= this.steps[1])) return false;
    return this.layers ? this.layers(call) : true;
  }

  map(call: AttentionCall, p: Tensor): Tensor {
    if (call.kind === 'temporal') return this.recordTemporal(call, p);
    const rows = selectRows(call, this.guidance);
    if (rows.length === 0) return p;
    const kept = takeRows(p, rows);
    const prompts = rows.map((r) => call.batch.prompt[r] ?? r);
    const guidance = rows.map((r) => call.batch.guidance[r]!);
    const e = this.entries.get(call.path);
    if (!e) {
      this.entries.set(call.path, {
        path: call.path,
        place: call.place as 'down',
        kind: call.kind as 'cross',
        index: call.index,
        size: call.size!,
        prompts,
        guidance,
        sum: kept,
        steps: 1,
        lastStep: call.step,
      });
    } else addStep(e, kept, call);
    return p;
  }

  /** Every stored layer's map averaged over its steps, in the order the layers ran. */
  maps(filter: (m: StoredMap) => boolean = () => true): StoredMap[] {
    const out: StoredMap[] = [];
    for (const { sum, lastStep: _, ...e } of this.entries.values()) {
      const m: StoredMap = { ...e, map: sum.div(e.steps) };
      if (filter(m)) out.push(m);
    }
    return out;
  }

  /**
   * A temporal call's map (clips·h·w, heads, F, F) — rows clip after clip, positions row-major within a clip —
   * kept for the clips of the recorded guidance branches as (clips, heads, h·w, F, F).
   */
  private recordTemporal(call: AttentionCall, p: Tensor): Tensor {
    const [h, w] = call.size!;
    const frames = call.queryTokens;
    const heads = p.shape[1] as number;
    const clips = call.batch.guidance.length / frames;
    if (!Number.isInteger(clips) || p.shape[0] !== clips * h * w || p.rank !== 4) {
      throw new Error(
        `AttentionStore: temporal layer ${call.path} has a map ${formatShape(p.shape)} but the batch holds ` +
          `${call.batch.guidance.length} rows of ${frames} frames at ${h}×${w}; expected (clips·h·w, heads, F, F)`,
      );
    }
    // the clip's roles are those of its first frame's UNet row
    const kept = [...Array(clips).keys()].filter((c) =>
      this.guidance.includes(call.batch.guidance[c * frames]!),
    );
    if (kept.length === 0) return p;
    const rows = kept.flatMap((c) => [...Array(h * w).keys()].map((q) => c * h * w + q));
    const map = takeRows(p, rows)
      .reshape([kept.length, h * w, heads, frames, frames])
      .permute([0, 2, 1, 3, 4]);
    const e = this.temporal.get(call.path);
    if (!e) {
      this.temporal.set(call.path, {
        path: call.path,
        place: call.place as 'down',
        index: call.index,
        size: call.size!,
        frames,
        prompts: kept.map((c) => call.batch.prompt[c * frames] ?? c),
        guidance: kept.map((c) => call.batch.guidance[c * frames]!),
        sum: map,
        steps: 1,
        lastStep: call.step,
      });
    } else addStep(e, map, call);
    return p;
  }

  /** Every stored temporal layer's maps averaged over its steps, in the order the layers ran. */
  temporalMaps(): StoredTemporalMap[] {
    return [...this.temporal.values()].map(({ sum, lastStep: _, ...e }) => ({ ...e, map: sum.div(e.steps) }));
  }

  /** The reference's `get_average_attention()`: per key, the averaged maps in layer order. */
  averageAttention(): Record<StoreKey, Tensor[]> {
    const out: Record<StoreKey, Tensor[]> = {
      down_cross: [],
      mid_cross: [],
      up_cross: [],
      down_self: [],
      mid_self: [],
      up_self: [],
    };
    for (const m of this.maps()) out[`${m.place}_${m.kind}`].push(m.map);
    return out;
  }

  /** Number of steps recorded so far (of the layer recorded most often). */
  get numSteps(): number {
    let n = 0;
    for (const e of this.entries.values()) n = Math.max(n, e.steps);
    return n;
  }

  /** Forgets every recorded map (for a new generation). */
  reset(): void {
    this.entries = new Map();
    this.temporal = new Map();
  }
}

function isStoredKind(kind: AttentionKind): kind is 'cross' | 'self' | 'temporal' {
  return kind === 'cross' || kind === 'self' || kind === 'temporal';
}

/**
 * One temporal layer's frame-to-frame attention (AnimateDiff's motion modules), averaged over the steps it was
 * recorded in: per recorded clip, head and spatial position, how each frame attends to every frame.
 */
export interface StoredTemporalMap {
  path: string;
  place: 'down' | 'mid' | 'up';
  /** Ordinal of the layer among the temporal layers (forward order). */
  index: number;
  /** Spatial size (h, w) of the positions. */
  size: readonly [number, number];
  /** Frames of a clip (F). */
  frames: number;
  /** (clips, heads, h·w, F, F): row i of [c, head, position] is frame i's attention over the frames. */
  map: Tensor;
  /** Prompt index (batch role) of each recorded clip, read from its first frame's row. */
  prompts: readonly number[];
  /** Guidance branch of each recorded clip. */
  guidance: readonly ('cond' | 'uncond')[];
  /** Number of steps summed. */
  steps: number;
}

interface TemporalEntry extends Omit<StoredTemporalMap, 'map' | 'steps'> {
  sum: Tensor;
  steps: number;
  lastStep: number;
}

/** A temporal map aggregated per frame pair: (clips, F, F), the mean over heads and positions. */
export function framePairMap(m: StoredTemporalMap): Tensor {
  return m.map.mean({ axes: [1, 2] });
}

/**
 * Where in the frame query frame `i` attends to key frame `j`: (clips, h, w), the probability at each position,
 * averaged over heads.
 */
export function temporalHeatMap(m: StoredTemporalMap, i: number, j: number): Tensor {
  for (const [name, f] of [
    ['i', i],
    ['j', j],
  ] as const) {
    if (!(Number.isInteger(f) && f >= 0 && f < m.frames))
      throw new Error(`temporalHeatMap: frame ${name} must be an integer in [0, ${m.frames}), got ${f}`);
  }
  const [h, w] = m.size;
  const clips = m.map.shape[0] as number;
  return m.map
    .slice(3, i, i + 1)
    .slice(4, j, j + 1)
    .mean({ axes: [1] })
    .reshape([clips, h, w]);
}

/** Batch rows of the given guidance branches, in batch order. */
export function selectRows(call: AttentionCall, guidance: readonly ('cond' | 'uncond')[]): number[] {
  if (call.batch.guidance.length === 0) {
    throw new Error(
      `layer ${call.path} was called without batch roles; pass an AttentionContext with ` +
        'batch: plainBatch(n) or guidedBatch(n)',
    );
  }
  const rows: number[] = [];
  call.batch.guidance.forEach((g, r) => {
    if (guidance.includes(g)) rows.push(r);
  });
  return rows;
}

/** The given rows of a batch tensor, in that order (one slice when they are consecutive). */
export function takeRows(x: Tensor, rows: readonly number[]): Tensor {
  const consecutive = rows.every((r, i) => r === rows[0]! + i);
  if (consecutive && rows.length === x.shape[0]) return x;
  if (consecutive) return x.slice(0, rows[0]!, rows[0]! + rows.length);
  return concat(
    rows.map((r) => x.slice(0, r, r + 1)),
    0,
  );
}

/** Adds one step's maps to a layer's running sum; a second call of the layer within one step is refused. */
function addStep(
  e: { sum: Tensor; steps: number; lastStep: number },
  map: Tensor,
  call: AttentionCall,
): void {
  if (e.lastStep === call.step) {
    throw new Error(
      `AttentionStore: layer ${call.path} was called twice in step ${call.step}; call reset() between runs`,
    );
  }
  e.sum = e.sum.add(map);
  e.steps += 1;
  e.lastStep = call.step;
}
