// What the caches of this folder share (attention-caching.ts, block-caching.ts): a plan of which shortcut a
// layer takes at each step — fixed by a function, or recorded on a calibration run —, the reset of the cache at
// step 0, and the relative change a shortcut is judged by.

import type { StepState } from '../../attention/hooks.js';
import type { Tensor } from '../../tensor/index.js';

/** ‖a − b‖ / ‖b‖ over all elements. */
export function relativeChange(a: Tensor, b: Tensor): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.size; i++) {
    const d = (a.data[i] as number) - (b.data[i] as number);
    num += d * d;
    den += (b.data[i] as number) ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

/**
 * A cache that follows a plan: per layer (module path) and step, the shortcut M it takes. The plan is a fixed
 * function, or recorded while `calibrate(run)` runs a generation in which the cache computes everything and
 * `record`s its choices. At step 0 the cache drops what it holds (`reset`).
 */
export abstract class PlannedCache<Call extends { path: string; step: number }, M> {
  readonly #table = new Map<string, M[]>();
  readonly #fixed?: (call: Call) => M | undefined;
  #calibrating = false;

  constructor(fixed?: (call: Call) => M | undefined) {
    this.#fixed = fixed;
  }

  /** The calibrated plan: layer path → shortcut at each step. */
  get table(): ReadonlyMap<string, M[]> {
    return this.#table;
  }

  /** Whether a run follows a calibrated plan (no fixed `plan` was given), so `calibrate` must come first. */
  get calibrated(): boolean {
    return this.#fixed === undefined;
  }

  /** Runs `run` (a generation with this controller) computing every layer, and records the plan. */
  calibrate<T>(run: () => T): T {
    this.#table.clear();
    this.#calibrating = true;
    try {
      return run();
    } finally {
      this.#calibrating = false;
    }
  }

  /** Drops the cache at step 0, so each generation starts computing. */
  beforeStep(s: StepState): void {
    if (s.step === 0) this.reset();
  }

  /** Drops the cached values and the counts (at step 0). */
  protected abstract reset(): void;

  /** Whether a calibration run is under way: every layer computes, and `record` writes the table. */
  protected get calibrating(): boolean {
    return this.#calibrating;
  }

  /** The shortcut planned for this call. */
  protected planned(call: Call): M | undefined {
    return this.#fixed ? this.#fixed(call) : this.#table.get(call.path)?.[call.step];
  }

  protected record(call: Call, m: M): void {
    const row = this.#table.get(call.path) ?? [];
    row[call.step] = m;
    this.#table.set(call.path, row);
  }
}
