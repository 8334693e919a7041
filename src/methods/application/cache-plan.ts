// What the caches of this folder share (attention-caching.ts, block-caching.ts): a plan of which shortcut a
// layer takes at each step — fixed by a function, or recorded on a calibration run — and the relative change
// a shortcut is judged by.

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

/** Per layer (module path) and step, the shortcut M a cache takes. */
export class CachePlan<Call extends { path: string; step: number }, M> {
  /** The calibrated plan: layer path → shortcut at each step. */
  readonly table = new Map<string, M[]>();
  readonly #fixed?: (call: Call) => M | undefined;
  #calibrating = false;

  constructor(fixed?: (call: Call) => M | undefined) {
    this.#fixed = fixed;
  }

  /** Whether the plan is given as a function (no calibration needed). */
  get fixed(): boolean {
    return this.#fixed !== undefined;
  }

  /** Whether a calibration run is under way: every layer computes, and `record` writes the table. */
  get calibrating(): boolean {
    return this.#calibrating;
  }

  /** Runs `run` as the calibration run, on a cleared table. */
  calibrate<T>(run: () => T): T {
    this.table.clear();
    this.#calibrating = true;
    try {
      return run();
    } finally {
      this.#calibrating = false;
    }
  }

  /** The shortcut planned for this call. */
  at(call: Call): M | undefined {
    return this.#fixed ? this.#fixed(call) : this.table.get(call.path)?.[call.step];
  }

  record(call: Call, m: M): void {
    const row = this.table.get(call.path) ?? [];
    row[call.step] = m;
    this.table.set(call.path, row);
  }
}
