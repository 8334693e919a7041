// Seeded mutations for the loader fuzz suite (issue 25), and the check every case must pass: it succeeds, or
// it throws a plain Error whose message names the loader and the problem — never a TypeError / RangeError
// from inside, a stack overflow, a case over 5 s, or memory growth past 1 GB.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { rng } from '../../helpers/random.js';

/** A scratch folder for written cases, in memory where the host has /dev/shm (disk writes cost ~4 ms each). */
export function scratchDir(prefix: string): string {
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = mkdtempSync(join(base, `attnkit-fuzz-${prefix}-`));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export type Rand = () => number;
export { rng };

export const int = (r: Rand, n: number): number => Math.floor(r() * n);
export const pick = <T>(r: Rand, xs: readonly T[]): T => xs[int(r, xs.length)]!;

/** Values that break sizes and offsets when written as a 32-bit or 64-bit integer field. */
const HUGE_U32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x10000, 16385, 65535];

/** One random byte-level mutation: bit flips, bytes set, truncation, a range deleted / duplicated, a u32 set. */
export function mutateBytes(seed: Uint8Array, r: Rand): Uint8Array {
  const b = Uint8Array.from(seed);
  const at = () => int(r, Math.max(1, b.length));
  switch (int(r, 7)) {
    case 0: // flip 1–8 bits
      for (let k = 1 + int(r, 8); k > 0; k--) b[at()]! ^= 1 << int(r, 8);
      return b;
    case 1: // set 1–4 bytes to a boundary value
      for (let k = 1 + int(r, 4); k > 0; k--) b[at()] = pick(r, [0, 0xff, 0x7f, 0x80, int(r, 256)]);
      return b;
    case 2: // truncate
      return b.subarray(0, at());
    case 3: {
      // delete a range
      const i = at();
      return Uint8Array.from([...b.subarray(0, i), ...b.subarray(i + 1 + int(r, 16))]);
    }
    case 4: {
      // duplicate a range
      const i = at();
      const piece = b.subarray(i, i + 1 + int(r, 32));
      return Uint8Array.from([...b.subarray(0, i), ...piece, ...b.subarray(i)]);
    }
    case 5: {
      // a 32-bit big- or little-endian integer field set to a huge / boundary value
      const v = new DataView(b.buffer);
      const i = Math.min(at(), Math.max(0, b.length - 4));
      if (b.length >= 4) v.setUint32(i, pick(r, HUGE_U32), r() < 0.5);
      return b;
    }
    default: // append garbage
      return Uint8Array.from([...b, ...Array.from({ length: 1 + int(r, 64) }, () => int(r, 256))]);
  }
}

/** JSON `[[[…]]]` nested `n` deep (stringify-free, so the suite itself never overflows). */
export const deepJson = (n: number): string => `${'['.repeat(n)}${']'.repeat(n)}`;
const DEEP = '\u0000deep';

/** Hostile replacement values for JSON mutation (DEEP becomes 20,000 levels of nesting in the text). */
const HOSTILE: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  0.5,
  1e8,
  1e300,
  -1e300,
  2 ** 53,
  '',
  'x'.repeat(5000),
  '__proto__',
  [],
  {},
  [1, 2],
  [-1],
  ['a', 'b'],
  [[[]]],
  { content: 5 },
  DEEP,
];

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A copy of `value` with 1–3 mutations at random paths: values replaced, swapped, keys dropped or added. */
export function mutateJson(value: Json, r: Rand): string {
  const copy = JSON.parse(JSON.stringify(value)) as Json;
  const containers: (Json[] | { [k: string]: Json })[] = [];
  const walk = (v: Json) => {
    if (v !== null && typeof v === 'object') {
      containers.push(v);
      for (const x of Object.values(v)) walk(x);
    }
  };
  walk(copy);
  const leaves = (c: Json[] | { [k: string]: Json }) => Object.keys(c);
  for (let k = 1 + int(r, 3); k > 0; k--) {
    const c = pick(r, containers) as Record<string, Json>;
    const keys = leaves(c);
    const op = int(r, 4);
    if (keys.length === 0 || op === 3) {
      if (!Array.isArray(c)) c[pick(r, ['x', 'sample_size', 'dtype', '__proto__', 'unk_token'])] = null;
      continue;
    }
    const key = pick(r, keys);
    if (op === 0) c[key] = pick(r, HOSTILE) as Json;
    else if (op === 1) {
      const other = pick(r, containers) as Record<string, Json>;
      const otherKeys = leaves(other);
      if (otherKeys.length > 0) c[key] = other[pick(r, otherKeys)]!;
    } else if (op === 2 && !Array.isArray(c)) delete c[key];
    else c[key] = typeof c[key] === 'number' ? (c[key] as number) * pick(r, [-1, 1000, 1e6, 0.5]) : null;
  }
  let text: string;
  try {
    text = JSON.stringify(copy);
  } catch {
    return JSON.stringify(value); // a swap made a cycle: the seed unchanged
  }
  return text.replaceAll(JSON.stringify(DEEP), deepJson(20_000));
}

