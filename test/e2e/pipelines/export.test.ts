// Exported graphs run in plain onnxruntime and give what the eager modules give.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { writeOnnx } from '../../../src/io/onnx.js';
import { buildModel } from '../../../src/kernels/graph.js';
import { createSession, createSessionFromFile, runSession } from '../../../src/kernels/ort.js';
import { exportUNet, exportVAEDecoder } from '../../../src/pipelines/export.js';
import { Tensor } from '../../../src/tensor/index.js';
import { golden, goldenUNet, goldenVAE } from '../../helpers/golden.js';
import { assertClose } from '../../helpers/tolerance.js';

test('the exported UNet graph reproduces the golden output (1e-4)', () => {
  const graph = exportUNet(goldenUNet(), { batch: 2, height: 16, width: 16, textLength: 16 });
  const session = createSession(buildModel(graph));
  const [y] = runSession(
    session,
    {
      sample: golden('unet.in.sample').ort(),
      timestep: Tensor.from([401, 401]).ort(),
      encoder_hidden_states: golden('unet.in.encoder_hidden_states').ort(),
    },
    ['noise_pred'],
  );
  assert.ok(y);
  assertClose(Tensor.fromOrt(y), golden('unet.out.sample'), { atol: 1e-4, rtol: 0 });
});

test('an exported graph with external data loads from disk and matches the golden VAE decoder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attnkit-export-'));
  try {
    const graph = exportVAEDecoder(goldenVAE(), { batch: 1, height: 16, width: 16, textLength: 16 });
    // into a folder that does not exist yet: writeOnnx makes it
    const out = join(dir, 'onnx', 'vae.onnx');
    const files = writeOnnx(out, graph, { external: true });
    assert.deepEqual(files, [out, `${out}.data`]);
    // the weights are in the data file, not in the model
    assert.ok(readFileSync(files[1] as string).byteLength > readFileSync(files[0] as string).byteLength);
    const [y] = runSession(
      createSessionFromFile(files[0] as string),
      { latent_sample: golden('vae.decode.in').ort() },
      ['sample'],
    );
    assert.ok(y);
    assertClose(Tensor.fromOrt(y), golden('vae.decode.out'), { atol: 1e-4, rtol: 0 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
