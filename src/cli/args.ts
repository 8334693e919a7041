// Typed option parsers for commander.

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
