// Typed option parsers for commander. The bounded ones refuse a value outside its limits while the command line
// is read, before any model is loaded or anything allocated (the limits are in limits.ts).

import { InvalidArgumentError } from 'commander';

export function int(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer, got '${v}'`);
    return n;
  };
}

export function float(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number, got '${v}'`);
    return n;
  };
}

/** The limits of a bounded option: [min, max] (max Infinity: no upper bound), a unit and what to do instead. */
export interface Bounds {
  min: number;
  max: number;
  /** Shown after the range, e.g. 'pixels'. */
  unit?: string;
  /** What to do instead, shown after the value. */
  hint?: string;
}

function range(kind: string, b: Bounds): string {
  const r = b.max === Number.POSITIVE_INFINITY ? `${kind} ≥ ${b.min}` : `${kind} from ${b.min} to ${b.max}`;
  return b.unit ? `${r} (${b.unit})` : r;
}

function outOfBounds(name: string, kind: string, b: Bounds, v: string): InvalidArgumentError {
  return new InvalidArgumentError(
    `${name} must be ${range(kind, b)}, got '${v}'${b.hint ? `; ${b.hint}` : ''}`,
  );
}

/** Whether the text `v` is a number of the kind `isKind` accepts, in [min, max] (blank text is not 0). */
function within(v: string, b: Bounds, isKind: (n: number) => boolean): boolean {
  const n = Number(v);
  return v.trim() !== '' && isKind(n) && n >= b.min && n <= b.max;
}

/** An integer in [min, max]. */
export function intIn(name: string, b: Bounds): (v: string) => number {
  return (v) => {
    if (!within(v, b, Number.isInteger)) throw outOfBounds(name, 'an integer', b, v);
    return Number(v);
  };
}

/** Two integers 'a,b' (e.g. an SDXL size 'height,width'), each in [min, max]. */
export function intPairIn(name: string, b: Bounds): (v: string) => [number, number] {
  return (v) => {
    const parts = v.split(',');
    if (parts.length !== 2 || !parts.every((p) => within(p, b, Number.isInteger)))
      throw outOfBounds(name, 'two integers a,b, each', b, v);
    return [Number(parts[0]), Number(parts[1])];
  };
}

/** A finite number in [min, max]. */
export function floatIn(name: string, b: Bounds): (v: string) => number {
  return (v) => {
    if (!within(v, b, Number.isFinite)) throw outOfBounds(name, 'a number', b, v);
    return Number(v);
  };
}
