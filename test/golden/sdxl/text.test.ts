// SDXL's text side against the tiny-sdxl goldens: CLIPTextModel and CLIPTextModelWithProjection (pooled
// output at the end-of-text token, text_projection), the penultimate hidden states both hand the UNet, and
// the tokenizers' padding (tokenizer_2 pads with "!", as SDXL's does).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { CLIPTextModel } from '../../../src/models/clip-text.js';
import { CLIPTextModelWithProjection } from '../../../src/models/clip-text-projection.js';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { noGrad, type Tensor } from '../../../src/tensor/index.js';
import { assertClose } from '../../helpers/tolerance.js';
import { maxAbsDiff, sdxlDir, sdxlGolden } from './helpers.js';

const te1 = CLIPTextModel.fromPretrained(join(sdxlDir(), 'text_encoder'));
const te2 = CLIPTextModelWithProjection.fromPretrained(join(sdxlDir(), 'text_encoder_2'));
const ids = sdxlGolden('text.in.ids');

function check(name: string, actual: Tensor, key: string): void {
  const expected = sdxlGolden(key);
  console.log(`  ${name}: max abs error ${maxAbsDiff(actual, expected).toExponential(3)}`);
  assertClose(actual, expected, { atol: 1e-4, rtol: 0, label: key });
}

test('text encoder 1 (CLIPTextModel): last, penultimate and pooled states match (1e-4)', () => {
  const out = noGrad(() => te1.forward(ids, { outputHiddenStates: true }));
  const states = out.hiddenStates as Tensor[];
  assert.equal(states.length, te1.config.numHiddenLayers + 1);
  check('text1 last', out.lastHiddenState, 'text1.out.last_hidden_state');
  check('text1 penultimate', states[states.length - 2] as Tensor, 'text1.out.penultimate');
  check('text1 pooled', out.pooled, 'text1.out.pooled');
});

test('text encoder 2 (CLIPTextModelWithProjection): text_embeds at the argmax of the ids (eos_token_id 2)', () => {
  assert.equal(te2.config.eosTokenId, 2);
  assert.equal(te2.projectionDim, 20);
  const out = noGrad(() => te2.forward(ids, { outputHiddenStates: true }));
  const states = out.hiddenStates as Tensor[];
  check('text2 last', out.lastHiddenState, 'text2.out.last_hidden_state');
  check('text2 penultimate', states[states.length - 2] as Tensor, 'text2.out.penultimate');
  check('text2 text_embeds', out.textEmbeds, 'text2.out.pooled');
  assert.deepEqual(te2.eosPositions(ids), [9, 15]);
});

test('the projection head loads strictly: a missing text_projection.weight is named', () => {
  const plain = new Map([...te1.namedParameters()].map(([k, p]) => [k, p.value] as [string, Tensor]));
  const model = new CLIPTextModelWithProjection(te1.config, 4);
  assert.throws(() => model.load(plain), /missing weights: text_projection\.weight/);
  assert.throws(
    () => CLIPTextModelWithProjection.fromConfig({ model_type: 'clip_text_model', projection_dim: 0 }),
    /'projection_dim' = 0 must be an integer ≥ 1/,
  );
});

test('the two tokenizers give the ids the goldens were made from (tokenizer_2 pads with "!")', () => {
  const prompt = 'a red circle above a blue square';
  const t1 = CLIPTokenizer.fromDirectorySync(join(sdxlDir(), 'tokenizer'));
  const t2 = CLIPTokenizer.fromDirectorySync(join(sdxlDir(), 'tokenizer_2'));
  assert.deepEqual(t1.call([prompt]).ids, [sdxlGolden('prompt.ids_1').toArray()]);
  assert.deepEqual(t2.call([prompt]).ids, [sdxlGolden('prompt.ids_2').toArray()]);
});
