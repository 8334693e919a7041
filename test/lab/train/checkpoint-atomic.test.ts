// Multi-file outputs written as one unit (issue 25, item 2): a checkpoint's weights and JSON, and an exported
// model folder. Each crash is made deterministically by putting the files in the state a kill at that point
// leaves (the layout is documented in src/train/checkpoint.ts and src/io/atomic.ts), or by making a write
// fail halfway.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test } from 'node:test';
import { readSafetensors, writeSafetensors } from '../../../src/io/safetensors.js';
import { readCheckpointMeta } from '../../../src/train/checkpoint.js';
import { exportShapesModel } from '../../../src/train/export.js';
import { tiny, trainTextToImage, trainVAE } from '../../helpers/tiny-train.js';

const root = mkdtempSync(join(tmpdir(), 'attnkit-atomic-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Every file under `dir` → the SHA-256 of its bytes. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

// The VAE stage after 1, 2 and 3 steps of one run (each its own folder, trained from scratch: the steps are
// deterministic, so `two` is what `one` becomes when resumed to 2).
const one = join(root, 'one');
const two = join(root, 'two');
const three = join(root, 'three');
let trained = false;
function trainStages(): void {
  if (trained) return;
  trainVAE(tiny(one, 1, 0));
  trainVAE(tiny(two, 2, 0));
  trainVAE(tiny(three, 3, 0));
  trained = true;
}

test('checkpoint: a resume over new weights beside the old JSON (a crash between the two files) is refused, naming both', () => {
  trainStages();
  const mixed = join(root, 'mixed');
  cpSync(one, mixed, { recursive: true });
  // the step-2 weights were written, the step-2 JSON never was
  copyFileSync(join(two, 'vae', 'checkpoint.safetensors'), join(mixed, 'vae', 'checkpoint.safetensors'));
  const weights = join(mixed, 'vae', 'checkpoint.safetensors');
  const json = join(mixed, 'vae', 'checkpoint.json');
  assert.throws(
    () => trainVAE(tiny(mixed, 3, 0, true)),
    (e: Error) =>
      e.message.includes(weights) && e.message.includes(json) && /not one checkpoint/.test(e.message),
  );
  // nothing was trained over the mixed set
  assert.deepEqual(
    readFileSync(weights),
    readFileSync(join(two, 'vae', 'checkpoint.safetensors')),
    'the refused checkpoint is left as it was',
  );
  // the readers that build models from a checkpoint refuse it too
  assert.throws(() => readCheckpointMeta(join(mixed, 'vae')), /not one checkpoint/);
});

test('checkpoint: a crash after the weights were switched and before the JSON was resumes as the whole new checkpoint, bit for bit', () => {
  trainStages();
  const crashed = join(root, 'crashed');
  cpSync(one, crashed, { recursive: true });
  const dir = join(crashed, 'vae');
  // the state a kill between the weights' rename and the JSON's leaves: new weights, old JSON, and the new
  // JSON flushed under its temporary name
  const pendingMeta = readCheckpointMeta(join(two, 'vae'));
  copyFileSync(join(two, 'vae', 'checkpoint.safetensors'), join(dir, 'checkpoint.safetensors'));
  const pending = join(dir, `checkpoint.json.${pendingMeta.id ?? 'pending'}.tmp`);
  copyFileSync(join(two, 'vae', 'checkpoint.json'), pending);
  trainVAE(tiny(crashed, 3, 0, true));
  const a = readSafetensors(join(three, 'vae', 'checkpoint.safetensors')).tensors;
  const b = readSafetensors(join(dir, 'checkpoint.safetensors')).tensors;
  for (const [k, t] of a) assert.deepEqual(b.get(k)?.data, t.data, `${k} differs from the uninterrupted run`);
  const [ma, mb] = [readCheckpointMeta(join(three, 'vae')), readCheckpointMeta(dir)];
  assert.equal(mb.step, 3);
  assert.equal(mb.rngCounter, ma.rngCounter);
  assert.deepEqual(
    mb.history.map((h) => h.loss),
    ma.history.map((h) => h.loss),
  );
  assert.equal(existsSync(pending), false);
});

test('checkpoint: temporary files a killed save left behind are removed at the next run', () => {
  trainStages();
  const killed = join(root, 'killed');
  cpSync(two, killed, { recursive: true });
  const dir = join(killed, 'vae');
  const stale = [
    'checkpoint.safetensors.0b3e3c39-6a4e-4e55-9d1f-1f0c5e0c4b11.tmp',
    'checkpoint.json.7-0b3e3c39-6a4e-4e55-9d1f-1f0c5e0c4b11.tmp',
    'checkpoint.json.tmp',
  ];
  for (const f of stale) writeFileSync(join(dir, f), new Uint8Array(1 << 16));
  trainVAE(tiny(killed, 3, 0, true));
  assert.deepEqual(readdirSync(dir).sort(), ['checkpoint.json', 'checkpoint.safetensors']);
  assert.equal(readCheckpointMeta(dir).step, 3);
});

test('checkpoint: a checkpoint written before the ids (in neither file) still resumes, bit for bit', () => {
  trainStages();
  const legacy = join(root, 'legacy');
  cpSync(two, legacy, { recursive: true });
  const dir = join(legacy, 'vae');
  const { id, ...meta } = readCheckpointMeta(dir);
  assert.ok(id, 'a checkpoint names its pair');
  writeSafetensors(
    join(dir, 'checkpoint.safetensors'),
    readSafetensors(join(dir, 'checkpoint.safetensors')).tensors,
  );
  writeFileSync(join(dir, 'checkpoint.json'), `${JSON.stringify(meta)}\n`);
  trainVAE(tiny(legacy, 3, 0, true));
  const a = readSafetensors(join(three, 'vae', 'checkpoint.safetensors')).tensors;
  const b = readSafetensors(join(dir, 'checkpoint.safetensors')).tensors;
  for (const [k, t] of a) assert.deepEqual(b.get(k)?.data, t.data, `${k} differs from the uninterrupted run`);
});

// A run with both stages, exported twice over one folder: the moving average, then (interrupted) the raw
// weights.
const run = join(root, 'run');
let runTrained = false;
function trainRun(): void {
  if (runTrained) return;
  trainVAE(tiny(run, 1, 0));
  trainTextToImage(tiny(run, 1, 2));
  runTrained = true;
}

test('export: an export interrupted over an existing model folder leaves the old folder as it was', () => {
  trainRun();
  const model = join(root, 'exports', 'model');
  exportShapesModel(model, run);
  const before = snapshot(model);
  // the same run whose tokenizer folder holds something that cannot be copied: the export fails after
  // the UNet, VAE and text encoder were written
  const broken = join(root, 'broken-run');
  cpSync(run, broken, { recursive: true });
  mkdirSync(join(broken, 'tokenizer', 'not-a-file'));
  assert.throws(() => exportShapesModel(model, broken, { ema: false }));
  assert.deepEqual(snapshot(model), before, 'the old model folder changed');
  assert.deepEqual(
    readdirSync(join(root, 'exports')),
    ['model'],
    'the interrupted export left files beside it',
  );
  // and the export that runs through replaces it whole
  exportShapesModel(model, run, { ema: false });
  assert.notEqual(
    snapshot(model)['unet/diffusion_pytorch_model.safetensors'],
    before['unet/diffusion_pytorch_model.safetensors'],
  );
});

test('export: the temporary folder of a killed export is removed at the next one; a folder that is no model is not replaced', () => {
  trainRun();
  const parent = join(root, 'exports2');
  const model = join(parent, 'model');
  exportShapesModel(model, run);
  // a kill during the writing leaves the partial folder beside the model
  const partial = join(parent, '.model.0b3e3c39-6a4e-4e55-9d1f-1f0c5e0c4b11.partial');
  mkdirSync(join(partial, 'unet'), { recursive: true });
  writeFileSync(join(partial, 'unet', 'diffusion_pytorch_model.safetensors'), new Uint8Array(1 << 16));
  exportShapesModel(model, run);
  assert.deepEqual(readdirSync(parent), ['model']);
  // the export replaces its folder whole: one with other things in it is refused, untouched
  const other = join(root, 'notes');
  mkdirSync(other);
  writeFileSync(join(other, 'todo.txt'), 'keep me\n');
  assert.throws(() => exportShapesModel(other, run), /notes.*model_index\.json/);
  assert.deepEqual(readdirSync(other), ['todo.txt']);
});
