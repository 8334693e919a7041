// The SD3 pipeline (src/pipelines/sd3.ts) on the built-in DiT model's parts: the CLIP states zero-padded to
// joint_attention_dim and the plain CLIP's pooled output as the pooled text; the start latents are the seed's
// unscaled Gaussian noise (σ = 1); folders with CLIP-G / T5 and mismatched widths are refused, naming why.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { SD3Transformer2DModel } from '../../../src/models/sd3-transformer.js';
import { StableDiffusion3 } from '../../../src/pipelines/sd3.js';
import { randn } from '../../../src/tensor/random.js';
import { repoRoot } from '../../helpers/fixtures.js';

const folder = join(repoRoot, 'models', 'shapes-dit-v1');
const dit = StableDiffusion3.fromPretrained(folder);
const tmp = mkdtempSync(join(tmpdir(), 'attnkit-sd3-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The DiT model's parts with a zero-weight transformer of another config. */
function withTransformer(changes: Record<string, unknown>): StableDiffusion3 {
  const json = JSON.parse(readFileSync(join(folder, 'transformer', 'config.json'), 'utf8'));
  const t = SD3Transformer2DModel.fromConfig({ ...json, ...changes });
  return new StableDiffusion3(t, dit.vae, dit.textEncoder, dit.tokenizer, dit.schedulerConfig);
}

test('text: CLIP states zero-padded to joint_attention_dim, the pooled output as pooled text', () => {
  const padded = withTransformer({ joint_attention_dim: 96 });
  const { states, pooled } = padded.encodeText(['a red circle']);
  const clip = dit.textEncoder.encodePrompts(dit.tokenizer, ['a red circle']);
  assert.deepEqual(states.shape, [1, 32, 96]);
  assert.deepEqual(states.slice(2, 0, 64).toArray(), clip.lastHiddenState.toArray());
  assert.equal(states.slice(2, 64, 96).abs().max().item(), 0);
  assert.deepEqual(pooled.toArray(), clip.pooled.toArray());
});

test('generation starts from the seed’s unscaled noise: a zero velocity leaves it as it is', () => {
  const still = withTransformer({});
  const { latents, images } = still.generate({ prompt: 'a red circle', seed: 5, steps: 2, guidanceScale: 5 });
  assert.deepEqual(latents.toArray(), randn([1, 4, 16, 16], 5).toArray());
  assert.deepEqual(images.shape, [1, 3, 64, 64]);
});

test('refused: CLIP-G / T5 components, a pooled width that is not the transformer’s', () => {
  const copy = join(tmp, 'with-t5');
  cpSync(folder, copy, { recursive: true });
  const index = JSON.parse(readFileSync(join(copy, 'model_index.json'), 'utf8'));
  writeFileSync(
    join(copy, 'model_index.json'),
    JSON.stringify({ ...index, text_encoder_3: ['transformers', 'T5EncoderModel'] }),
  );
  assert.throws(() => StableDiffusion3.fromPretrained(copy), /text_encoder_3.*T5/s);
  assert.throws(() => withTransformer({ pooled_projection_dim: 80 }), /pooled text is 64 wide.*80/);
  assert.throws(() => withTransformer({ joint_attention_dim: 32 }), /64 wide, more than.*32/);
  assert.throws(
    () => StableDiffusion3.fromPretrained(join(repoRoot, 'models', 'shapes-v1')),
    /not an SD3 folder/,
  );
});
