// Fuzzing the LoRA and Custom Diffusion readers: seeded mutations of the diffusers-layout and Custom Diffusion
// fixtures (bytes, header JSON, key names, shapes) read against tiny-sd-a's UNet. Every case loads or throws
// a plain Error naming the file or the LoRA, within the time and memory limits of the loader fuzzers; the
// UNet's weights never change.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readCustomDiffusion } from '../../../src/methods/weight/custom-diffusion.js';
import { readLora } from '../../../src/models/lora-file.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { goldenUNet } from '../../helpers/golden.js';
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
} from '../loaders/mutate.js';

const dir = scratchDir('lora');
const unet = goldenUNet();
const weights = [...unet.namedParameters()].map(([, p]) => p.value);

/** The seed file split into its header JSON and data. */
function parts(file: string): { header: Record<string, unknown>; data: Uint8Array; bytes: Uint8Array } {
  const bytes = new Uint8Array(readFileSync(join(repoRoot, 'test', 'fixtures', 'lora', file)));
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  return {
    header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))),
    data: bytes.subarray(8 + n),
    bytes,
  };
}

function withHeader(text: string, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

/** Key-level mutations: rename a key (another layout's word, a block that does not exist), swap two shapes. */
function mutateKeys(header: Record<string, unknown>, r: Rand): string {
  const entries = Object.entries(header);
  const i = int(r, entries.length);
  const [key, value] = entries[i] as [string, unknown];
  if (key === '__metadata__') return JSON.stringify(header);
  const renames: [string, string][] = [
    ['to_q', 'to_z'],
    ['down.weight', 'lora_A.weight'],
    ['blocks.1', 'blocks.9'],
    ['attn2', 'attn3'],
    ['processor.', ''],
    ['.up.', '.down.'],
    ['to_k_custom_diffusion', 'to_q_custom_diffusion'],
    ['unet.', 'text_encoder.'],
  ];
  const [from, to] = pick(r, renames);
  const j = int(r, entries.length);
  if (r() < 0.5) entries[i] = [key.replace(from, to), value];
  else {
    const a = entries[i]?.[1] as { shape?: number[] };
    const b = entries[j]?.[1] as { shape?: number[] };
    if (a?.shape && b?.shape) [a.shape, b.shape] = [b.shape, a.shape];
  }
  return JSON.stringify(Object.fromEntries(entries));
}

const NAMES = /case\.safetensors|safetensors: |LoRA/;

for (const [file, read] of [
  ['diffusers.safetensors', (p: string) => readLora(p, { unet })],
  ['custom-diffusion.safetensors', (p: string) => readCustomDiffusion(p, unet)],
] as const) {
  test(`fuzz: 600 mutated copies of ${file} load or are refused by name; the UNet is untouched`, () => {
    const seed = parts(file);
    const r = rng(27_000 + file.length);
    const t = tally();
    const path = join(dir, 'case.safetensors');
    for (let k = 0; k < 600; k++) {
      const kind = int(r, 3);
      const bytes =
        kind === 0
          ? mutateBytes(seed.bytes, r)
          : kind === 1
            ? withHeader(mutateJson(seed.header as never, r), seed.data)
            : withHeader(mutateKeys(JSON.parse(JSON.stringify(seed.header)), r), seed.data);
      writeFileSync(path, bytes);
      check(t, `${file} #${k}`, NAMES, () => read(path));
    }
    console.log(`${file} fuzz: ${summary(t)}`);
    assert.ok(t.ok > 0 && t.refused > 0);
    assert.ok([...unet.namedParameters()].every(([, p], i) => p.value === weights[i]));
  });
}
