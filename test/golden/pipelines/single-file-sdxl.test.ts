// SDXL single files: a tiny SDXL folder converted by diffusers 0.21.4's own script
// (scripts/convert_diffusers_to_original_sdxl.py; test/fixtures/single-file/make_sdxl.py) loads with the
// architecture read from its names and shapes, every tensor of the file used, and gives the folder's outputs.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadStableDiffusion } from '../../../src/cli/models.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import type { SingleFileConfigOverrides } from '../../../src/pipelines/single-file.js';
import { isSDXLSingleFile, sdxlSingleFileParts } from '../../../src/pipelines/single-file-sdxl.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { noGrad, type Tensor } from '../../../src/tensor/index.js';
import { repoRoot } from '../../helpers/fixtures.js';

const DIR = join(repoRoot, 'test', 'fixtures', 'single-file');
const folderDir = join(DIR, 'sdxl');
const file = join(DIR, 'sdxl.safetensors');

/** What the tensors cannot tell about the tiny model: its sizes, and heads and groups off SDXL's conventions. */
const config: SingleFileConfigOverrides = {
  unet: { sample_size: 8, attention_head_dim: [2, 2, 4], norm_num_groups: 8 },
  vae: { sample_size: 64, norm_num_groups: 8 },
  text_encoder: { num_attention_heads: 2 },
  text_encoder_2: { num_attention_heads: 3 },
};
const tokenizers = { tokenizer: join(folderDir, 'tokenizer'), tokenizer2: join(folderDir, 'tokenizer_2') };

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  let worst = 0;
  for (let i = 0; i < a.size; i++)
    worst = Math.max(worst, Math.abs((a.data[i] as number) - (b.data[i] as number)));
  return worst;
}

const folder = StableDiffusion.fromPretrained(folderDir);
const sd = StableDiffusion.fromSingleFile(file, { ...tokenizers, config });

test('an SDXL file is recognised and loads as SDXL: every parameter equals the folder one', () => {
  assert.ok(isSDXLSingleFile(file));
  assert.ok(!isSDXLSingleFile(join(DIR, 'sd1.safetensors')));
  assert.ok(sd.xl, 'the second text encoder and tokenizer');
  for (const [name, a, b] of [
    ['unet', sd.unet, folder.unet],
    ['vae', sd.vae, folder.vae],
    ['text_encoder', sd.textEncoder, folder.textEncoder],
    ['text_encoder_2', sd.xl!.textEncoder2, folder.xl!.textEncoder2],
  ] as const) {
    const mine = new Map(a.namedParameters());
    const theirs = new Map(b.namedParameters());
    assert.deepEqual([...mine.keys()].sort(), [...theirs.keys()].sort(), name);
    for (const [k, p] of mine) assert.equal(maxAbsDiff(p.value, theirs.get(k)!.value), 0, `${name} ${k}`);
  }
  assert.deepEqual(sd.unet.config.textTime, folder.unet.config.textTime);
});

test('the file gives the folder outputs (≤ 1e-6): prompt states, pooled text, a guided 2-step generation', () => {
  const opts = {
    prompt: 'a red cat',
    negativePrompt: 'blue',
    seed: 3,
    steps: 2,
    guidanceScale: 5,
    width: 64,
    height: 64,
  };
  const [mine, theirs] = [sd, folder].map((m) => noGrad(() => m.generate(opts)));
  assert.ok(maxAbsDiff(mine!.latents, theirs!.latents) <= 1e-6);
  assert.ok(maxAbsDiff(mine!.images, theirs!.images) <= 1e-6);
  const [a, b] = [sd, folder].map((m) => noGrad(() => m.encodeText(['a red cat'])));
  assert.equal(maxAbsDiff(a!.states, b!.states), 0);
  assert.equal(maxAbsDiff(a!.pooled!, b!.pooled!), 0);
});

test('strict loading: a missing, a stray and a reshaped tensor are each named by their key in the file', () => {
  const tensors = readSafetensors(file).tensors;
  const tok = StableDiffusion.fromPretrained(folderDir);
  const load = (t: Map<string, Tensor>) =>
    sdxlSingleFileParts(t, tok.tokenizer, tok.xl!.tokenizer2 as never, { config });
  const missing = new Map(tensors);
  missing.delete('conditioner.embedders.1.model.transformer.resblocks.1.attn.in_proj_weight');
  assert.throws(
    () => load(missing),
    /text_encoder_2 tensors do not match.*missing: .*text_model\.encoder\.layers\.1\.self_attn\.q_proj\.weight/s,
  );
  const stray = new Map(tensors).set(
    'conditioner.embedders.2.model.x',
    tensors.get('model.diffusion_model.out.2.bias')!,
  );
  assert.throws(
    () => load(stray),
    /outside the SDXL single-file layout.*conditioner\.embedders\.2\.model\.x/,
  );
  const label = 'model.diffusion_model.label_emb.0.2.bias';
  const reshaped = new Map(tensors).set(label, tensors.get(label)!.slice(0, 0, 3));
  assert.throws(
    () => load(reshaped),
    /wrong shapes: model\.diffusion_model\.label_emb\.0\.2\.bias \(unet add_embedding\.linear_2\.bias\)/,
  );
  assert.throws(
    () => StableDiffusion.fromSingleFile(file, { tokenizer: tokenizers.tokenizer, config }),
    /SDXL single file holds no tokenizers: give both folders/,
  );
});

test('the CLI loads an SDXL file with tokenizer/ and tokenizer_2/ beside it and text_encoder_2 in --model-config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-sdxl-file-'));
  try {
    cpSync(file, join(dir, 'model.safetensors'));
    cpSync(tokenizers.tokenizer, join(dir, 'tokenizer'), { recursive: true });
    cpSync(tokenizers.tokenizer2, join(dir, 'tokenizer_2'), { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const cli = loadStableDiffusion(join(dir, 'model.safetensors'), { config: join(dir, 'config.json') });
    assert.ok(cli.xl);
    const opts = { prompt: 'a red cat', seed: 1, steps: 1, width: 64, height: 64 };
    assert.equal(maxAbsDiff(cli.generate(opts).latents, folder.generate(opts).latents), 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
