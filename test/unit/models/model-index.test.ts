// model_index.json checked at load (issue 25 item 7): the pipeline class and each component's entry, with values
// quoted in a bounded form.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readModelIndex } from '../../../src/pipelines/load.js';

const INDEX = {
  _class_name: 'StableDiffusionPipeline',
  unet: ['diffusers', 'UNet2DConditionModel'],
  vae: ['diffusers', 'AutoencoderKL'],
  text_encoder: ['transformers', 'CLIPTextModel'],
  tokenizer: ['transformers', 'CLIPTokenizer'],
  scheduler: ['diffusers', 'DDIMScheduler'],
};

function refused(index: Record<string, unknown>, re: RegExp): void {
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-model-index-'));
  writeFileSync(join(dir, 'model_index.json'), JSON.stringify(index));
  assert.throws(
    () => readModelIndex(dir),
    (e: Error) =>
      re.test(e.message) && e.message.startsWith(join(dir, 'model_index.json')) && e.message.length < 400,
  );
}

test('model_index.json: component entries are two strings; quoted values are bounded', () => {
  refused({ ...INDEX, unet: [1, 2] }, /component 'unet' .*\["library", "ClassName"\]/);
  refused({ ...INDEX, vae: [null, null] }, /component 'vae'/);
  refused({ ...INDEX, _class_name: 'P'.repeat(10_000) }, /_class_name "PPP.*is not a pipeline/);
});
