// Exported graphs have symbolic batch / height / width / sequence axes: one file, run in plain onnxruntime
// (its public InferenceSession, not attnkit's kernels), gives the eager model's output at every size (1e-4).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildModel, type GraphSpec } from '../../../src/kernels/graph.js';
import { CLIPTextModel } from '../../../src/models/clip-text.js';
import { UNet2DConditionModel } from '../../../src/models/unet2d-condition.js';
import {
  exportTextEncoder,
  exportUNet,
  exportVAEDecoder,
  exportVAEEncoder,
} from '../../../src/pipelines/export.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { randint, randn } from '../../../src/tensor/random.js';
import { goldenDir, repoRoot } from '../../helpers/fixtures.js';
import { goldenUNet, goldenVAE } from '../../helpers/golden.js';
import { assertClose } from '../../helpers/tolerance.js';

const TOL = { atol: 1e-4, rtol: 0 };

/** Runs the graph in a plain onnxruntime session; returns the named outputs as tensors. */
async function runPlain(
  g: GraphSpec,
  feeds: Readonly<Record<string, Tensor>>,
): Promise<Record<string, Tensor>> {
  const session = await ort.InferenceSession.create(buildModel(g));
  try {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [k, t] of Object.entries(feeds)) {
      ortFeeds[k] = new ort.Tensor(t.dtype as 'float32' | 'int64', t.data, [...t.shape]);
    }
    const res = await session.run(ortFeeds);
    const out: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(res)) out[k] = new Tensor(v.data as Float32Array, v.dims);
    return out;
  } finally {
    await session.release();
  }
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs(Number(a.data[i]) - Number(b.data[i])));
  return m;
}

/** Graph inputs' dims as the signature shows them, e.g. `sample[batch,4,height,width]`. */
function signature(g: GraphSpec): string[] {
  return [...g.inputs, ...g.outputs].map((v) => `${v.name}[${v.dims?.join(',')}]`);
}

test('one exported UNet graph runs at batch 1, 2, 3 and two latent sizes (plain onnxruntime, 1e-4)', async (t) => {
  const unet = goldenUNet();
  const g = exportUNet(unet);
  assert.deepEqual(signature(g), [
    'sample[batch,4,height,width]',
    'timestep[steps]',
    'encoder_hidden_states[batch,sequence,32]',
    'noise_pred[batch,4,height,width]',
  ]);
  const cases: [number, number, number, number][] = [
    [1, 16, 16, 16],
    [2, 16, 16, 16],
    [3, 16, 16, 16],
    [2, 8, 12, 7],
    [3, 8, 12, 16],
  ];
  for (const [b, h, w, tokens] of cases) {
    const sample = randn([b, 4, h, w], 100 + b * h);
    // one timestep per row, or one for the whole batch (as diffusers' ONNX pipeline passes it) at odd sizes
    const steps = h === 16 && b !== 3 ? b : 1;
    const timestep = Tensor.from(Array.from({ length: steps }, (_, i) => 101 + 300 * i));
    const context = randn([b, tokens, 32], 200 + tokens);
    const eager = noGrad(() => unet.forward(sample, timestep, context));
    const { noise_pred: y } = await runPlain(g, { sample, timestep, encoder_hidden_states: context });
    assert.ok(y);
    assert.deepEqual(y.shape, [b, 4, h, w]);
    t.diagnostic(
      `unet batch ${b}, latents ${h}×${w}, ${tokens} tokens, ${steps} timestep(s): max |Δ| ${maxAbsDiff(y, eager)}`,
    );
    assertClose(y, eager, { ...TOL, label: `unet ${b}×4×${h}×${w}` });
  }
});

