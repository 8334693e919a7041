// Single-file checkpoints (original LDM layout) made by diffusers' own conversion script from tiny diffusers
// folders (test/fixtures/single-file/make_fixtures.py): the file loads, its inferred configs are the folder's,
// and every component gives the folder's outputs; the architecture inferred from real SD 1.5 / 2.1 names and
// shapes (real-shapes.json) is diffusers' config of those models.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadStableDiffusion } from '../../../src/cli/models.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { parseCLIPTextConfig } from '../../../src/models/clip-text-config.js';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { ldmUNetMapKey, ldmVAEMapKey, openCLIPMapKey } from '../../../src/models/ldm-keys.js';
import { parseUNetConfig } from '../../../src/models/unet2d-config.js';
import { parseVAEConfig } from '../../../src/models/vae-config.js';
import {
  readSingleFile,
  type SingleFileConfigOverrides,
  singleFileConfigs,
  singleFileParts,
} from '../../../src/pipelines/single-file.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

const DIR = join(repoRoot, 'test', 'fixtures', 'single-file');

/** What the tensors cannot tell about the tiny models: their sample size, and heads off SD's conventions. */
const OVERRIDES: Record<'sd1' | 'sd2', SingleFileConfigOverrides> = {
  sd1: { unet: { sample_size: 8 }, vae: { sample_size: 32 }, text_encoder: { num_attention_heads: 4 } },
  sd2: {
    unet: { sample_size: 8, attention_head_dim: 4 },
    vae: { sample_size: 32 },
    text_encoder: { num_attention_heads: 4 },
  },
};

function maxAbsDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  let worst = 0;
  for (let i = 0; i < a.size; i++)
    worst = Math.max(worst, Math.abs((a.data[i] as number) - (b.data[i] as number)));
  return worst;
}

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

for (const family of ['sd1', 'sd2'] as const) {
  describe(`single file, SD ${family === 'sd1' ? '1.x' : '2.x'} (${family}.safetensors)`, () => {
    const folderDir = join(DIR, family);
    const file = join(DIR, `${family}.safetensors`);
    const sd = StableDiffusion.fromSingleFile(file, {
      tokenizer: join(folderDir, 'tokenizer'),
      config: OVERRIDES[family],
    });
    const folder = StableDiffusion.fromPretrained(folderDir);
    const goldens = readSafetensors(join(folderDir, 'goldens.safetensors')).tensors;
    const g = (k: string) => goldens.get(k) as Tensor;

    test('the configs inferred from the tensors are the folder’s', () => {
      const { configs } = readSingleFile(file, {
        tokenizer: join(folderDir, 'tokenizer'),
        config: OVERRIDES[family],
      });
      assert.equal(configs.family, family);
      assert.deepEqual(
        parseUNetConfig(configs.unet),
        parseUNetConfig(readJson(join(folderDir, 'unet', 'config.json'))),
      );
      assert.deepEqual(
        parseVAEConfig(configs.vae),
        parseVAEConfig(readJson(join(folderDir, 'vae', 'config.json'))),
      );
      const text = parseCLIPTextConfig(configs.text_encoder);
      const want = parseCLIPTextConfig(readJson(join(folderDir, 'text_encoder', 'config.json')));
      // special-token ids: the legacy ids of diffusers' SD configs (end-of-text found as the largest id)
      assert.deepEqual({ ...text, bosTokenId: 0, eosTokenId: 2, padTokenId: 1 }, text);
      assert.deepEqual({ ...want, bosTokenId: 0, eosTokenId: 2, padTokenId: 1 }, text);
    });

    test('every weight is the folder’s, bit for bit', () => {
      for (const [a, b] of [
        [sd.unet, folder.unet],
        [sd.vae, folder.vae],
        [sd.textEncoder, folder.textEncoder],
      ] as const) {
        const want = new Map(b.namedParameters());
        for (const [k, p] of a.namedParameters()) {
          const q = want.get(k);
          assert.ok(q, k);
          assert.equal(maxAbsDiff(p.value, q.value), 0, k);
        }
      }
    });

    test('UNet, VAE and text encoder give the folder’s outputs (≤ 1e-6) and diffusers’ (≤ 1e-5)', () => {
      noGrad(() => {
        const report: string[] = [];
        const check = (name: string, ours: Tensor, fromFolder: Tensor, golden: Tensor) => {
          const d = maxAbsDiff(ours, fromFolder);
          report.push(
            `${name} ${d.toExponential(1)} (diffusers ${maxAbsDiff(ours, golden).toExponential(1)})`,
          );
          assert.ok(d <= 1e-6, `${name}: ${d} from the folder`);
          assertClose(ours, golden, { atol: 1e-5, rtol: 0, label: name });
        };
        const [x, ctx] = [g('unet.in.sample'), g('unet.in.encoder_hidden_states')];
        const t = g('unet.in.timestep').item();
        check('unet', sd.unet.forward(x, t, ctx), folder.unet.forward(x, t, ctx), g('unet.out.sample'));
        const img = g('vae.in.image');
        const [e, e0] = [sd.vae.encode(img), folder.vae.encode(img)];
        check('vae mean', e.mean, e0.mean, g('vae.out.mean'));
        check('vae logvar', e.logvar, e0.logvar, g('vae.out.logvar'));
        const z = g('vae.decode.in');
        check('vae decode', sd.vae.decode(z), folder.vae.decode(z), g('vae.decode.out'));
        const ids = g('text.in.ids');
        check(
          'text',
          sd.textEncoder.forward(ids).lastHiddenState,
          folder.textEncoder.forward(ids).lastHiddenState,
          g('text.out.last_hidden_state'),
        );
        console.log(`  ${family} single file vs folder: ${report.join(', ')}`);
      });
    });
  });
}

