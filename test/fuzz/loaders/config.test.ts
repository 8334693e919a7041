// Fuzzing the config.json readers (issue 25): readConfig and the typed parses of src/models (UNet, VAE, CLIP
// text encoder, model_index.json) and of src/schedulers, on seeded mutations of tiny-sd-a's configs and on
// hand-written hostile files. Each case loads or throws a plain Error naming the file and the problem.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { AutoencoderKL } from '../../../src/models/autoencoder-kl.js';
import { CLIPTextModel } from '../../../src/models/clip-text.js';
import { parseCLIPTextConfig } from '../../../src/models/clip-text-config.js';
import { ConfigReader, readConfig } from '../../../src/models/config.js';
import { UNet2DConditionModel } from '../../../src/models/unet2d-condition.js';
import { parseUNetConfig } from '../../../src/models/unet2d-config.js';
import { parseVAEConfig } from '../../../src/models/vae-config.js';
import { componentConfig, readModelIndex } from '../../../src/pipelines/load.js';
import { loadScheduler, schedulerFromConfig } from '../../../src/schedulers/index.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { check, deepJson, mutateBytes, mutateJson, rng, scratchDir, summary, tally } from './mutate.js';

const fixture = join(repoRoot, 'test', 'fixtures', 'tiny-sd-a');
const sdxl = join(repoRoot, 'test', 'fixtures', 'tiny-sdxl');
const dir = scratchDir('config');

type Reader = (dir: string, file: string) => unknown;
const path = (d: string, f: string) => join(d, f);

/** Each seed file (in tiny-sd-a unless `root` says otherwise) and what reads it. */
const READERS: { seed: string; read: Reader; root?: string }[] = [
  { seed: 'unet/config.json', read: (d, f) => parseUNetConfig(readConfig(d, f), path(d, f)) },
  { seed: 'vae/config.json', read: (d, f) => parseVAEConfig(readConfig(d, f), path(d, f)) },
  { seed: 'text_encoder/config.json', read: (d, f) => parseCLIPTextConfig(readConfig(d, f), path(d, f)) },
  { seed: 'model_index.json', read: (d) => readModelIndex(d) },
  // SDXL: the UNet's text_time keys, model_index.json's second encoder and force_zeros_for_empty_prompt
  { seed: 'unet/config.json', root: sdxl, read: (d, f) => parseUNetConfig(readConfig(d, f), path(d, f)) },
  { seed: 'model_index.json', root: sdxl, read: (d) => readModelIndex(d) },
  // the pipelines read the scheduler's config with readConfig; loadScheduler parses it itself
  { seed: 'scheduler/scheduler_config.json', read: (d, f) => schedulerFromConfig(readConfig(d, f)) },
  { seed: 'scheduler/scheduler_config.json', read: (d) => loadScheduler(d) },
  // a model folder's scheduler config, checked when the pipeline loads (Python's -Infinity / NaN allowed)
  {
    seed: 'scheduler/scheduler_config.json',
    read: (d) => componentConfig(join(d, '..'), basename(d), 'scheduler_config.json'),
  },
];

const FILE_FOR: Record<string, string> = {
  'model_index.json': 'model_index.json',
  'scheduler/scheduler_config.json': 'scheduler_config.json',
};

/** The messages name the file, the scheduler's config, or the key. */
const NAMES = /config\.json|model_index\.json|scheduler config|Scheduler config|config key/;