/** Messages that betray a crash inside rather than a check that named the problem. */
const INTERNAL =
  /Cannot read propert|Cannot set propert|is not a function|is not iterable|undefined is not (a function|an object)|Maximum call stack|Invalid typed array length|Invalid array length|Array buffer allocation failed|should be a multiple of/;

export interface Tally {
  ok: number;
  refused: number;
  slowest: number;
  maxRss: number;
  /** Longest message allowed (a message quoting a whole hostile value is a bug too). */
  maxMessage: number;
  longestMessage: number;
}

export const tally = (maxMessage = 2000): Tally => ({
  ok: 0,
  refused: 0,
  slowest: 0,
  maxRss: 0,
  maxMessage,
  longestMessage: 0,
});

const TIME_LIMIT_MS = 5000;
const RSS_LIMIT = 1024 ** 3;

/** Runs one case: a success or a plain Error naming the loader (`names`), under 5 s; RSS stays < 1 GB. */
export function check(t: Tally, label: string, names: RegExp, run: () => unknown): 'ok' | Error {
  const start = performance.now();
  let outcome: 'ok' | Error = 'ok';
  try {
    run();
  } catch (e) {
    outcome = e as Error;
  }
  settle(t, label, names, start, outcome);
  return outcome;
}

/** `check` for an async loader. */
export async function checkAsync(t: Tally, label: string, names: RegExp, run: () => Promise<unknown>) {
  const start = performance.now();
  let outcome: 'ok' | Error = 'ok';
  try {
    await run();
  } catch (e) {
    outcome = e as Error;
  }
  settle(t, label, names, start, outcome);
  return outcome;
}

function settle(t: Tally, label: string, names: RegExp, start: number, outcome: 'ok' | Error): void {
  const ms = performance.now() - start;
  t.slowest = Math.max(t.slowest, ms);
  assert.ok(ms < TIME_LIMIT_MS, `${label}: took ${ms.toFixed(0)} ms`);
  if (outcome === 'ok') t.ok++;
  else {
    t.refused++;
    const e = outcome as unknown;
    assert.ok(e instanceof Error, `${label}: threw a non-Error ${String(e)}`);
    const head = e.message.slice(0, 300);
    assert.equal(e.constructor, Error, `${label}: ${e.constructor.name} from inside: ${head}`);
    assert.match(e.message, names, `${label}: message does not name the loader: ${head}`);
    assert.doesNotMatch(e.message, INTERNAL, `${label}: an internal failure: ${head}`);
    t.longestMessage = Math.max(t.longestMessage, e.message.length);
    assert.ok(
      e.message.length < t.maxMessage,
      `${label}: message of ${e.message.length} characters: ${head}`,
    );
  }
  if ((t.ok + t.refused) % 100 === 0) {
    const rss = process.memoryUsage.rss();
    t.maxRss = Math.max(t.maxRss, rss);
    assert.ok(rss < RSS_LIMIT, `${label}: RSS ${(rss / 2 ** 20).toFixed(0)} MiB`);
  }
}

/** One line for the test log: counts, slowest case, peak RSS. */
export const summary = (t: Tally): string =>
  `${t.ok + t.refused} cases (${t.ok} loaded, ${t.refused} refused), slowest ${t.slowest.toFixed(0)} ms, ` +
  `peak RSS ${(t.maxRss / 2 ** 20).toFixed(0)} MiB, longest message ${t.longestMessage} characters`;
