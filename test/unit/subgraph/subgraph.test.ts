// Subgraph sessions (issue 32): hook-free UNet modules run as cached onnxruntime sessions traced once. Checked
// against the pure eager path (ATTNKIT_SUBGRAPHS off) on the tiny-sd-a model: no hooks, a store on the 16×16
// cross-attention layers only, Prompt-to-Prompt on every layer; the cache tells shapes apart, a hook added
// after a cached run takes effect at once, replaced weights are seen, and autograd keeps the eager path.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Controller } from '../../../src/attention/index.js';
import {
  clearSubgraphCache,
  setSubgraphBudget,
  setSubgraphs,
  subgraphStats,
} from '../../../src/kernels/subgraph.js';
import { AttentionReplace } from '../../../src/methods/map/attention-replace.js';
import { AttentionStore } from '../../../src/methods/map/attention-store.js';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';
import { backward, enableGrad, noGrad, type Tensor } from '../../../src/tensor/index.js';
import { Generator } from '../../../src/tensor/random.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { goldenUNet } from '../../helpers/golden.js';
import { assertClose, sameBits } from '../../helpers/tolerance.js';

const TOL = { atol: 1e-5, rtol: 0 };
const unet = goldenUNet();

setSubgraphs(true); // off by default (see src/kernels/subgraph.ts)

/** Runs `fn` with subgraph sessions on or off (off: the pure eager path), restoring them on afterwards. */
function withSubgraphs<T>(on: boolean, fn: () => T): T {
  setSubgraphs(on);
  try {
    return fn();
  } finally {
    setSubgraphs(true);
  }
}

function inputs(size: number, seed = 1) {
  const g = new Generator(seed);
  return { x: g.randn([2, 4, size, size]), context: g.randn([2, 7, 32]) };
}

function forward(size: number, controllers: Controller[] = [], t = 500): Tensor {
  const { x, context } = inputs(size);
  const ctx = {
    controllers,
    step: 0,
    numSteps: 1,
    timestep: t,
    batch: { guidance: ['cond', 'cond'] as const, prompt: [0, 1] },
  };
  return noGrad(() => unet.forward(x, t, context, { ctx }));
}

test('no hooks: the whole UNet runs as one cached session, within 1e-5 of the pure eager path', () => {
  clearSubgraphCache();
  const eager = withSubgraphs(false, () => forward(16));
  const built = subgraphStats().built;
  const first = forward(16); // traced: eager under the trace
  const cached = forward(16);
  assert.equal(subgraphStats().built, built + 1, 'one session: the whole UNet');
  assertClose(cached, eager, TOL);
  assert.ok(!sameBits(cached, eager), 'the cached session ran (its fusions round differently)');
  assert.ok(sameBits(first, cached), 'the tracing call returns the session’s bits too');
});

test('the cache key tells input shapes apart: two sizes in one process, each within 1e-5 of eager', () => {
  const eager = new Map([16, 32].map((size) => [size, withSubgraphs(false, () => forward(size))]));
  clearSubgraphCache();
  const built = subgraphStats().built;
  for (let round = 0; round < 2; round++) {
    for (const size of [16, 32]) {
      const out = forward(size);
      assert.deepEqual(out.shape, [2, 4, size, size]);
      assertClose(out, eager.get(size) as Tensor, TOL);
    }
  }
  assert.equal(subgraphStats().built, built + 2);
});

test('a store on the 16×16 cross-attention layers only: same output and maps as pure eager', () => {
  const run = () => {
    const store = new AttentionStore({
      kinds: ['cross'],
      guidance: ['cond'],
      layers: (c) => c.size?.[0] === 16,
    });
    const out = forward(32, [store]);
    return { out, maps: store.maps() };
  };
  const eager = withSubgraphs(false, run);
  clearSubgraphCache();
  run(); // traces the hook-free modules
  const sub = run();
  // 32×32 latents: down_blocks.1 (2), the mid block (1) and up_blocks.0 (3) attend at 16×16
  assert.equal(sub.maps.length, 6);
  assert.deepEqual(
    sub.maps.map((m) => m.path),
    eager.maps.map((m) => m.path),
  );
  sub.maps.forEach((m, i) => {
    assertClose(m.map, (eager.maps[i] as (typeof eager.maps)[number]).map, { atol: 1e-6, rtol: 0 });
  });
  assertClose(sub.out, eager.out, TOL);
  assert.ok(
    subgraphStats().sessions > 1,
    'the hook-free blocks (resnets, mid attention, samplers) are subgraphs',
  );
});

test('Prompt-to-Prompt on every layer (a guided batch, 16 text tokens): within 1e-5 of pure eager', () => {
  const tokenizer = CLIPTokenizer.fromPretrained(goldenDir(), { subfolder: 'tokenizer' });
  const prompts = ['a red circle', 'a blue circle'];
  const g = new Generator(3);
  const x = g.randn([4, 4, 16, 16]);
  const context = g.randn([4, tokenizer.modelMaxLength, 32]);
  const run = () => {
    const p2p = new AttentionReplace({ tokenizer, prompts, crossReplaceSteps: 1, selfReplaceSteps: 1 });
    const ctx = {
      controllers: [p2p],
      step: 0,
      numSteps: 1,
      timestep: 700,
      batch: { guidance: ['uncond', 'uncond', 'cond', 'cond'] as const, prompt: [0, 1, 0, 1] },
    };
    return noGrad(() => unet.forward(x, 700, context, { ctx }));
  };
  const eager = withSubgraphs(false, run);
  clearSubgraphCache();
  for (let i = 0; i < 3; i++) assertClose(run(), eager, TOL);
  assert.ok(subgraphStats().sessions > 0, 'resnets, samplers and feed-forwards as subgraphs');
});