test('the exported SDXL UNet takes text_embeds and time_ids and runs at two batch and latent sizes (1e-4)', async (t) => {
  // the tiny-sdxl fixture's UNet: text_time add-embedding, 3 levels (latents a multiple of 4)
  const unet = UNet2DConditionModel.fromPretrained(join(repoRoot, 'test', 'fixtures', 'tiny-sdxl', 'unet'));
  const g = exportUNet(unet);
  assert.deepEqual(signature(g), [
    'sample[batch,4,height,width]',
    'timestep[steps]',
    'encoder_hidden_states[batch,sequence,40]',
    'text_embeds[batch,20]',
    'time_ids[batch,6]',
    'noise_pred[batch,4,height,width]',
  ]);
  for (const [b, h, w, tokens] of [
    [1, 8, 8, 7],
    [3, 16, 12, 12],
  ] as const) {
    const sample = randn([b, 4, h, w], 600 + b);
    const timestep = Tensor.from([321]);
    const context = randn([b, tokens, 40], 610 + b);
    const textEmbeds = randn([b, 20], 620 + b);
    const timeIds = Tensor.from(
      Array.from({ length: b * 6 }, (_, i) => [64, 64, 0, 0, 64, 64][i % 6] as number),
      [b, 6],
    );
    const added = { textEmbeds, timeIds };
    const eager = noGrad(() => unet.forward(sample, timestep, context, { added }));
    const { noise_pred: y } = await runPlain(g, {
      sample,
      timestep,
      encoder_hidden_states: context,
      text_embeds: textEmbeds,
      time_ids: timeIds,
    });
    assert.ok(y);
    t.diagnostic(
      `sdxl unet batch ${b}, latents ${h}×${w}, ${tokens} tokens: max |Δ| ${maxAbsDiff(y, eager)}`,
    );
    assertClose(y, eager, { ...TOL, label: `sdxl unet ${b}×4×${h}×${w}` });
  }
});

test('the exported VAE decoder and encoder run at two batch and spatial sizes (plain onnxruntime, 1e-4)', async (t) => {
  const vae = goldenVAE();
  const decoder = exportVAEDecoder(vae);
  assert.deepEqual(signature(decoder), [
    'latent_sample[batch,4,height,width]',
    'sample[batch,3,2*height,2*width]',
  ]);
  for (const [b, h, w] of [
    [1, 8, 8],
    [3, 6, 10],
  ] as const) {
    const z = randn([b, 4, h, w], 300 + h);
    const eager = noGrad(() => vae.decode(z));
    const { sample: y } = await runPlain(decoder, { latent_sample: z });
    assert.ok(y);
    t.diagnostic(`vae decoder batch ${b}, latents ${h}×${w}: max |Δ| ${maxAbsDiff(y, eager)}`);
    assertClose(y, eager, { ...TOL, label: `vae decoder ${b}×4×${h}×${w}` });
  }
  const encoder = exportVAEEncoder(vae);
  for (const [b, h, w] of [
    [1, 16, 16],
    [2, 12, 20],
  ] as const) {
    const x = randn([b, 3, h, w], 400 + h);
    const eager = noGrad(() => vae.encode(x));
    const { mean, logvar } = await runPlain(encoder, { sample: x });
    assert.ok(mean && logvar);
    t.diagnostic(
      `vae encoder batch ${b}, image ${h}×${w}: max |Δ| mean ${maxAbsDiff(mean, eager.mean)}, logvar ${maxAbsDiff(logvar, eager.logvar)}`,
    );
    assertClose(mean, eager.mean, { ...TOL, label: `vae encoder mean ${h}×${w}` });
    assertClose(logvar, eager.logvar, { ...TOL, label: `vae encoder logvar ${h}×${w}` });
  }
});

test('the exported text encoder runs at two batch sizes and text lengths (plain onnxruntime, 1e-4)', async (t) => {
  const text = CLIPTextModel.fromPretrained(join(goldenDir(), 'text_encoder'));
  const g = exportTextEncoder(text);
  assert.deepEqual(signature(g), ['input_ids[batch,sequence]', 'last_hidden_state[batch,sequence,32]']);
  for (const [b, tokens] of [
    [1, 16],
    [3, 5],
  ] as const) {
    const ids = randint([b, tokens], 0, 1000, 500 + tokens, 'int64');
    const eager = noGrad(() => text.forward(ids).lastHiddenState);
    const { last_hidden_state: y } = await runPlain(g, { input_ids: ids });
    assert.ok(y);
    t.diagnostic(`text encoder batch ${b}, ${tokens} tokens: max |Δ| ${maxAbsDiff(y, eager)}`);
    assertClose(y, eager, { ...TOL, label: `text encoder ${b}×${tokens}` });
  }
});

test('a fixed axis keeps its size in the graph; the others stay symbolic', () => {
  const g = exportUNet(goldenUNet(), { batch: 2, textLength: 16 });
  assert.deepEqual(signature(g), [
    'sample[2,4,height,width]',
    'timestep[steps]',
    'encoder_hidden_states[2,16,32]',
    'noise_pred[2,4,height,width]',
  ]);
});