describe('single file: strict loading', () => {
  const file = join(DIR, 'sd1.safetensors');
  const tensors = readSafetensors(file).tensors;
  const tokenizer = CLIPTokenizer.fromDirectorySync(join(DIR, 'sd1', 'tokenizer'));
  const load = (t: ReadonlyMap<string, Tensor>) =>
    singleFileParts(t, tokenizer, { config: OVERRIDES.sd1, where: 'x.safetensors' });

  test('LDM’s own VAE attention (1×1 convolutions q, k, v, proj_out) loads as the linear layers', () => {
    const ldm = new Map<string, Tensor>();
    const names: Record<string, string> = { to_q: 'q', to_k: 'k', to_v: 'v', 'to_out.0': 'proj_out' };
    for (const [k, t] of tensors) {
      const m = /^(.*\.attn_1\.)(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(k);
      if (!m) ldm.set(k, t);
      else {
        const conv = m[3] === 'weight' ? t.reshape([...t.shape, 1, 1]) : t;
        ldm.set(`${m[1]}${names[m[2] as string]}.${m[3]}`, conv);
      }
    }
    assert.ok(ldm.has('first_stage_model.encoder.mid.attn_1.q.weight'));
    const a = load(ldm).vae;
    const b = load(tensors).vae;
    const img = Tensor.from(
      [...Array(3 * 32 * 32).keys()].map((i) => Math.sin(i)),
      [1, 3, 32, 32],
    );
    assert.equal(
      maxAbsDiff(
        noGrad(() => a.encode(img).mean),
        noGrad(() => b.encode(img).mean),
      ),
      0,
    );
  });

  test('a tensor of no family, a missing and a wrongly shaped tensor are named by their key in the file', () => {
    assert.throws(
      () => load(new Map([...tensors, ['cond_stage_model.extra', Tensor.zeros([1])]])),
      /x\.safetensors: 1 tensor\(s\) outside the Stable Diffusion single-file layout.*cond_stage_model\.extra/,
    );
    const key = 'model.diffusion_model.output_blocks.4.1.proj_out.weight';
    const missing = new Map(tensors);
    missing.delete(key);
    assert.throws(
      () => load(missing),
      /the unet tensors do not match[\s\S]*missing: up_blocks\.1\.attentions\.1\.proj_out\.weight/,
    );
    const wrong = new Map(tensors);
    wrong.set(key, Tensor.zeros([32, 16, 1, 1]));
    assert.throws(
      () => load(wrong),
      (e: Error) =>
        e.message.includes(`${key} (unet up_blocks.1.attentions.1.proj_out.weight): file [32, 16, 1, 1]`),
    );
    const unknown = new Map([
      ...tensors,
      ['model.diffusion_model.input_blocks.1.0.extra.weight', Tensor.zeros([1])],
    ]);
    assert.throws(() => load(unknown), /UNet key 'input_blocks\.1\.0\.extra\.weight' is not part/);
    // the layout diffusers' script gives a 2-block VAE (its maps assume 4 blocks): decoder.up.3 and up.2
    const shifted = new Map<string, Tensor>();
    for (const [k, t] of tensors)
      shifted.set(
        k.replace(/decoder\.up\.(\d)\./, (_, i) => `decoder.up.${Number(i) + 2}.`),
        t,
      );
    assert.throws(() => load(shifted), /decoder\.up \(2, 3, 4, 5\) must both be 0, 1, …, n−1/);
  });

  test('LDM’s schedule buffers are set aside; betas other than SD’s schedule need a scheduler config', () => {
    const sd = (i: number) => (Math.sqrt(0.00085) + ((Math.sqrt(0.012) - Math.sqrt(0.00085)) * i) / 999) ** 2;
    const betas = Tensor.from(
      Array.from({ length: 1000 }, (_, i) => sd(i)),
      [1000],
    );
    const withSchedule = new Map([...tensors, ['betas', betas], ['alphas_cumprod', betas]]);
    assert.equal(load(withSchedule).schedulerConfig.beta_schedule, 'scaled_linear');
    const linear = Tensor.from(
      Array.from({ length: 1000 }, (_, i) => 1e-4 + (0.02 - 1e-4) * (i / 999)),
      [1000],
    );
    const other = new Map([...tensors, ['betas', linear]]);
    assert.throws(
      () => load(other),
      /x\.safetensors: the file's 'betas' \(1000 steps, .*give the scheduler config/,
    );
    const given = {
      ...OVERRIDES.sd1,
      scheduler: { beta_schedule: 'linear', beta_start: 1e-4, beta_end: 0.02 },
    };
    const parts = singleFileParts(other, tokenizer, { config: given });
    assert.equal(parts.schedulerConfig.beta_schedule, 'linear');
  });

  test('a single file without a tokenizer folder is refused with what to give', () => {
    assert.throws(
      () => readSingleFile(file),
      /holds no tokenizer, and attnkit ships no CLIP vocabulary: give a tokenizer folder/,
    );
    // the CLI's --model: a file is read as a single file (its tokenizer from --tokenizer, $ATTNKIT_TOKENIZER
    // or tokenizer/ beside it), a folder as a diffusers folder
    const saved = process.env.ATTNKIT_TOKENIZER;
    delete process.env.ATTNKIT_TOKENIZER;
    try {
      assert.throws(() => loadStableDiffusion(file), /pass --tokenizer <dir>/);
      const tokenizer = join(DIR, 'sd1', 'tokenizer');
      // (the tiny model's 32-channel text encoder is off SD's 64-channels-per-head convention)
      assert.throws(
        () => loadStableDiffusion(file, { tokenizer }),
        /sd1\.safetensors: SD's text encoders have 64 channels per head/,
      );
      // --model-config gives what the weights cannot tell
      const config = join(mkdtempSync(join(tmpdir(), 'attnkit-single-')), 'overrides.json');
      writeFileSync(config, JSON.stringify(OVERRIDES.sd1));
      const viaCli = loadStableDiffusion(file, { tokenizer, config });
      assert.deepEqual(viaCli.unet.config, StableDiffusion.fromPretrained(join(DIR, 'sd1')).unet.config);
      writeFileSync(config, JSON.stringify({ unet: 8 }));
      assert.throws(() => loadStableDiffusion(file, { tokenizer, config }), /key "unet" must be one of/);
    } finally {
      if (saved !== undefined) process.env.ATTNKIT_TOKENIZER = saved;
    }
    assert.equal(loadStableDiffusion(join(DIR, 'sd1')).unet.config.sampleSize, 8);
  });

  test('heads follow SD’s 64-channels-per-head conventions, or an override', () => {
    const sd2 = readSafetensors(join(DIR, 'sd2.safetensors')).tensors;
    const shapes = new Map([...sd2].map(([k, t]) => [k, t.shape]));
    assert.throws(() => singleFileConfigs(shapes), /64 channels per head, but a block has 32 channels/);
    assert.throws(
      () => singleFileConfigs(shapes, { config: { unet: OVERRIDES.sd2.unet } }),
      /text encoders have 64 channels per head, but this one has 32 channels; give the heads as config\.text_encoder\.num_attention_heads/,
    );
    assert.equal(singleFileConfigs(shapes, { config: OVERRIDES.sd2 }).unet.attention_head_dim, 4);
  });
});

describe('single file: architecture of real SD 1.5 / 2.1 files, from names and shapes', () => {
  const real = readJson(join(DIR, 'real-shapes.json')) as Record<
    string,
    {
      shapes: Record<string, number[]>;
      unet_config: Record<string, unknown>;
      vae_config: Record<string, unknown>;
      diffusers_keys: string[];
    }
  >;
  for (const [name, r] of Object.entries(real)) {
    test(`${name}: the configs are diffusers’, the UNet and VAE names map to diffusers’ names`, () => {
      const shapes = new Map(Object.entries(r.shapes));
      const c = singleFileConfigs(shapes);
      assert.equal(c.family, name === 'sd15' ? 'sd1' : 'sd2');
      // what the tensors cannot tell: diffusers' defaults (SD 2.x: the 768-v models)
      const [side, prediction] = name === 'sd15' ? [64, 'epsilon'] : [96, 'v_prediction'];
      assert.deepEqual(parseUNetConfig(c.unet), parseUNetConfig({ ...r.unet_config, sample_size: side }));
      assert.deepEqual(parseVAEConfig(c.vae), parseVAEConfig({ ...r.vae_config, sample_size: side * 8 }));
      assert.equal(c.scheduler.prediction_type, prediction);
      const text = parseCLIPTextConfig(c.text_encoder);
      const [layers, heads, hidden, act] =
        name === 'sd15' ? [12, 12, 768, 'quick_gelu'] : [23, 16, 1024, 'gelu'];
      assert.deepEqual(
        [text.numHiddenLayers, text.numAttentionHeads, text.hiddenSize, text.hiddenAct, text.vocabSize],
        [layers, heads, hidden, act, 49408],
      );
      // every UNet and VAE name maps (a tiny stand-in tensor: the maps rename, and reshape 1×1 convolutions)
      const one = Tensor.zeros([1]);
      const unet = ldmUNetMapKey(c.unetLayersPerBlock);
      const vae = ldmVAEMapKey(c.vaeBlocks);
      const mapped = new Set<string>();
      for (const k of shapes.keys()) {
        if (k.startsWith('model.diffusion_model.'))
          for (const [m] of unet(k.slice(22), one)) mapped.add(`unet.${m}`);
        if (k.startsWith('first_stage_model.'))
          for (const [m] of vae(k.slice(18), one)) mapped.add(`vae.${m}`);
      }
      assert.deepEqual([...mapped].sort(), [...r.diffusers_keys].sort());
      if (name === 'sd21') {
        assert.equal(c.textDropFrom, 23);
        const map = openCLIPMapKey(c.textDropFrom);
        assert.deepEqual(map('transformer.resblocks.23.ln_1.weight', one), []);
        const fused = Tensor.from([0, 1, 2, 3, 4, 5], [6]);
        assert.deepEqual(
          map('transformer.resblocks.22.attn.in_proj_bias', fused).map(([k, t]) => [k, t.toArray()]),
          [
            ['text_model.encoder.layers.22.self_attn.q_proj.bias', [0, 1]],
            ['text_model.encoder.layers.22.self_attn.k_proj.bias', [2, 3]],
            ['text_model.encoder.layers.22.self_attn.v_proj.bias', [4, 5]],
          ],
        );
      }
    });
  }
});