test('a hook added after a cached run applies at once (attention map hook, then a resnet hook)', () => {
  clearSubgraphCache();
  const plain = forward(16);
  forward(16); // cached now
  // uniform maps on one cross-attention layer
  const uniform: Controller = {
    name: 'uniform',
    appliesTo: (c) => c.path === 'mid_block.attentions.0.transformer_blocks.0.attn2',
    map: (_c, p) => p.mul(0).add(1 / (p.shape[3] as number)),
  };
  const eagerUniform = withSubgraphs(false, () => forward(16, [uniform]));
  const hooked = forward(16, [uniform]);
  assertClose(hooked, eagerUniform, TOL);
  assert.ok(!closeTo(hooked, plain), 'the hook changed the output');
  // a resnet hook on one block: its branch zeroed
  const cut: Controller = {
    name: 'cut',
    resnet: (c, h) => (c.path === 'up_blocks.1.resnets.2' ? h.mul(0) : h),
  };
  const eagerCut = withSubgraphs(false, () => forward(16, [cut]));
  const cutOut = forward(16, [cut]);
  assertClose(cutOut, eagerCut, TOL);
  assert.ok(!closeTo(cutOut, plain));
  // and without hooks again: the cached whole-UNet session
  assertClose(forward(16), plain, TOL);
});

test('a hook that applies only at some steps: eager at those, cached at the others', () => {
  clearSubgraphCache();
  const late: Controller = {
    name: 'late',
    appliesTo: (c) => c.step >= 1 && c.kind === 'cross',
    map: (_c, p) => p.mul(0).add(1 / (p.shape[3] as number)),
  };
  const at = (step: number) => {
    const { x, context } = inputs(16);
    const ctx = {
      controllers: [late],
      step,
      numSteps: 2,
      timestep: 500,
      batch: { guidance: [], prompt: [] },
    };
    return noGrad(() => unet.forward(x, 500, context, { ctx }));
  };
  const eager = withSubgraphs(false, () => [at(0), at(1)]);
  for (let round = 0; round < 2; round++) {
    assertClose(at(0), eager[0] as Tensor, TOL);
    assertClose(at(1), eager[1] as Tensor, TOL);
  }
  assert.ok(!closeTo(eager[0] as Tensor, eager[1] as Tensor));
});

test('a replaced weight (a merged LoRA, a load) rebuilds the session; a zero budget runs eagerly', () => {
  clearSubgraphCache();
  forward(16);
  const p = unet.conv_out.weight;
  const original = p.value;
  try {
    p.value = original.mul(2);
    const eager = withSubgraphs(false, () => forward(16));
    forward(16);
    assertClose(forward(16), eager, TOL);
  } finally {
    p.value = original;
  }
  setSubgraphBudget(0);
  try {
    const before = subgraphStats();
    const eager = withSubgraphs(false, () => forward(16));
    setSubgraphBudget(0);
    assert.ok(sameBits(forward(16), eager), 'nothing fits: the pure eager path');
    assert.equal(subgraphStats().built, before.built);
    assert.ok(subgraphStats().refused > before.refused);
  } finally {
    setSubgraphBudget(4 * 2 ** 30);
  }
});

test('a full budget refuses new sessions rather than evict ones still in use (no rebuild thrash)', () => {
  clearSubgraphCache();
  forward(16); // the whole UNet's session
  const whole = subgraphStats();
  const cut: Controller = { name: 'cut', resnet: (_c, h) => h };
  const eagerCut = withSubgraphs(false, () => forward(16, [cut]));
  setSubgraphBudget(whole.bytes); // room for the whole UNet only
  try {
    forward(16); // keeps it in use
    for (let i = 0; i < 2; i++) assertClose(forward(16, [cut]), eagerCut, TOL);
    const after = subgraphStats();
    assert.ok(after.refused > whole.refused, 'module sessions refused');
    assert.equal(after.evicted, whole.evicted, 'the whole UNet was not evicted');
    assert.equal(after.sessions, 1);
  } finally {
    setSubgraphBudget(4 * 2 ** 30);
  }
});

test('autograd keeps the eager path: gradients bit for bit with subgraphs on and off', () => {
  const grads = () => {
    const { x, context } = inputs(16, 7);
    const w = unet.conv_in.weight;
    const saved = w.value;
    const leaf = saved.detach().requireGrad();
    w.value = leaf;
    const xs = x.detach().requireGrad();
    try {
      enableGrad(() => {
        const y = unet.forward(xs, 300, context);
        backward(y.mul(y).mean());
      });
      return [leaf.grad as Tensor, xs.grad as Tensor];
    } finally {
      w.value = saved;
    }
  };
  const eager = withSubgraphs(false, grads);
  clearSubgraphCache();
  const before = subgraphStats().built;
  const sub = grads();
  assert.equal(subgraphStats().built, before, 'no session traced under autograd');
  sub.forEach((g, i) => {
    assert.ok(sameBits(g, eager[i] as Tensor));
  });
});

function closeTo(a: Tensor, b: Tensor): boolean {
  let m = 0;
  for (let i = 0; i < a.size; i++) m = Math.max(m, Math.abs((a.data[i] as number) - (b.data[i] as number)));
  return m <= 1e-4;
}
