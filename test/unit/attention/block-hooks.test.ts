// The block hooks. `resnet` (the feature level extended to the UNet's ResNet blocks) and `transformer` (the
// residual branch of the UNet's attention blocks): every block is called once per forward with its module path,
// in forward order; an identity hook changes no bit; replacing a block's residual branch by zeros equals a model
// whose last convolution of that branch is zero (an independent way to get a zero branch). `reuseTransformer`
// skips the block's computation: the model's output equals one where the branch is computed and then replaced.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AttentionContext, type Controller, plainBatch } from '../../../src/attention/index.js';
import { ResnetBlock2D, Transformer2DModel } from '../../../src/models/unet-blocks.js';
import { noGrad, type Tensor } from '../../../src/tensor/index.js';
import { golden, goldenUNet } from '../../helpers/golden.js';
import { sameBits } from '../../helpers/tolerance.js';

const unet = goldenUNet();
const t = golden('unet.in.timestep').item();
const sample = golden('unet.in.sample');
const text = golden('unet.in.encoder_hidden_states');

function run(controllers: Controller[], model = unet): Tensor {
  const ctx: AttentionContext = { controllers, step: 3, numSteps: 7, timestep: t, batch: plainBatch(2) };
  return noGrad(() => model.forward(sample, t, text, { ctx }));
}

test('resnet hooks see every UNet ResNet block once, in forward order, with path, place, size and step', () => {
  const seen: string[] = [];
  const spy: Controller = {
    name: 'spy',
    resnet: (c, h) => {
      assert.deepEqual([c.step, c.numSteps, c.timestep], [3, 7, t]);
      assert.deepEqual(c.batch, plainBatch(2));
      assert.deepEqual(c.size, [h.shape[2], h.shape[3]]);
      seen.push(`${c.index}:${c.path}@${c.place}:${c.size.join('x')}`);
      return h;
    },
  };
  const plain = run([]);
  assert.ok(sameBits(plain, run([spy])), 'an identity resnet hook changed the output');
  assert.deepEqual(seen, [
    '0:down_blocks.0.resnets.0@down:16x16',
    '1:down_blocks.0.resnets.1@down:16x16',
    '2:down_blocks.1.resnets.0@down:8x8',
    '3:down_blocks.1.resnets.1@down:8x8',
    '4:mid_block.resnets.0@mid:8x8',
    '5:mid_block.resnets.1@mid:8x8',
    '6:up_blocks.0.resnets.0@up:8x8',
    '7:up_blocks.0.resnets.1@up:8x8',
    '8:up_blocks.0.resnets.2@up:8x8',
    '9:up_blocks.1.resnets.0@up:16x16',
    '10:up_blocks.1.resnets.1@up:16x16',
    '11:up_blocks.1.resnets.2@up:16x16',
  ]);
  const declared = [...unet.namedModules()].filter(([, m]) => m instanceof ResnetBlock2D).map(([p]) => p);
  assert.deepEqual(
    declared,
    seen.map((s) => s.split(':')[1]?.split('@')[0]),
  );
});

test('zeroing the residual branch of up_blocks.1.resnets.1 equals zeroing that block’s conv2', () => {
  const target = 'up_blocks.1.resnets.1';
  const zero: Controller = { name: 'zero', resnet: (c, h) => (c.path === target ? h.mul(0) : h) };
  const hooked = run([zero]);

  const edited = goldenUNet();
  const block = edited.up_blocks.at(1).resnets.at(1);
  block.conv2.weight.value = block.conv2.weight.value.mul(0);
  if (block.conv2.bias) block.conv2.bias.value = block.conv2.bias.value.mul(0);
  const reference = run([], edited);

  assert.ok(sameBits(hooked, reference), 'hooked branch ≠ zeroed conv2');
  assert.ok(!sameBits(hooked, run([])), 'zeroing the branch changed nothing');
});

// tiny-sd-a: DownBlock2D, CrossAttnDownBlock2D (2 layers) at 8×8, the mid block, CrossAttnUpBlock2D (3 layers)
test('transformer hooks see every UNet attention block once, in forward order, with path, place and size', () => {
  const seen: string[] = [];
  const spy: Controller = {
    name: 'spy',
    transformer: (c, h) => {
      assert.deepEqual([c.step, c.numSteps, c.timestep], [3, 7, t]);
      assert.deepEqual(h.shape, [2, 64, 8, 8]);
      seen.push(`${c.index}:${c.path}@${c.place}:${c.size.join('x')}`);
      return h;
    },
  };
  assert.ok(sameBits(run([]), run([spy])), 'an identity transformer hook changed the output');
  assert.deepEqual(seen, [
    '0:down_blocks.1.attentions.0@down:8x8',
    '1:down_blocks.1.attentions.1@down:8x8',
    '2:mid_block.attentions.0@mid:8x8',
    '3:up_blocks.0.attentions.0@up:8x8',
    '4:up_blocks.0.attentions.1@up:8x8',
    '5:up_blocks.0.attentions.2@up:8x8',
  ]);
});

test('zeroing the branch of mid_block.attentions.0 equals zeroing its proj_out', () => {
  const target = 'mid_block.attentions.0';
  const zero: Controller = { name: 'zero', transformer: (c, h) => (c.path === target ? h.mul(0) : h) };
  const edited = goldenUNet();
  const block = edited.mid_block?.attentions.at(0);
  assert.ok(block instanceof Transformer2DModel);
  block.proj_out.weight.value = block.proj_out.weight.value.mul(0);
  if (block.proj_out.bias) block.proj_out.bias.value = block.proj_out.bias.value.mul(0);
  assert.ok(sameBits(run([zero]), run([], edited)), 'hooked branch ≠ zeroed proj_out');
  assert.ok(!sameBits(run([zero]), run([])), 'zeroing the branch changed nothing');
});

test('reuseTransformer skips the block (no attention inside runs) and equals computing then replacing', () => {
  // the branches of a forward on other inputs, to be reused
  const other = golden('unet.in.sample').mul(-0.5);
  const branches = new Map<string, Tensor>();
  const record: Controller = {
    name: 'record',
    transformer: (c, h) => {
      branches.set(c.path, h);
      return h;
    },
  };
  noGrad(() =>
    unet.forward(other, t, text, {
      ctx: { controllers: [record], step: 0, numSteps: 7, timestep: t, batch: plainBatch(2) },
    }),
  );
  const reuseUp = (c: { path: string }) =>
    c.path.startsWith('up_blocks') ? branches.get(c.path) : undefined;
  let attention = 0;
  const count: Controller = {
    name: 'count',
    output: (c, o) => {
      if (c.path.startsWith('up_blocks')) attention++;
      return o;
    },
  };
  const reused = run([{ name: 'reuse', reuseTransformer: reuseUp }, count]);
  assert.equal(attention, 0, 'an attention layer of a reused block ran');
  const replaced = run([{ name: 'replace', transformer: (c, h) => reuseUp(c) ?? h }, count]);
  assert.equal(attention, 6, 'the replacing run computes the three up blocks (self + cross each)');
  assert.ok(sameBits(reused, replaced));
  assert.ok(!sameBits(reused, run([])));
});

test('a reused branch of the wrong shape is refused with the block and the shapes named', () => {
  const bad: Controller = { name: 'bad', reuseTransformer: () => golden('unet.in.sample') };
  assert.throws(
    () => run([bad]),
    /down_blocks\.1\.attentions\.0: bad reused a branch of shape \[2, 4, 16, 16\], expected \[2, 64, 8, 8\]/,
  );
});
