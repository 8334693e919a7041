// attnkit train motion's parts, briefly (training itself is measured in docs/video.md): one step on one 2-frame
// Moving Shapes clip moves the motion modules off zero and leaves the image UNet untouched, a resumed run goes on
// from its checkpoint, and the adapter written in diffusers' names (float16) loads back as a MotionAdapter.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BUILTIN_MODEL } from '../../../src/cli/models.js';
import { movingShapesData } from '../../../src/cli/train-motion.js';
import { writeSafetensors } from '../../../src/io/safetensors.js';
import { MotionAdapter } from '../../../src/models/motion-module.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { motionAdapterConfigJson, trainMotion } from '../../../src/train/motion.js';

const dir = mkdtempSync(join(tmpdir(), 'attnkit-motion-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('train motion: a step trains the motion modules only, resumes, and exports a loadable MotionAdapter', () => {
  const sd = StableDiffusion.fromPretrained(BUILTIN_MODEL);
  const before = [...sd.unet.parameters()].map((p) => p.value);
  const data = movingShapesData(2);
  const o = { out: join(dir, 'run'), steps: 1, clips: 1, quiet: true };
  const first = trainMotion(sd, data, o);
  assert.equal(first.result.step, 1);
  assert.ok(Number.isFinite(first.history[0]!.loss as number));
  const projOut = first.adapter.down_blocks.at(0).motion_modules.at(0).proj_out.weight.value;
  assert.ok((projOut.abs().max().data[0] as number) > 0, 'proj_out still zero after a step');
  assert.ok(
    [...sd.unet.parameters()].every((p, i) => p.value === before[i]),
    'the image UNet changed',
  );
  const resumed = trainMotion(sd, data, { ...o, steps: 2, resume: true });
  assert.equal(resumed.result.step, 2);
  assert.equal(resumed.history.length, 2);

  const folder = join(dir, 'adapter');
  mkdirSync(folder);
  const weights = new Map([...resumed.adapter.namedParameters()].map(([k, p]) => [k, p.value]));
  writeSafetensors(join(folder, 'diffusion_pytorch_model.safetensors'), weights, { dtype: 'float16' });
  writeFileSync(join(folder, 'config.json'), JSON.stringify(motionAdapterConfigJson(resumed.adapter.config)));
  const loaded = MotionAdapter.fromPretrained(folder);
  const w = loaded.mid_block!.motion_modules.at(0).proj_in.weight.value;
  const orig = resumed.adapter.mid_block!.motion_modules.at(0).proj_in.weight.value;
  assert.ok((w.sub(orig).abs().max().data[0] as number) < 1e-2);
});
