// Selective attention map composition (the survey's map-level type of TF-ICON, Lu et al. 2023, and Object-Shape
// Variations, Patashnik et al. 2023): a layer's attention maps built region by region from several sources.
//
// A part says: for the query tokens in `rows` and the key tokens in `cols`, take the map of `source`. Parts are
// applied in order over the target row's own map, so a later part wins where two overlap:
//   M_target[q, k] = M_source(i)[q, k]   for the last part i with q ∈ rows(i) and k ∈ cols(i)
//   M_target[q, k] = M_own[q, k]         where no part covers (q, k).
// Regions are binary masks on one grid (the latents' h × w); a layer of a coarser size reads a token as in a
// region when any grid cell under it is (max-pooling), so a small object never vanishes from a coarse layer.
// Sources are maps of the same call: another prompt's row of the batch (in the same guidance branch as the
// target, as Prompt-to-Prompt reads its source), or anything that gives a (1, heads, Tq, Tk) map per call.
// With `level: 'scores'` the composition is of the logits before the softmax, as TF-ICON composes them.

import type { AttentionCall } from '../../attention/call.js';
import type { Controller } from '../../attention/hooks.js';
import { concat, formatShape, Tensor, where } from '../../tensor/index.js';
import { boundsOf, checkStepBounds, type StepBounds } from './token-alignment.js';

/** A binary region on a grid of image tokens (row-major, 1 = inside). */
export interface TokenRegion {
  /** (h, w) of the grid: the latents' size; every layer composed must divide it. */
  readonly size: readonly [number, number];
  readonly data: ArrayLike<number>;
}

/** Where a part's maps come from: `(1, heads, Tq, Tk)` for the target row `row` of this call. */
export interface MapSource {
  /** Shown in errors. */
  readonly name: string;
  /** `own` is the call's whole map (B, heads, Tq, Tk); `row` the batch row being composed. */
  mapFor(call: AttentionCall, own: Tensor, row: number): Tensor;
}

/** One region of the composite map: queries `rows` × keys `cols` taken from `source`. */
export interface CompositionPart {
  source: MapSource;
  /** Query tokens (the map's rows); default every token. */
  rows?: TokenRegion;
  /** Key tokens (the map's columns); default every token. */
  cols?: TokenRegion;
}

/** Options of `MapComposition`: the rows composed, the parts, and where and when they apply. */
export interface MapCompositionOptions {
  /** Prompt indices (batch roles) whose rows are composed. */
  targets: readonly number[];
  parts: readonly CompositionPart[];
  /** 'map' (default): the probabilities; 'scores': the logits before the softmax (TF-ICON). */
  level?: 'map' | 'scores';
  /** Guidance branches composed (default `['cond']`, as Prompt-to-Prompt and both references). */
  guidance?: readonly ('cond' | 'uncond')[];
  /** Fraction of steps (or [start, end)) with composition: steps [⌊n·start⌋, ⌊n·end⌋) (default all). */
  steps?: StepBounds;
  /** Layers with more query tokens are left alone (default: none). */
  maxTokens?: number;
  /** Further layer filter (default: every UNet self-attention layer). */
  layers?: (call: AttentionCall) => boolean;
}

/** A row of the same call: prompt `prompt` in the target's guidance branch (P2P's source row). */
export function rowSource(prompt: number): MapSource {
  return {
    name: `prompt ${prompt}`,
    mapFor(call, own, row) {
      const g = call.batch.guidance[row];
      const r = call.batch.prompt.findIndex((p, i) => p === prompt && call.batch.guidance[i] === g);
      if (r < 0) {
        throw new Error(
          `MapComposition: layer ${call.path} has no row of prompt ${prompt} in the ${g} branch; ` +
            'generate with that prompt in the batch',
        );
      }
      return own.slice(0, r, r + 1);
    },
  };
}

/** A region of the whole grid (h, w): every token. */
export function fullRegion(size: readonly [number, number]): TokenRegion {
  return { size, data: new Uint8Array(size[0] * size[1]).fill(1) };
}

/** The tokens of `m`'s grid outside it. */
export function complementRegion(m: TokenRegion): TokenRegion {
  return { size: m.size, data: Uint8Array.from(m.data, (v) => (v ? 0 : 1)) };
}

