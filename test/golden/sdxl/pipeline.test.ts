// StableDiffusion on an SDXL folder (tiny-sdxl): loading, the two-encoder prompt, micro-conditioning, the
// guided generation against diffusers' StableDiffusionXLPipeline loop, and methods / hooks on it.

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Controller } from '../../../src/attention/index.js';
import { parseUNetConfig } from '../../../src/models/unet2d-config.js';
import { editPrompt } from '../../../src/pipelines/edit.js';
import { checkSDXLParts } from '../../../src/pipelines/sdxl.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';
import { maxAbsDiff, sdxlDir, sdxlGolden } from './helpers.js';

const sd = StableDiffusion.fromPretrained(sdxlDir());
const prompt = 'a red circle above a blue square';

test('an SDXL folder loads with its second text encoder, tokenizer and the VAE scaling factor', () => {
  assert.ok(sd.xl, 'no SDXL parts');
  assert.equal(sd.xl.forceZerosForEmptyPrompt, true);
  assert.equal(sd.xl.textEncoder2.projectionDim, 20);
  assert.equal(sd.vae.config.scalingFactor, 0.13025);
  assert.deepEqual(sd.unet.config.textTime, { timeEmbedDim: 8, inputDim: 68 });
});

test('the prompt: both encoders’ penultimate states concatenated, pooled of encoder 2 (1e-4)', () => {
  const { states, pooled } = sd.encodeText([prompt]);
  const [es, ep] = [sdxlGolden('prompt.out.embeds'), sdxlGolden('prompt.out.pooled')];
  console.log(
    `  sdxl prompt: states ${maxAbsDiff(states, es).toExponential(3)}, pooled ${maxAbsDiff(pooled as Tensor, ep).toExponential(3)}`,
  );
  assertClose(states, es, { atol: 1e-4, rtol: 0 });
  assertClose(pooled as Tensor, ep, { atol: 1e-4, rtol: 0 });
  assert.deepEqual(sd.encodePrompt([prompt]).shape, [1, 16, 40]);
});

test('6-step guided DDIM generation with micro-conditioning matches diffusers (1e-3)', () => {
  const { latents, images } = sd.generate({
    prompt,
    latents: sdxlGolden('pipe.in.latents'),
    guidanceScale: sdxlGolden('pipe.in.guidance_scale').item(),
    steps: 6,
    scheduler: 'ddim',
    originalSize: [96, 80],
    cropsCoordsTopLeft: [4, 2],
  });
  const [el, ei] = [sdxlGolden('pipe.out.latents'), sdxlGolden('pipe.out.image')];
  console.log(
    `  sdxl generation: latents ${maxAbsDiff(latents, el).toExponential(3)}, image ${maxAbsDiff(images, ei).toExponential(3)}`,
  );
  assertClose(latents, el, { atol: 1e-3, rtol: 0 });
  assertClose(images, ei, { atol: 1e-3, rtol: 0 });
});

test('the same generation from precomputed embeds (zero negatives given explicitly) gives the same bits', () => {
  const { states, pooled } = sd.encodeText([prompt]);
  const common = {
    latents: sdxlGolden('pipe.in.latents'),
    steps: 2,
    scheduler: 'ddim' as const,
    originalSize: [96, 80] as const,
    cropsCoordsTopLeft: [4, 2] as const,
  };
  const a = sd.generate({ ...common, prompt }).latents;
  const b = sd.generate({
    ...common,
    promptEmbeds: states,
    pooledPromptEmbeds: pooled,
    negativePromptEmbeds: Tensor.zeros(states.shape),
    negativePooledPromptEmbeds: Tensor.zeros((pooled as Tensor).shape),
  }).latents;
  assert.deepEqual(a.data, b.data);
  // a given negative prompt is encoded instead of zeroed, and micro-conditioning changes the result
  const c = sd.generate({ ...common, prompt, negativePrompt: 'a green star' }).latents;
  const d = sd.generate({ ...common, prompt, originalSize: [16, 16], cropsCoordsTopLeft: [0, 0] }).latents;
  assert.notDeepEqual(a.data, c.data);
  assert.notDeepEqual(a.data, d.data);
  assert.throws(
    () => sd.generate({ ...common, promptEmbeds: states }),
    /an SDXL model needs pooledPromptEmbeds with promptEmbeds/,
  );
});

