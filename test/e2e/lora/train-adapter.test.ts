// Training a LoRA and Custom Diffusion on tiny-sd-a from a folder of images + captions: every step's loss is
// recorded and finite, the written files load with the readers, a resumed run ends where an uninterrupted one does,
// and `attnkit train lora` runs from the command line.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { writePng } from '../../../src/io/png.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { applyConcept } from '../../../src/lab/measure/new-concept.js';
import { readCustomDiffusion } from '../../../src/methods/weight/custom-diffusion.js';
import { readModifierTokens, singleTokenId } from '../../../src/methods/weight/modifier-token.js';
import { readLora } from '../../../src/models/lora-file.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { DDPMScheduler } from '../../../src/schedulers/index.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { Generator, randn } from '../../../src/tensor/random.js';
import { adapterLoss, LoraFactors, trainAdapter } from '../../../src/train/adapter.js';
import { folderTrainingData } from '../../../src/train/folder-data.js';
import { goldenDir, repoRoot } from '../../helpers/fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-train-lora-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const data = join(dir, 'data');
mkdirSync(data);
for (let i = 0; i < 2; i++) {
  writePng(join(data, `img${i}.png`), randn([1, 3, 32, 32], i).mul(0.5).clamp(-1, 1));
  writeFileSync(join(data, `img${i}.txt`), i === 0 ? 'a red circle' : 'a blue square');
}
const sd = StableDiffusion.fromPretrained(goldenDir());
const source = folderTrainingData(data, 32);
const common = {
  batchSize: 2,
  dataSeed: 0,
  seed: 1,
  lr: 3e-3,
  warmup: 0,
  clip: 0,
  checkpointMinutes: 60,
  quiet: true,
};

test('LoRA: 12 finite losses recorded, the file loads as PEFT layout, B moved from 0', () => {
  const out = join(dir, 'lora.safetensors');
  const r = trainAdapter(sd, source, {
    ...common,
    method: 'lora',
    rank: 2,
    steps: 12,
    dir: join(dir, 'run-l'),
    out,
    resume: false,
  });
  assert.equal(r.step, 12);
  const hist = JSON.parse(readFileSync(join(dir, 'run-l', 'checkpoint.json'), 'utf8')).history as {
    loss: number;
  }[];
  assert.equal(hist.length, 12);
  assert.ok(hist.every((h) => Number.isFinite(h.loss)));
  const a = readLora(out, { unet: sd.unet });
  assert.equal(a.layout, 'peft');
  assert.equal(a.unet.length, 4 * 12); // q, k, v, out of tiny-sd-a's 12 attention layers
  assert.ok(
    a.unet.some((d) => d.up.abs().max().item() > 0),
    'B never left 0',
  );
});

test('a resumed LoRA run ends where an uninterrupted one does', () => {
  const go = (name: string, steps: number, resume: boolean) => {
    const out = join(dir, `${name}.safetensors`);
    trainAdapter(sd, source, {
      ...common,
      method: 'lora',
      rank: 2,
      steps,
      dir: join(dir, `run-${name}`),
      out,
      resume,
    });
    return readFileSync(out);
  };
  const whole = go('whole', 4, false);
  go('split', 2, false);
  const resumed = go('split', 4, true);
  assert.ok(resumed.equals(whole), 'resumed run differs from the uninterrupted one');
});

test('Custom Diffusion: K/V of every cross-attention layer trained and written in diffusers layout', () => {
  const out = join(dir, 'cd.safetensors');
  trainAdapter(sd, source, {
    ...common,
    method: 'custom-diffusion',
    lr: 1e-3,
    steps: 2,
    dir: join(dir, 'run-cd'),
    out,
    resume: false,
  });
  const w = readCustomDiffusion(out, sd.unet);
  assert.equal(w.size, 6);
  const layer = 'mid_block.attentions.0.transformer_blocks.0.attn2';
  const base = sd.unet.mid_block?.attentions?.at(0).transformer_blocks.at(0).attn2.to_k.weight.value;
  const moved =
    w
      .get(layer)
      ?.k?.weight.sub(base as never)
      .abs()
      .max()
      .item() ?? 0;
  assert.ok(moved > 0 && moved < 0.1, `K moved by ${moved}`);
});

test('attnkit train lora runs from the command line and writes the adapter', () => {
  const out = join(dir, 'cli.safetensors');
  execFileSync(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repoRoot, 'src/cli/main.ts'),
      'train',
      'lora',
      '--model',
      goldenDir(),
      '--data',
      data,
      '--steps',
      '2',
      '--batch',
      '1',
      '--run',
      join(dir, 'run-cli'),
      '-o',
      out,
      '--threads',
      '1',
      '-q',
    ],
    { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  assert.equal(readLora(out, { unet: sd.unet }).unet.length, 48);
});

test('prior preservation: concept rows and prior rows each averaged, the prior part weighted', () => {
  // the same 4 rows scored as 2 concept + 2 prior rows with weight 1 give twice their plain mean (both parts
  // are means over 2 rows, the plain loss a mean over 4), with weight 0 the concept rows' mean alone
  const adapter = new LoraFactors(sd.unet, 2, new Generator(5));
  const noise = DDPMScheduler.fromConfig(sd.schedulerConfig);
  const batch = source.examples(0, 0, 4);
  const loss = (prior?: { rows: number; weight: number }) =>
    noGrad(() =>
      adapterLoss(sd, adapter, noise, batch.images, batch.captions, new Generator(9), prior),
    ).item();
  const plain = loss();
  assert.ok(Math.abs(loss({ rows: 2, weight: 1 }) - 2 * plain) < 1e-5 * plain);
  const first = noGrad(() =>
    adapterLoss(sd, adapter, noise, batch.images, batch.captions, new Generator(9), { rows: 2, weight: 0 }),
  ).item();
  const both = loss({ rows: 2, weight: 3 });
  assert.ok(Math.abs((both - first) / 3 - (2 * plain - first)) < 1e-5 * plain);
});

