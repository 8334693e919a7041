// Reading diffusers / transformers config.json files: typed access with errors that name the key.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonPreview } from '../io/json-preview.js';

export type JsonConfig = Record<string, unknown>;

/** Deepest nesting of arrays and objects a config file may have (diffusers' configs nest 2 levels). */
export const MAX_CONFIG_DEPTH = 32;

/** The nesting depth of JSON text, counted outside strings, stopping once past `limit`; linear, no recursion. */
function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length && max <= limit; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b)
      max = Math.max(max, ++depth); // [ {
    else if (c === 0x5d || c === 0x7d) depth--; // ] }
  }
  return max;
}

export function readConfig(dir: string, file = 'config.json'): JsonConfig {
  const path = join(dir, file);
  if (!existsSync(path)) throw new Error(`missing ${path}: a diffusers model folder needs ${file} in ${dir}`);
  const text = readFileSync(path, 'utf8');
  if (jsonDepth(text, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH) {
    throw new Error(
      `${path}: JSON nested more than ${MAX_CONFIG_DEPTH} levels deep; a config file is a flat object of ` +
        'settings, so this one is corrupt or not a config',
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
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
    if (!supported.some((s) => sameJson(s, v))) {
      throw new Error(
        `${this.where}: config key '${key}' = ${jsonPreview(v)} is not supported by attnkit ` +
          `(supported: ${supported.map((s) => jsonPreview(s)).join(', ')})`,
      );
    }
  }

  private bad(key: string, what: string): Error {
    return new Error(`${this.where}: config key '${key}' must be ${what}, got ${jsonPreview(this.cfg[key])}`);
  }
}

/** JSON equality of a (small) supported value and a config value, walking no deeper than the former. */
function sameJson(expected: unknown, v: unknown): boolean {
  if (Array.isArray(expected)) {
    return Array.isArray(v) && v.length === expected.length && expected.every((x, i) => sameJson(x, v[i]));
  }
  if (typeof expected === 'object' && expected !== null) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
    const keys = Object.keys(expected);
    return (
      keys.length === Object.keys(v).length &&
      keys.every((k) => Object.hasOwn(v, k) && sameJson((expected as JsonConfig)[k], (v as JsonConfig)[k]))
    );
  }
  return expected === v;
}