test('negative micro-conditioning: used when both negative sizes are given, as diffusers', () => {
  const common = {
    prompt,
    latents: sdxlGolden('pipe.in.latents'),
    steps: 2,
    scheduler: 'ddim' as const,
    originalSize: [96, 80] as const,
    cropsCoordsTopLeft: [4, 2] as const,
  };
  const base = sd.generate(common).latents;
  const same = sd.generate({
    ...common,
    negativeOriginalSize: [96, 80],
    negativeCropsCoordsTopLeft: [4, 2],
    negativeTargetSize: [16, 16],
  }).latents;
  const onlyOne = sd.generate({ ...common, negativeOriginalSize: [8, 8] }).latents;
  const other = sd.generate({
    ...common,
    negativeOriginalSize: [8, 8],
    negativeTargetSize: [16, 16],
  }).latents;
  assert.deepEqual(same.data, base.data);
  assert.deepEqual(onlyOne.data, base.data);
  assert.notDeepEqual(other.data, base.data);
});

test('hooks see SDXL attention layers under diffusers’ paths with the guided batch; editPrompt runs', () => {
  const seen = new Set<string>();
  const spy: Controller = {
    name: 'spy',
    output: (c, o) => {
      if (c.kind === 'cross' && c.place !== 'text') seen.add(`${c.path}:${c.batch.guidance.join(',')}`);
      return o;
    },
  };
  sd.generate({ prompt, steps: 1, seed: 3, controllers: [spy] });
  assert.ok(
    seen.has('down_blocks.2.attentions.0.transformer_blocks.1.attn2:uncond,cond'),
    [...seen].join(' '),
  );
  assert.ok(seen.has('up_blocks.0.attentions.1.transformer_blocks.1.attn2:uncond,cond'));
  assert.equal(seen.size, 11);
  // Prompt-to-Prompt word swap with the tokenizer-1 TokenLookup
  const r = editPrompt(sd, { source: prompt, target: 'a red square above a blue square', steps: 2, seed: 1 });
  assert.equal(r.method, 'replace');
  assert.deepEqual(r.target.shape, [1, 3, 16, 16]);
});

test('force_zeros_for_empty_prompt must be a boolean; false encodes the empty prompt', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-sdxl-'));
  try {
    cpSync(sdxlDir(), dir, { recursive: true });
    const index = JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8'));
    writeFileSync(
      join(dir, 'model_index.json'),
      JSON.stringify({ ...index, force_zeros_for_empty_prompt: 'yes' }),
    );
    assert.throws(
      () => StableDiffusion.fromPretrained(dir),
      /force_zeros_for_empty_prompt must be true or false/,
    );
    writeFileSync(
      join(dir, 'model_index.json'),
      JSON.stringify({ ...index, force_zeros_for_empty_prompt: false }),
    );
    const plain = StableDiffusion.fromPretrained(dir);
    const common = { prompt, latents: sdxlGolden('pipe.in.latents'), steps: 2, scheduler: 'ddim' as const };
    const a = plain.generate(common).latents;
    const b = plain.generate({ ...common, negativePrompt: '' }).latents;
    const zeroed = sd.generate(common).latents;
    assert.deepEqual(a.data, b.data);
    assert.notDeepEqual(a.data, zeroed.data);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the sizes between an SDXL folder’s parts are checked at load, each error naming both sides', () => {
  const unetJson = JSON.parse(readFileSync(join(sdxlDir(), 'unet', 'config.json'), 'utf8'));
  const xl = sd.xl as NonNullable<typeof sd.xl>;
  const te1 = sd.textEncoder.config;
  checkSDXLParts('d', sd.unet.config, te1, xl);
  assert.throws(
    () =>
      checkSDXLParts(
        'd',
        parseUNetConfig({ ...unetJson, projection_class_embeddings_input_dim: 70 }),
        te1,
        xl,
      ),
    /d: unet\/config\.json projection_class_embeddings_input_dim = 70, but the pooled text \(text_encoder_2 projection_dim 20\) and 6 time ids × addition_time_embed_dim 8 make 68/,
  );
  assert.throws(
    () => checkSDXLParts('d', parseUNetConfig({ ...unetJson, cross_attention_dim: 48 }), te1, xl),
    /cross_attention_dim = 48, but the two text encoders' hidden sizes make 40 \(16 \+ 24\)/,
  );
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-sdxl-'));
  try {
    cpSync(sdxlDir(), dir, { recursive: true });
    const index = JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8'));
    writeFileSync(
      join(dir, 'model_index.json'),
      JSON.stringify({ ...index, _class_name: 'StableDiffusionPipeline' }),
    );
    assert.throws(
      () => StableDiffusion.fromPretrained(dir),
      /the UNet has addition_embed_type 'text_time' \(SDXL\) but model_index\.json's _class_name is not/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('micro-conditioning on a model that is not SDXL is an error naming the options', () => {
  const plain = StableDiffusion.fromPretrained(goldenDir());
  assert.throws(
    () => plain.generate({ prompt, steps: 1, originalSize: [64, 64], negativeTargetSize: [8, 8] }),
    /generate: originalSize, negativeTargetSize: micro-conditioning is for SDXL models; this one is not/,
  );
});