/** The tokens of a box [x0, y0, x1) × [y0, y1) on a grid (h, w). */
export function boxRegion(
  size: readonly [number, number],
  box: readonly [number, number, number, number],
): TokenRegion {
  const [h, w] = size;
  const [x0, y0, x1, y1] = box;
  const data = new Uint8Array(h * w);
  for (let y = Math.max(0, y0); y < Math.min(h, y1); y++)
    for (let x = Math.max(0, x0); x < Math.min(w, x1); x++) data[y * w + x] = 1;
  return { size, data };
}

/**
 * Selective attention map composition (TF-ICON, Lu et al. 2023; Object-Shape Variations, Patashnik et al.
 * 2023): the maps of the target rows built region by region (query rows × key columns chosen by masks) from
 * several sources, the target's own map where no region covers.
 */
export class MapComposition implements Controller {
  readonly name: string = 'MapComposition';
  readonly targets: readonly number[];
  readonly parts: readonly CompositionPart[];
  readonly level: 'map' | 'scores';
  readonly guidance: readonly ('cond' | 'uncond')[];
  readonly steps: StepBounds;
  readonly maxTokens: number;
  /** The grid (h, w) every region is on. */
  readonly grid: readonly [number, number];
  private readonly layers?: (call: AttentionCall) => boolean;
  private readonly pooled = new Map<string, Tensor>();

  constructor(opts: MapCompositionOptions) {
    if (opts.targets.length === 0) throw new Error('MapComposition: give at least one target prompt');
    if (opts.parts.length === 0)
      throw new Error('MapComposition: give at least one part (source and regions)');
    checkStepBounds(opts.steps ?? 1, 'MapComposition: steps');
    this.targets = opts.targets;
    this.parts = opts.parts;
    this.level = opts.level ?? 'map';
    this.guidance = opts.guidance ?? ['cond'];
    this.steps = opts.steps ?? 1;
    this.maxTokens = opts.maxTokens ?? Number.POSITIVE_INFINITY;
    this.layers = opts.layers;
    this.grid = checkRegions(opts.parts);
  }

  /**
   * Checks, before generation, that the regions are on the grid of latents (h, w): a wrong size is an error
   * naming the part, its source and the region.
   */
  checkLatentSize(size: readonly [number, number]): void {
    const [h, w] = this.grid;
    if (h === 0) return; // no masks: every part covers the whole layer
    if (h !== size[0] || w !== size[1]) {
      const at = this.parts.findIndex((p) => p.rows ?? p.cols);
      const p = this.parts[at]!;
      throw new Error(
        `MapComposition: part ${at} (source ${p.source.name}) has ${p.rows ? 'rows' : 'cols'} on a ${h}×${w} grid ` +
          `but the latents are ${size[0]}×${size[1]}; give masks of the latents' size`,
      );
    }
  }

  appliesTo(call: AttentionCall): boolean {
    if (call.place !== 'down' && call.place !== 'mid' && call.place !== 'up') return false;
    if (this.layers ? !this.layers(call) : call.kind !== 'self') return false;
    if (call.queryTokens > this.maxTokens) return false;
    const [s, e] = boundsOf(this.steps);
    return call.step >= Math.floor(call.numSteps * s) && call.step < Math.floor(call.numSteps * e);
  }

  scores(call: AttentionCall, s: Tensor): Tensor {
    return this.level === 'scores' ? this.compose(call, s) : s;
  }

  map(call: AttentionCall, p: Tensor): Tensor {
    return this.level === 'map' ? this.compose(call, p) : p;
  }

  /** The call's (B, heads, Tq, Tk) tensor with the target rows composed. */
  compose(call: AttentionCall, p: Tensor): Tensor {
    const { guidance, prompt } = call.batch;
    if (guidance.length === 0)
      throw new Error(`${this.name}: layer ${call.path} was called without batch roles`);
    const rows = p.split(p.shape[0] as number, 0); // (1, H, Tq, Tk) each
    let changed = false;
    guidance.forEach((g, r) => {
      if (!this.guidance.includes(g) || !this.targets.includes(prompt[r]!)) return;
      let out = rows[r]!;
      this.parts.forEach((part, i) => {
        const src = part.source.mapFor(call, p, r);
        if (src.shape.join() !== out.shape.join()) {
          throw new Error(
            `${this.name}: layer ${call.path}: source ${part.source.name} (part ${i}) gave a map of ` +
              `${formatShape(src.shape)}, the layer's rows are ${formatShape(out.shape)}`,
          );
        }
        out = where(this.regionOf(call, i), src, out);
      });
      rows[r] = out;
      changed = true;
    });
    return changed ? concat(rows, 0) : p;
  }