test('fuzz: ≥ 2,000 mutated config files per reader load or give an Error naming the file', () => {
  const r = rng(25_006);
  // messages quote values through a bounded preview: none comes near 600 characters
  const t = tally(600);
  for (const [i, { seed, read, root }] of READERS.entries()) {
    const original = readFileSync(join(root ?? fixture, seed));
    const file = FILE_FOR[seed] ?? 'config.json';
    for (let k = 0; k < 2000; k++) {
      const text =
        r() < 0.7
          ? Buffer.from(mutateJson(JSON.parse(original.toString('utf8')), r))
          : Buffer.from(mutateBytes(original, r));
      const d = join(dir, `r${i}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, file), text);
      check(t, `${seed} #${k}`, NAMES, () => read(d, file));
    }
  }
  console.log(`config fuzz: ${summary(t)}`);
  assert.ok(t.ok + t.refused >= 2000 * READERS.length);
});

test('huge config sizes are refused before a model or a schedule is built (issue 25 item 5)', () => {
  const t = tally(600);
  const json = (f: string) => JSON.parse(readFileSync(join(fixture, f), 'utf8')) as Record<string, unknown>;
  const cases: [name: string, build: () => unknown, expected: RegExp][] = [
    [
      'layers_per_block 100000',
      () => UNet2DConditionModel.fromConfig({ ...json('unet/config.json'), layers_per_block: 100_000 }),
      /'layers_per_block' = 100000 is over attnkit's limit of 256/,
    ],
    [
      'sample_size 4096',
      () => UNet2DConditionModel.fromConfig({ ...json('unet/config.json'), sample_size: 4096 }),
      /'sample_size' = 4096 is over attnkit's limit of 1024/,
    ],
    [
      'sample_size 100000',
      () => UNet2DConditionModel.fromConfig({ ...json('unet/config.json'), sample_size: 100_000 }),
      /'sample_size' = 100000 is over/,
    ],
    [
      'VAE layers_per_block 100000',
      () => AutoencoderKL.fromConfig({ ...json('vae/config.json'), layers_per_block: 100_000 }),
      /'layers_per_block' = 100000 is over/,
    ],
    [
      'num_hidden_layers 1e6',
      () => CLIPTextModel.fromConfig({ ...json('text_encoder/config.json'), num_hidden_layers: 1e6 }),
      /'num_hidden_layers' = 1000000 is over attnkit's limit of 256/,
    ],
    [
      'num_train_timesteps 1e8',
      () => schedulerFromConfig({ ...json('scheduler/scheduler_config.json'), num_train_timesteps: 1e8 }),
      /"num_train_timesteps" = 100000000 is over attnkit's limit of 100000/,
    ],
    [
      'num_train_timesteps 1e300',
      () => schedulerFromConfig({ ...json('scheduler/scheduler_config.json'), num_train_timesteps: 1e300 }),
      /"num_train_timesteps" = 1e\+300 is over/,
    ],
  ];
  for (const [name, build, expected] of cases) {
    const outcome = check(t, name, NAMES, build);
    assert.notEqual(outcome, 'ok', name);
    assert.match((outcome as Error).message, expected, name);
    assert.ok(t.slowest < 500, `${name}: ${t.slowest} ms`);
  }
});

test('hostile config files: deep JSON (≥ 10,000 levels), huge values, not an object — a clear Error', () => {
  const t = tally();
  const deep = deepJson(20_000);
  const cases: [name: string, text: string, expected: RegExp][] = [
    ['deep file', deep, /config\.json.*nest/],
    ['deep _class_name', `{"_class_name": ${deep}}`, /config\.json.*nest/],
    ['deep sample_size', `{"sample_size": {"a": ${deep}}}`, /config\.json.*nest/],
    ['deep inside a string is fine', `{"_class_name": "${'['.repeat(20_000)}"}`, /_class_name/],
    ['huge list', `{"_class_name": [${new Array(100_000).fill(1).join(',')}]}`, /_class_name/],
    ['array', '[1, 2]', /config\.json: expected a JSON object/],
    ['empty', '', /config\.json is not valid JSON/],
  ];
  for (const [name, text, expected] of cases) {
    writeFileSync(join(dir, 'config.json'), text);
    const outcome = check(t, name, NAMES, () => parseUNetConfig(readConfig(dir), join(dir, 'config.json')));
    assert.notEqual(outcome, 'ok', name);
    assert.match((outcome as Error).message, expected, name);
    assert.ok((outcome as Error).message.length < 400, `${name}: ${(outcome as Error).message.length} chars`);
  }
});

test('ConfigReader quotes a deep or huge value in a bounded form (a config built in code, not read)', () => {
  let v: unknown = 1;
  for (let i = 0; i < 20_000; i++) v = [v];
  const r = new ConfigReader({ a: v, b: 'x'.repeat(100_000) }, 'cfg');
  assert.throws(
    () => r.int('a'),
    (e: Error) =>
      e.constructor === Error && /'a' must be a number, got \[\[\[/.test(e.message) && e.message.length < 300,
  );
  assert.throws(
    () => r.require('a', [null]),
    (e: Error) =>
      e.constructor === Error && /'a' = \[\[\[.* is not supported/.test(e.message) && e.message.length < 300,
  );
  assert.throws(
    () => r.int('b'),
    (e: Error) => e.message.length < 300,
  );
  new ConfigReader({ a: [1, 2], b: null }, 'cfg').require('a', [[1, 2]]);
  assert.throws(() => new ConfigReader({ a: [1, 3] }, 'cfg').require('a', [[1, 2], null]), /'a' = \[1,3\]/);
});
