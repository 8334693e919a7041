// SDXL's text encoders exported with what its pipeline reads (issue 26 item 3): the second encoder's
// text_embeds (the projected pooled text: end-of-text found in the graph, not traced as a constant) and every
// hidden state (SDXL conditions on the penultimate), run in plain onnxruntime against the eager models at two
// batch sizes and text lengths, with end-of-text found by its id, by the largest id, and first of repeats.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as ort from 'onnxruntime-node';
import { buildModel, type GraphSpec } from '../../../src/kernels/graph.js';
import { CLIPTextModel } from '../../../src/models/clip-text.js';
import { CLIPTextModelWithProjection } from '../../../src/models/clip-text-projection.js';
import { exportTextEncoder } from '../../../src/pipelines/export.js';
import { noGrad, Tensor } from '../../../src/tensor/index.js';
import { randint } from '../../../src/tensor/random.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

const XL = join(repoRoot, 'test', 'fixtures', 'tiny-sdxl');
const TOL = { atol: 1e-4, rtol: 0 };

async function runPlain(g: GraphSpec, ids: Tensor): Promise<Record<string, Tensor>> {
  const session = await ort.InferenceSession.create(buildModel(g));
  try {
    const res = await session.run({
      input_ids: new ort.Tensor('int64', ids.data as BigInt64Array, [...ids.shape]),
    });
    return Object.fromEntries(
      Object.entries(res).map(([k, v]) => [k, new Tensor(v.data as Float32Array, v.dims)]),
    );
  } finally {
    await session.release();
  }
}

/** Rows of ids (B, T): random, and for the first row an end-of-text id at 3 repeated as padding. */
function idsOf(b: number, t: number, eos: number): Tensor {
  const r = randint([b, t], 0, 990, 700 + b * t, 'int64').toArray();
  for (let j = 3; j < t; j++) r[j] = eos;
  return new Tensor(
    BigInt64Array.from(r, (v) => BigInt(v)),
    [b, t],
  );
}

for (const [name, load, eos] of [
  [
    'text_encoder_2 (with projection, legacy eos id 2: the largest id)',
    () => CLIPTextModelWithProjection.fromPretrained(join(XL, 'text_encoder_2')),
    999,
  ],
  ['text_encoder (eos id 999)', () => CLIPTextModel.fromPretrained(join(XL, 'text_encoder')), 999],
] as const) {
  test(`SDXL ${name}: text_embeds and hidden states in plain onnxruntime (1e-4)`, async (t) => {
    const text = load();
    const g = exportTextEncoder(text, {}, { hiddenStates: true });
    const layers = text.config.numHiddenLayers;
    const names = g.outputs.map((o) => o.name);
    const withProjection = text instanceof CLIPTextModelWithProjection;
    assert.deepEqual(names, [
      ...(withProjection ? ['text_embeds'] : []),
      'last_hidden_state',
      ...Array.from({ length: layers + 1 }, (_, i) => `hidden_states.${i}`),
    ]);
    assert.deepEqual(g.inputs[0]?.dims, ['batch', 'sequence']);
    for (const [b, tokens] of [
      [1, 16],
      [3, 5],
    ] as const) {
      const ids = idsOf(b, tokens, eos);
      const eager = noGrad(() => text.forward(ids, { outputHiddenStates: true }));
      const y = await runPlain(g, ids);
      if (text instanceof CLIPTextModelWithProjection) {
        const embeds = noGrad(() => text.forward(ids).textEmbeds);
        assertClose(y.text_embeds!, embeds, { ...TOL, label: `text_embeds ${b}×${tokens}` });
      }
      assertClose(y.last_hidden_state!, eager.lastHiddenState, { ...TOL, label: `last ${b}×${tokens}` });
      const penultimate = `hidden_states.${layers - 1}`;
      assertClose(y[penultimate]!, eager.hiddenStates![layers - 1]!, {
        ...TOL,
        label: `${penultimate} ${b}×${tokens}`,
      });
      t.diagnostic(`${b}×${tokens}: outputs ${Object.keys(y).length}`);
    }
  });
}
