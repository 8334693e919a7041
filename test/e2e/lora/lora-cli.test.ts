// attnkit generate --lora file[:scale] on tiny-sd-a with the kohya fixture: scale 0 gives the plain image,
// a LoRA changes it, two stacked equal the one at the summed scale, bad values and files are refused.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parseLoraSpec } from '../../../src/cli/lora-options.js';
import { readPng } from '../../../src/io/png.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { attnkitTiny } from '../../helpers/cli.js';
import { repoRoot } from '../../helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-lora-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const kohya = join(repoRoot, 'test', 'fixtures', 'lora', 'kohya.safetensors');

function generate(name: string, ...flags: string[]): Tensor {
  const out = join(dir, `${name}.png`);
  attnkitTiny('generate', 'a red circle', '--steps', '2', '--out', out, ...flags);
  return readPng(out);
}
const maxDiff = (a: Tensor, b: Tensor) => Math.max(...a.sub(b).abs().toArray());

test('--lora parses file[:scale]', () => {
  assert.deepEqual(parseLoraSpec('a.safetensors'), { path: 'a.safetensors', scale: 1 });
  assert.deepEqual(parseLoraSpec('a.safetensors:0.5'), { path: 'a.safetensors', scale: 0.5 });
  assert.deepEqual(parseLoraSpec('c:/x/a.safetensors:-1'), { path: 'c:/x/a.safetensors', scale: -1 });
  assert.deepEqual(parseLoraSpec('dir:name.safetensors'), { path: 'dir:name.safetensors', scale: 1 });
  assert.throws(() => parseLoraSpec('a.safetensors:99'), /--lora scale must be from -10 to 10, got '99'/);
});

test('generate --lora: scale 0 is the plain image, a LoRA changes it, two stack like one at their sum', () => {
  const plain = generate('plain');
  assert.equal(maxDiff(generate('zero', '--lora', `${kohya}:0`), plain), 0);
  const half = generate('half', '--lora', `${kohya}:0.5`);
  assert.ok(maxDiff(half, plain) > 8 / 255, 'the LoRA changed nothing');
  const stacked = generate('stacked', '--lora', `${kohya}:0.25`, '--lora', `${kohya}:0.25`);
  assert.ok(maxDiff(stacked, half) <= 2 / 255 + 1e-6);
});

test('generate --lora refuses a file for another model and a pickled file, naming them', () => {
  const bad = join(dir, 'other.safetensors');
  // a kohya file whose module this UNet lacks (an SDXL-style name)
  const header = JSON.stringify({
    'lora_unet_down_blocks_5_attentions_0_proj_in.lora_down.weight': {
      dtype: 'F32',
      shape: [1, 1],
      data_offsets: [0, 4],
    },
    'lora_unet_down_blocks_5_attentions_0_proj_in.lora_up.weight': {
      dtype: 'F32',
      shape: [1, 1],
      data_offsets: [4, 8],
    },
  });
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(header)));
  writeFileSync(bad, Buffer.concat([len, Buffer.from(header), Buffer.alloc(8)]));
  assert.throws(
    () => generate('bad', '--lora', bad),
    /other.safetensors: key 'lora_unet_down_blocks_5_attentions_0_proj_in.lora_down.weight' names module/,
  );
  assert.throws(
    () => generate('pt', '--lora', join(dir, 'style.pt')),
    /style.pt: attnkit reads LoRA files as .safetensors only/,
  );
});