test('caption dropout 1: the same LoRA as training on empty captions (the unconditional branch CFG uses)', () => {
  const empty = join(dir, 'data-empty');
  mkdirSync(empty);
  for (let i = 0; i < 2; i++) {
    writeFileSync(join(empty, `img${i}.png`), readFileSync(join(data, `img${i}.png`)));
    writeFileSync(join(empty, `img${i}.txt`), '');
  }
  const run = (src: string, captionDropout: number, name: string) => {
    const out = join(dir, `${name}.safetensors`);
    trainAdapter(sd, folderTrainingData(src, 32), {
      ...common,
      method: 'lora',
      rank: 2,
      steps: 2,
      captionDropout,
      dir: join(dir, `run-${name}`),
      out,
      resume: false,
    });
    return readFileSync(out);
  };
  const dropped = run(data, 1, 'drop1');
  assert.deepEqual(dropped, run(empty, 0, 'empty'));
  assert.notDeepEqual(dropped, run(data, 0, 'drop0'));
});

test('Custom Diffusion with a modifier token: the word’s embedding trains and is written beside the K/V', () => {
  const out = join(dir, 'cd-token.safetensors');
  const table = sd.textEncoder.text_model.embeddings.token_embedding.weight;
  const before = table.value;
  trainAdapter(sd, source, {
    ...common,
    method: 'custom-diffusion',
    modifierToken: 'red',
    lr: 1e-2,
    steps: 2,
    dir: join(dir, 'run-cd-token'),
    out,
    resume: false,
  });
  assert.equal(table.value, before, 'the text encoder’s table was left changed');
  const token = readModifierTokens(join(dir, 'cd-token.token.safetensors')).get('red');
  assert.ok(token);
  const id = singleTokenId(sd.tokenizer, 'red');
  const d = token.shape[0] as number;
  const start = Tensor.from(before.toArray().slice(id * d, (id + 1) * d), [d]);
  const moved = token.sub(start).abs().max().item();
  assert.ok(moved > 1e-4, `the embedding moved by ${moved}`);
});

test('LoRA training lowers the loss on its images under fixed noise draws', () => {
  // the objective on the two training images, averaged over 3 fixed (t, ε) draws, before and after 10 steps.
  // tiny-sd-a is a random UNet, so most of its loss is noise no adapter removes (1.12 → 1.09 measured): a
  // LoRA that did not train leaves the loss exactly as it was (B = 0), a wrong gradient sign raises it
  const batch = source.examples(0, 0, 2);
  const noise = DDPMScheduler.fromConfig(sd.schedulerConfig);
  const fixed = (a: LoraFactors) =>
    [11, 12, 13]
      .map((g) =>
        noGrad(() => adapterLoss(sd, a, noise, batch.images, batch.captions, new Generator(g))).item(),
      )
      .reduce((x, y) => x + y) / 3;
  const out = join(dir, 'fit.safetensors');
  const { adapter } = trainAdapter(sd, source, {
    ...common,
    method: 'lora',
    rank: 4,
    lr: 5e-2,
    steps: 10,
    dir: join(dir, 'run-fit'),
    out,
    resume: false,
  });
  const start = new LoraFactors(sd.unet, 4, new Generator(1)); // B = 0: the base model's loss
  const [before, after] = [fixed(start), fixed(adapter as LoraFactors)];
  assert.ok(after < 0.985 * before, `loss ${before.toFixed(4)} → ${after.toFixed(4)}`);
});

test('full fine-tuning: every UNet weight trains, the file loads strictly, applyConcept puts the base back', () => {
  // its own model: full fine-tuning changes the UNet in place
  const own = StableDiffusion.fromPretrained(goldenDir());
  const base = new Map([...own.unet.namedParameters()].map(([k, p]) => [k, p.value]));
  const text = own.textEncoder.text_model.embeddings.token_embedding.weight.value;
  const out = join(dir, 'full.safetensors');
  trainAdapter(own, source, {
    ...common,
    method: 'full',
    lr: 1e-3,
    steps: 2,
    dir: join(dir, 'run-full'),
    out,
    resume: false,
  });
  assert.equal(
    own.textEncoder.text_model.embeddings.token_embedding.weight.value,
    text,
    'text encoder frozen',
  );
  const tuned = readSafetensors(out).tensors;
  assert.equal(tuned.size, base.size, 'one tensor per UNet weight');
  let moved = 0;
  for (const [k, w] of base) if (tuned.get(k)!.sub(w).abs().max().item() > 0) moved++;
  assert.ok(moved > 0.9 * base.size, `${moved} of ${base.size} weights moved`);
  // into a fresh model and out again: the base weights bit for bit
  const fresh = StableDiffusion.fromPretrained(goldenDir());
  const restore = applyConcept(fresh, 'full', out);
  for (const [k, p] of fresh.unet.namedParameters())
    assert.deepEqual(p.value.toArray(), tuned.get(k)!.toArray(), k);
  restore();
  for (const [k, p] of fresh.unet.namedParameters())
    assert.deepEqual(p.value.toArray(), base.get(k)!.toArray(), k);
});
