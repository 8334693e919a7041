// Loaders as diffusers' `from_pretrained(dir, subfolder=, variant=)` (issue 26 item 5): one signature on every
// model class, variant and sharded weights, strict loading; the config readers exported from the package entry;
// upcast_attention / force_upcast read and checked (computing is float32 throughout, so both values agree).

import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  AutoencoderKL,
  CLIPTextModel,
  CLIPTokenizer,
  type JsonConfig,
  loadScheduler,
  parseCLIPTextConfig,
  parseSchedulerConfig,
  parseUNetConfig,
  parseVAEConfig,
  readConfig,
  readPretrainedWeights,
  readSafetensors,
  schedulerFromConfig,
  type Tensor,
  UNet2DConditionModel,
  writeSafetensors,
} from '../../../src/index.js';
import { goldenDir } from '../../helpers/fixtures.js';

const root = goldenDir();
const tmp = mkdtempSync(join(tmpdir(), 'attnkit-pretrained-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The same keys holding the same values. */
function assertSameWeights(a: Map<string, Tensor>, b: ReadonlyMap<string, Tensor>) {
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, t] of a) assert.deepEqual(t.toArray(), (b.get(k) as Tensor).toArray(), k);
}

/** A copy of one component folder of tiny-sd-a. */
function copyComponent(name: string, to: string): string {
  const dir = join(tmp, to);
  cpSync(join(root, name), dir, { recursive: true });
  return dir;
}

test('every model class loads a pipeline folder component with fromPretrained(dir, { subfolder })', () => {
  const unetWeights = readSafetensors(join(root, 'unet', 'diffusion_pytorch_model.safetensors')).tensors;
  const unet = UNet2DConditionModel.fromPretrained(root, { subfolder: 'unet' });
  assertSameWeights(unet.stateDict(), unetWeights);
  assert.deepEqual(unet.config, parseUNetConfig(readConfig(join(root, 'unet'))));
  // the component folder itself works as well
  assertSameWeights(UNet2DConditionModel.fromPretrained(join(root, 'unet')).stateDict(), unetWeights);

  const vae = AutoencoderKL.fromPretrained(root, { subfolder: 'vae' });
  assertSameWeights(
    vae.stateDict(),
    readSafetensors(join(root, 'vae', 'diffusion_pytorch_model.safetensors')).tensors,
  );
  const text = CLIPTextModel.fromPretrained(root, { subfolder: 'text_encoder' });
  assert.deepEqual(text.config, parseCLIPTextConfig(readConfig(join(root, 'text_encoder'))));
  const tokenizer = CLIPTokenizer.fromPretrained(root, { subfolder: 'tokenizer' });
  assert.deepEqual(
    tokenizer.call(['a red circle']).ids,
    CLIPTokenizer.fromDirectorySync(join(root, 'tokenizer')).call(['a red circle']).ids,
  );

  assert.throws(
    () => AutoencoderKL.fromPretrained(root, { subfolder: 'nope' }),
    /model folder .*nope does not exist/,
  );
});

test('a variant reads <weights>.<variant>.safetensors; a missing one names the file and the variants found', () => {
  const dir = copyComponent('unet', 'variant-unet');
  renameSync(
    join(dir, 'diffusion_pytorch_model.safetensors'),
    join(dir, 'diffusion_pytorch_model.fp16.safetensors'),
  );
  const unet = UNet2DConditionModel.fromPretrained(dir, { variant: 'fp16' });
  assert.equal(unet.config.inChannels, 4);
  assert.throws(
    () => UNet2DConditionModel.fromPretrained(dir),
    /no weights file diffusion_pytorch_model\.safetensors .*found diffusion_pytorch_model\.fp16\.safetensors: give the matching variant/,
  );
  assert.throws(() => UNet2DConditionModel.fromPretrained(dir, { variant: '../x' }), /plain name/);

  const te = copyComponent('text_encoder', 'variant-text');
  renameSync(join(te, 'model.safetensors'), join(te, 'model.fp16.safetensors'));
  assert.equal(CLIPTextModel.fromPretrained(te, { variant: 'fp16' }).config.hiddenSize, 32);
});

