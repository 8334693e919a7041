// AnimateDiff's motion modules against diffusers 0.30.0 (test/fixtures/motion-adapter/make_goldens.py): a tiny
// random MotionAdapter loads strictly by diffusers' names, and three of its modules (down, mid, up) give, within the
// goldens' 1e-4, diffusers' outputs on random frames. Then what the module is for: a zero-initialised adapter adds nothing,
// its attention is within a clip (changing one clip never changes another),
// and its layers show themselves to hooks as kind 'temporal' with the frames as tokens.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type { AttentionCall, AttentionContext, Controller } from '../../../src/attention/index.js';
import { readSafetensors } from '../../../src/io/safetensors.js';
import { MotionAdapter, sinusoidalPositions } from '../../../src/models/motion-module.js';
import { initParameters } from '../../../src/nn/init.js';
import { Tensor } from '../../../src/tensor/index.js';
import { Generator, randn } from '../../../src/tensor/random.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { assertClose } from '../../helpers/tolerance.js';

const dir = join(repoRoot, 'test/fixtures/motion-adapter');
const goldens = readSafetensors(join(dir, 'goldens.safetensors')).tensors;
const g = (k: string) => goldens.get(k) as Tensor;

test('motion adapter: loads diffusers 0.30 weights by name and matches its modules (down, mid, up)', () => {
  const adapter = MotionAdapter.fromPretrained(dir);
  assert.equal(adapter.up_blocks.at(1).motion_modules.items.length, 2);
  const cases = [
    ['down0', adapter.down_blocks.at(0).motion_modules.at(0)],
    ['mid', adapter.mid_block!.motion_modules.at(0)],
    ['up1_1', adapter.up_blocks.at(1).motion_modules.at(1)],
  ] as const;
  for (const [key, module] of cases) {
    const out = module.forward(g(`${key}.input`), 4);
    assertClose(out, g(`${key}.output`), { atol: 1e-4, rtol: 0, label: key });
    // the branch is not small: the test would see a module that did nothing
    assert.ok(
      (out
        .sub(g(`${key}.input`))
        .abs()
        .max().data[0] as number) > 0.1,
    );
  }
});

test('motion adapter: sinusoidal positions by hand; a wrong saved table or shape is refused by name', () => {
  const pe = sinusoidalPositions(3, 4).data as Float32Array;
  const w1 = 10000 ** (-2 / 4);
  assertClose(Array.from(pe.slice(8, 12)), [Math.sin(2), Math.cos(2), Math.sin(2 * w1), Math.cos(2 * w1)], {
    atol: 1e-6,
    rtol: 0,
  });
  const tensors = readSafetensors(join(dir, 'diffusion_pytorch_model.safetensors')).tensors;
  const key = 'down_blocks.0.motion_modules.0.transformer_blocks.0.pos_embed.pe';
  const bad = new Map(tensors);
  bad.set(key, (tensors.get(key) as Tensor).mul(2));
  const adapter = new MotionAdapter(MotionAdapter.fromPretrained(dir).config);
  assert.throws(() => adapter.load(bad), /pos_embed\.pe .* is not the sinusoidal table/);
  const missing = new Map(tensors);
  missing.delete('mid_block.motion_modules.0.proj_out.weight');
  assert.throws(
    () => adapter.load(missing),
    /missing weights: mid_block\.motion_modules\.0\.proj_out\.weight/,
  );
});

test('motion adapter: zero-initialised output projections add nothing', () => {
  const adapter = new MotionAdapter(MotionAdapter.fromPretrained(dir).config);
  initParameters(adapter, new Generator(1));
  adapter.zeroOutputs();
  const x = randn([8, 32, 4, 4], 2);
  assert.deepEqual([...adapter.down_blocks.at(0).motion_modules.at(0).forward(x, 4).data], [...x.data]);
});

test('motion adapter: attention runs along frames only, per clip and per position', () => {
  const module = MotionAdapter.fromPretrained(dir).down_blocks.at(0).motion_modules.at(0);
  const x = randn([8, 32, 4, 4], 3); // 2 clips of 4 frames
  const out = module.forward(x, 4);
  // change clip 1's frame 2 at position (1, 1): clip 0 is unchanged everywhere
  const data = Float32Array.from(x.data as Float32Array);
  for (let c = 0; c < 32; c++) {
    const i = ((6 * 32 + c) * 4 + 1) * 4 + 1;
    data[i] = (data[i] as number) + 1;
  }
  const y = module.forward(new Tensor(data, x.shape), 4);
  assertClose(y.slice(0, 0, 4), out.slice(0, 0, 4), { atol: 1e-6, rtol: 0 });
  assert.ok(
    (y
      .slice(0, 4, 8)
      .sub(out.slice(0, 4, 8))
      .abs()
      .max().data[0] as number) > 1e-3,
  );
});

test('motion adapter: hooks see kind temporal with the frames as tokens; map hooks get frame-to-frame maps', () => {
  const adapter = MotionAdapter.fromPretrained(dir);
  const calls: AttentionCall[] = [];
  const spy: Controller = {
    name: 'spy',
    appliesTo: (c) => {
      calls.push(c);
      return false;
    },
  };
  const maps: Tensor[] = [];
  const reader: Controller = {
    name: 'reader',
    map: (_c, p) => {
      maps.push(p);
      return p;
    },
  };
  const ctx: AttentionContext = {
    controllers: [spy, reader],
    step: 0,
    numSteps: 1,
    timestep: 1,
    batch: { guidance: ['cond', 'cond'], prompt: [0, 0], frame: [0, 1] },
  };
  const out = adapter.down_blocks.at(0).motion_modules.at(0).forward(g('down0.input'), 4, ctx);
  assertClose(out, g('down0.output'), { atol: 2e-5, rtol: 0 });
  assert.deepEqual(
    calls.map((c) => [c.kind, c.path, c.queryTokens, c.keyTokens, c.size]),
    [
      ['temporal', 'down_blocks.0.motion_modules.0.transformer_blocks.0.attn1', 4, 4, [4, 4]],
      ['temporal', 'down_blocks.0.motion_modules.0.transformer_blocks.0.attn2', 4, 4, [4, 4]],
    ],
  );
  assert.equal(calls[0]!.index, 0);
  // (B·h·w, heads, F, F): 2 clips × 16 positions, 2 heads, 4 × 4 frames; every row a distribution
  assert.deepEqual(maps[0]!.shape, [32, 2, 4, 4]);
  assertClose(maps[0]!.sum({ axes: -1 }), new Array(32 * 2 * 4).fill(1), { atol: 1e-5, rtol: 0 });
});
