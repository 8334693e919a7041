// Reading diffusers / transformers config.json files: typed access with errors that name the key.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type JsonConfig = Record<string, unknown>;

export function readConfig(dir: string, file = 'config.json'): JsonConfig {
  const path = join(dir, file);
  if (!existsSync(path)) throw new Error(`missing ${path}: a diffusers model folder needs ${file} in ${dir}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${path}: expected a JSON object`);
  }
  return parsed as JsonConfig;
}

/** Typed reads of one config, each error naming the file and the key. */
export class ConfigReader {
  constructor(
    readonly cfg: JsonConfig,
    readonly where: string,
  ) {}

  has(key: string): boolean {
    return this.cfg[key] !== undefined && this.cfg[key] !== null;
  }

  number(key: string, fallback?: number): number {
    const v = this.cfg[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw this.bad(key, 'a number');
    return v;
  }

  int(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v)) throw this.bad(key, 'an integer');
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.cfg[key] ?? fallback;
    if (typeof v !== 'boolean') throw this.bad(key, 'true or false');
    return v;
  }

  string(key: string, fallback?: string): string {
    const v = this.cfg[key] ?? fallback;
    if (typeof v !== 'string') throw this.bad(key, 'a string');
    return v;
  }

  strings(key: string): string[] {
    const v = this.cfg[key];
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw this.bad(key, 'a list of strings');
    return v as string[];
  }

  ints(key: string): number[] {
    const v = this.cfg[key];
    if (!Array.isArray(v) || v.some((x) => !Number.isInteger(x))) throw this.bad(key, 'a list of integers');
    return v as number[];
  }

  /** A value that may be one number or one per block; returns one per block. */
  perBlock(key: string, n: number, fallback?: number): number[] {
    const v = this.cfg[key] ?? fallback;
    if (typeof v === 'number' && Number.isInteger(v)) return new Array<number>(n).fill(v);
    if (Array.isArray(v) && v.length === n && v.every((x) => Number.isInteger(x))) return v as number[];
    throw this.bad(key, `an integer or a list of ${n} integers`);
  }

  perBlockBool(key: string, n: number, fallback: boolean): boolean[] {
    const v = this.cfg[key] ?? fallback;
    if (typeof v === 'boolean') return new Array<boolean>(n).fill(v);
    if (Array.isArray(v) && v.length === n && v.every((x) => typeof x === 'boolean')) return v as boolean[];
    throw this.bad(key, `true/false or a list of ${n} of them`);
  }

  /** The key must be absent or have one of the supported values (compared with JSON equality). */
  require(key: string, supported: readonly unknown[]): void {
    const v = this.cfg[key];
    if (v === undefined) return;
    if (!supported.some((s) => JSON.stringify(s) === JSON.stringify(v))) {
      throw new Error(
        `${this.where}: config key '${key}' = ${JSON.stringify(v)} is not supported by attnkit ` +
          `(supported: ${supported.map((s) => JSON.stringify(s)).join(', ')})`,
      );
    }
  }

  private bad(key: string, what: string): Error {
    return new Error(
      `${this.where}: config key '${key}' must be ${what}, got ${JSON.stringify(this.cfg[key])}`,
    );
  }
}