test('sharded weights: the index names each key’s shard; a key in the wrong shard or a missing one is refused', () => {
  const dir = copyComponent('vae', 'sharded-vae');
  const whole = join(dir, 'diffusion_pytorch_model.safetensors');
  const tensors = readSafetensors(whole).tensors;
  rmSync(whole);
  const keys = [...tensors.keys()];
  const half = Math.ceil(keys.length / 2);
  const shards = [
    'diffusion_pytorch_model-00001-of-00002.safetensors',
    'diffusion_pytorch_model-00002-of-00002.safetensors',
  ];
  const weightMap: Record<string, string> = {};
  keys.forEach((k, i) => {
    weightMap[k] = shards[i < half ? 0 : 1] as string;
  });
  shards.forEach((s, j) => {
    writeSafetensors(
      join(dir, s),
      new Map(keys.slice(j * half, (j + 1) * half).map((k) => [k, tensors.get(k) as Tensor])),
    );
  });
  const index = join(dir, 'diffusion_pytorch_model.safetensors.index.json');
  writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: weightMap }));
  assertSameWeights(AutoencoderKL.fromPretrained(dir).stateDict(), tensors);

  const first = keys[0] as string;
  const write = (map: JsonConfig) => writeFileSync(index, JSON.stringify({ weight_map: map }));
  write({ ...weightMap, [first]: shards[1] as string });
  assert.throws(() => readPretrainedWeights(dir, 'diffusion_pytorch_model'), /is not in its shard .*00002/);
  write({ ...weightMap, [first]: '../../etc/x.safetensors' });
  assert.throws(
    () => readPretrainedWeights(dir, 'diffusion_pytorch_model'),
    /expected a \.safetensors file name/,
  );
  const { [first]: _, ...fewer } = weightMap;
  write(fewer);
  assert.throws(
    () => readPretrainedWeights(dir, 'diffusion_pytorch_model'),
    /which the index does not map to it/,
  );
  // the variant goes before the last extension, as diffusers' and transformers' _add_variant put it
  write(weightMap);
  renameSync(index, join(dir, 'diffusion_pytorch_model.safetensors.index.fp16.json'));
  assertSameWeights(readPretrainedWeights(dir, 'diffusion_pytorch_model', 'fp16'), tensors);
});

test('the config readers are exported from the package entry', () => {
  const scheduler = parseSchedulerConfig(
    readFileSync(join(root, 'scheduler', 'scheduler_config.json'), 'utf8'),
  );
  assert.equal(
    schedulerFromConfig(scheduler).constructor,
    loadScheduler(join(root, 'scheduler')).constructor,
  );
  assert.equal(parseVAEConfig(readConfig(join(root, 'vae'))).latentChannels, 4);
});

test('upcast_attention and force_upcast: true and false accepted (float32 throughout), anything else refused', () => {
  const unet = readConfig(join(root, 'unet'));
  const vae = readConfig(join(root, 'vae'));
  for (const v of [true, false]) {
    assert.deepEqual(parseUNetConfig({ ...unet, upcast_attention: v }), parseUNetConfig(unet));
    assert.deepEqual(parseVAEConfig({ ...vae, force_upcast: v }), parseVAEConfig(vae));
  }
  assert.throws(
    () => parseUNetConfig({ ...unet, upcast_attention: 'yes' }, 'm/config.json'),
    /^Error: m\/config\.json: config key 'upcast_attention' must be true or false, got "yes"/,
  );
  assert.throws(
    () => parseVAEConfig({ ...vae, force_upcast: 1 }, 'm/config.json'),
    /^Error: m\/config\.json: config key 'force_upcast' must be true or false, got 1/,
  );
});
