// Fuzzing the SD3 readers: SD3Transformer2DModel.fromConfig (config reading and building the model, position
// table included) and FlowMatchEulerDiscreteScheduler.fromConfig + setTimesteps, on seeded mutations of
// test/fixtures/tiny-sd3's config files. Each case builds or throws a plain Error naming the file or the
// scheduler, within the loaders' time and memory limits (mutate.ts).

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readConfig } from '../../../src/models/config.js';
import { SD3Transformer2DModel } from '../../../src/models/sd3-transformer.js';
import { FlowMatchEulerDiscreteScheduler } from '../../../src/schedulers/flow-match-euler.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { check, mutateBytes, mutateJson, rng, scratchDir, summary, tally } from '../loaders/mutate.js';

const fixture = join(repoRoot, 'test', 'fixtures', 'tiny-sd3');
const dir = scratchDir('sd3-config');

const READERS: { seed: string; read: (d: string, f: string) => unknown; names: RegExp }[] = [
  {
    seed: 'transformer/config.json',
    read: (d, f) => {
      const model = SD3Transformer2DModel.fromConfig(readConfig(d, f), join(d, f));
      return model.pos_embed.pos_embed.value; // the table is computed on first read
    },
    names: /config\.json/,
  },
  {
    seed: 'scheduler/scheduler_config.json',
    read: (d, f) => {
      const s = FlowMatchEulerDiscreteScheduler.fromConfig(readConfig(d, f));
      s.setTimesteps(Math.min(4, s.config.num_train_timesteps), { mu: 0.5 });
      return s;
    },
    names: /config\.json|FlowMatchEulerDiscreteScheduler config/,
  },
];

test('fuzz: 1,000 mutated SD3 config files per reader build or give an Error naming the file', () => {
  const r = rng(31_001);
  const t = tally(600);
  for (const [i, { seed, read, names }] of READERS.entries()) {
    const original = readFileSync(join(fixture, seed));
    const file = seed.split('/')[1] as string;
    for (let k = 0; k < 1000; k++) {
      const text =
        r() < 0.7
          ? Buffer.from(mutateJson(JSON.parse(original.toString('utf8')), r))
          : Buffer.from(mutateBytes(original, r));
      const d = join(dir, `r${i}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, file), text);
      check(t, `${seed} #${k}`, names, () => read(d, file));
    }
  }
  console.log(`sd3 config fuzz: ${summary(t)}`);
  assert.ok(t.ok > 0 && t.refused > 0);
});

test('the largest position table is refused before it is allocated', () => {
  const base = JSON.parse(readFileSync(join(fixture, 'transformer/config.json'), 'utf8'));
  assert.throws(
    () =>
      SD3Transformer2DModel.fromConfig({
        ...base,
        pos_embed_max_size: 1024,
        attention_head_dim: 512,
        caption_projection_dim: 1024,
      }),
    /pos_embed_max_size.*over 2\^27 floats/,
  );
});