  /** Part i's (Tq, Tk) bool mask at this layer: rows × cols, pooled to the layer's size (cached per size). */
  private regionOf(call: AttentionCall, i: number): Tensor {
    const key = `${i}:${call.queryTokens}:${call.keyTokens}`;
    const hit = this.pooled.get(key);
    if (hit) return hit;
    const part = this.parts[i]!;
    const q = this.tokensOf(call, part, 'rows', call.queryTokens);
    const k = this.tokensOf(call, part, 'cols', call.keyTokens);
    const m = new Uint8Array(q.length * k.length);
    for (let a = 0; a < q.length; a++)
      if (q[a]) for (let b = 0; b < k.length; b++) m[a * k.length + b] = k[b]!;
    const t = Tensor.bool(m, [q.length, k.length]);
    this.pooled.set(key, t);
    return t;
  }

  private tokensOf(
    call: AttentionCall,
    part: CompositionPart,
    which: 'rows' | 'cols',
    n: number,
  ): Uint8Array {
    const region = part[which];
    if (!region) return new Uint8Array(n).fill(1);
    const size = call.size;
    const [H, W] = region.size;
    if (!size || size[0] * size[1] !== n || H % size[0] !== 0 || W % size[1] !== 0) {
      throw new Error(
        `${this.name}: layer ${call.path} has ${n} ${which === 'rows' ? 'query' : 'key'} tokens` +
          `${size ? ` (${size[0]}×${size[1]})` : ''}, which the ${H}×${W} ${which} region of part ${this.parts.indexOf(part)} ` +
          `(source ${part.source.name}) cannot be pooled to; compose image self-attention layers whose size divides the grid`,
      );
    }
    return poolRegion(region, size);
  }
}

/** The region on a coarser grid (h, w) dividing its own: a token is in it when any cell under it is. */
export function poolRegion(m: TokenRegion, size: readonly [number, number]): Uint8Array {
  const [H, W] = m.size;
  const [h, w] = size;
  const [sy, sx] = [H / h, W / w];
  const out = new Uint8Array(h * w);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) if (m.data[y * W + x]) out[Math.floor(y / sy) * w + Math.floor(x / sx)] = 1;
  return out;
}

/** Every region on one grid, of 0/1 values, and not empty: the grid, or an error naming part and region. */
function checkRegions(parts: readonly CompositionPart[]): readonly [number, number] {
  let grid: readonly [number, number] | undefined;
  parts.forEach((p, i) => {
    for (const which of ['rows', 'cols'] as const) {
      const m = p[which];
      if (!m) continue;
      const at = `MapComposition: part ${i} (source ${p.source.name}), ${which}`;
      const [h, w] = m.size;
      if (!Number.isInteger(h) || !Number.isInteger(w) || h < 1 || w < 1)
        throw new Error(`${at}: the grid must be positive whole numbers, got ${h}×${w}`);
      if (m.data.length !== h * w)
        throw new Error(`${at}: a ${h}×${w} mask needs ${h * w} values, got ${m.data.length}`);
      let inside = 0;
      for (let j = 0; j < m.data.length; j++) {
        const v = m.data[j]!;
        if (v !== 0 && v !== 1) throw new Error(`${at}: mask values must be 0 or 1, got ${v} at ${j}`);
        inside += v;
      }
      if (inside === 0)
        throw new Error(`${at}: the region is empty; leave it out (every token) or give a mask`);
      if (grid && (grid[0] !== h || grid[1] !== w)) {
        throw new Error(
          `${at}: mask is ${h}×${w} but an earlier region is ${grid[0]}×${grid[1]}; use one grid`,
        );
      }
      grid = m.size;
    }
  });
  return grid ?? [0, 0];
}
