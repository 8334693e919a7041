// Fuzzing the safetensors reader (issue 25): seeded mutations of a small valid file — bytes, the header
// length field, the header's JSON — parsed from bytes (a Uint8Array and a Node Buffer) and read from a file.
// Every case loads or throws a plain Error naming the source and the problem, and the three paths agree.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseSafetensors, readSafetensors, serializeSafetensors } from '../../../src/io/safetensors.js';
import { Tensor } from '../../../src/tensor/tensor.js';
import {
  check,
  int,
  mutateBytes,
  mutateJson,
  pick,
  type Rand,
  rng,
  scratchDir,
  summary,
  tally,
} from './mutate.js';

const dir = scratchDir('safetensors');

const seed = serializeSafetensors(
  {
    w: Tensor.from([1, -2, 3.5, 0, 7, -0.25], [2, 3]),
    h: Tensor.from([0.5, 1.5, -4], [3]),
    i: new Tensor(Int32Array.from([1, -1]), [2], 'int32'),
    l: new Tensor(BigInt64Array.from([5n]), [1], 'int64'),
    u: new Tensor(Uint8Array.from([9, 8, 7]), [3], 'uint8'),
    b: new Tensor(Uint8Array.from([1, 0]), [2], 'bool'),
  },
  { dtype: 'float16', metadata: { format: 'pt' } },
);
const headerLength = Number(new DataView(seed.buffer).getBigUint64(0, true));
const headerJson = JSON.parse(new TextDecoder().decode(seed.subarray(8, 8 + headerLength)));
const data = seed.subarray(8 + headerLength);

/** A file with this header text (length field right, or set to `length`) and the seed's data. */
function withHeader(text: string, length?: number): Uint8Array {
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(length ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function mutate(r: Rand): Uint8Array {
  switch (int(r, 4)) {
    case 0:
      return mutateBytes(seed, r);
    case 1: // the header length field: huge, off by a little, odd (unaligned data)
      return withHeader(
        JSON.stringify(headerJson).padEnd(headerLength + int(r, 9), ' '),
        r() < 0.5
          ? undefined
          : pick(r, [0, 1, headerLength - 1, headerLength + 1, 2 ** 32, 2 ** 53, 1e8 + 1]),
      );
    default: // JSON value swaps in the header, sometimes with an odd length
      return withHeader(mutateJson(headerJson, r).padEnd(0 + int(r, 3), ' '));
  }
}

const NAMES = /^safetensors: /;

/** Outcome of one path, with the source's name taken out so the paths compare. */
function outcome(result: 'ok' | Error, values: string, source: string): string {
  return result === 'ok' ? `ok ${values}` : result.message.replace(source, '<source>');
}

const valuesOf = (tensors: Map<string, Tensor>) =>
  JSON.stringify([...tensors].map(([k, t]) => [k, t.dtype, t.shape, t.toArray().map(String)]));

test('fuzz: 2,000 mutated safetensors files, parsed from bytes, from a Buffer and read from a file, agree', () => {
  const r = rng(25_008);
  const t = tally();
  const path = join(dir, 'case.safetensors');
  for (let k = 0; k < 2000; k++) {
    const bytes = mutate(r);
    writeFileSync(path, bytes);
    let fromBytes = '';
    let fromBuffer = '';
    let fromFile = '';
    const a = check(t, `bytes #${k}`, NAMES, () => {
      fromBytes = valuesOf(parseSafetensors(bytes).tensors);
    });
    const b = check(t, `buffer #${k}`, NAMES, () => {
      fromBuffer = valuesOf(parseSafetensors(readFileSync(path)).tensors);
    });
    const c = check(t, `file #${k}`, NAMES, () => {
      fromFile = valuesOf(readSafetensors(path).tensors);
    });
    const expected = outcome(c, fromFile, path);
    assert.equal(outcome(a, fromBytes, '<bytes>'), expected, `bytes #${k}`);
    assert.equal(outcome(b, fromBuffer, '<bytes>'), expected, `buffer #${k}`);
  }
  console.log(`safetensors fuzz: ${summary(t)}`);
  assert.ok(t.ok > 0 && t.refused > 0);
});
