// The `resnet` hook (the feature level extended to the UNet's ResNet blocks): every block is called once per
// forward with its module path, in forward order; an identity hook changes no bit; replacing a block's
// residual branch by zeros equals a model whose conv2 of that block is zero (an independent way to get h = 0).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AttentionContext, type Controller, plainBatch } from '../../src/attention/index.js';
import { ResnetBlock2D } from '../../src/models/unet-blocks.js';
import { noGrad, type Tensor } from '../../src/tensor/index.js';
import { golden, goldenUNet } from '../helpers/golden.js';

const unet = goldenUNet();
const t = golden('unet.in.timestep').item();
const sample = golden('unet.in.sample');
const text = golden('unet.in.encoder_hidden_states');

function run(controllers: Controller[], model = unet): Tensor {
  const ctx: AttentionContext = { controllers, step: 3, numSteps: 7, timestep: t, batch: plainBatch(2) };
  return noGrad(() => model.forward(sample, t, text, ctx));
}

function sameBits(a: Tensor, b: Tensor): boolean {
  return a.size === b.size && a.data.every((v, i) => Object.is(v, b.data[i]));
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
