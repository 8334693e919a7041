// The caches on the tiny golden pipeline. DiTFastAttn-style attention caching: threshold 0 reproduces the
// uncached generation bit for bit; a plan skips exactly the layers and steps it names; CFG sharing gives both
// branches one attention; calibration records a plan that the next run follows. Block caching of the attention
// blocks: the same for whole Transformer2DModels, checked against a run that computes every block and then
// replaces its branch by the one recorded at its last computed step.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type AttentionFunction, type Controller, flashAttention } from '../../../src/attention/index.js';
import { AttentionCaching } from '../../../src/methods/application/attention-caching.js';
import { BlockCaching } from '../../../src/methods/application/block-caching.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import type { Tensor } from '../../../src/tensor/index.js';
import { goldenDir } from '../../helpers/fixtures.js';
import { sameBits } from '../../helpers/tolerance.js';

const sd = StableDiffusion.fromPretrained(goldenDir());
const STEPS = 4;

function generate(controllers: Controller[]): Tensor {
  return sd.generate({ prompt: 'a red circle', steps: STEPS, seed: 3, guidanceScale: 5, controllers })
    .latents;
}

/** flash attention that counts its calls. */
function counting(): AttentionFunction & { calls: number } {
  const f = { ...flashAttention, name: 'counted', calls: 0 };
  f.runPacked = (q, k, v, h, s) => {
    f.calls++;
    return flashAttention.runPacked?.(q, k, v, h, s) as Tensor;
  };
  return f;
}

const reference = generate([]);

test('threshold 0: calibration and the cached run reproduce the uncached generation bit for bit', () => {
  const cache = new AttentionCaching({ threshold: 0 });
  assert.ok(
    sameBits(
      cache.calibrate(() => generate([cache])),
      reference,
    ),
  );
  assert.ok(sameBits(generate([cache]), reference));
  assert.equal(cache.table.size, 12);
  for (const row of cache.table.values()) assert.deepEqual(row, new Array(STEPS).fill('full_attn'));
});

test('a plan skips exactly the layers and steps it names (output_share after step 0 on self-attention)', () => {
  const fn = counting();
  const cache = new AttentionCaching({
    fn,
    plan: (c) => (c.kind === 'self' && c.step > 0 ? 'output_share' : undefined),
  });
  const out = generate([cache]);
  assert.equal(cache.counts.get('output_share'), 6 * (STEPS - 1));
  assert.equal(cache.counts.get('full_attn'), 6 + 6 * STEPS);
  assert.equal(fn.calls, 6 + 6 * STEPS, 'the attention function ran only where the plan computes');
  assert.ok(!sameBits(out, reference));
  // restricted by appliesTo: the cross-attention layers are not its to cache
  const selfOnly = new AttentionCaching({ plan: () => 'output_share', appliesTo: (c) => c.kind === 'self' });
  generate([selfOnly]);
  assert.equal(selfOnly.counts.get('output_share'), 6 * (STEPS - 1));
  assert.equal(selfOnly.counts.get('full_attn'), 6, 'only the first step computes');
});

test('cfg_attn_share: the unconditional rows get the conditional rows’ attention', () => {
  const outputs: Tensor[] = [];
  const spy: Controller = {
    name: 'spy',
    appliesTo: (c) => c.path === 'mid_block.attentions.0.transformer_blocks.0.attn1',
    output: (_c, o) => {
      outputs.push(o);
      return o;
    },
  };
  const cache = new AttentionCaching({ plan: () => 'full_attn+cfg_attn_share' });
  generate([cache, spy]);
  assert.equal(outputs.length, STEPS);
  for (const o of outputs) {
    const [u, c] = o.split(2, 0) as [Tensor, Tensor];
    assert.ok(sameBits(u, c));
  }
});

test('residual_window_attn runs on grid layers and falls back to full where it cannot', () => {
  const cache = new AttentionCaching({
    windowSize: 4,
    plan: (c) => (c.step > 0 ? 'residual_window_attn' : undefined),
  });
  const out = generate([cache]);
  assert.equal(
    cache.counts.get('residual_window_attn'),
    6 * (STEPS - 1),
    'self-attention layers after step 0',
  );
  assert.ok(out.data.every(Number.isFinite));
});

test('calibration with a loose threshold records shortcuts that the next run follows', () => {
  const cache = new AttentionCaching({ threshold: 10 });
  cache.calibrate(() => generate([cache]));
  const planned = new Map<string, number>();
  for (const row of cache.table.values()) for (const m of row) planned.set(m, (planned.get(m) ?? 0) + 1);
  assert.equal(planned.get('output_share'), 12 * (STEPS - 1), 'every layer reuses after its first step');
  generate([cache]);
  assert.deepEqual(cache.counts, planned);
});

test('output_share skips the whole layer: no projections run, the last output is reused bit for bit', () => {
  const cache = new AttentionCaching({
    plan: (c) => (c.kind === 'self' && c.step > 0 ? 'output_share' : undefined),
  });
  let projected = 0;
  const outputs: Tensor[] = [];
  const watch: Controller = {
    name: 'watch',
    appliesTo: (c) => c.kind === 'self' && c.index === 0,
    weights: (_c, w) => {
      projected++;
      return w;
    },
    output: (_c, out) => {
      outputs.push(out);
      return out;
    },
  };
  generate([cache, watch]);
  assert.equal(projected, 1, 'the weight level (before the projections) ran at step 0 only');
  assert.equal(outputs.length, STEPS, 'output hooks still run on reused outputs');
  for (const o of outputs.slice(1)) assert.ok(sameBits(o, outputs[0] as Tensor));
});

test('a reuse hook with the wrong shape is refused with the shapes named', () => {
  const bad: Controller = {
    name: 'bad',
    reuse: (c) => (c.kind === 'self' ? (sd.encodePrompt(['']) as Tensor) : undefined),
  };
  assert.throws(
    () => generate([bad]),
    /bad reused an output of shape \[1, \d+, \d+\], expected \[2, \d+, \d+\]/,
  );
});

// tiny-sd-a has 6 attention blocks (Transformer2DModels), all at 8×8
const BLOCKS = 6;

/** Computes every block, and replaces its branch by the one of its last computed step where `reuse` says. */
function replacing(reuse: (path: string, step: number) => boolean): Controller {
  const last = new Map<string, Tensor>();
  return {
    name: 'replacing',
    transformer: (c, h) => {
      if (c.step > 0 && reuse(c.path, c.step)) return last.get(c.path) as Tensor;
      last.set(c.path, h);
      return h;
    },
  };
}

test('block caching, threshold 0: calibration and the cached run reproduce the uncached generation', () => {
  const cache = new BlockCaching({ threshold: 0 });
  assert.ok(
    sameBits(
      cache.calibrate(() => generate([cache])),
      reference,
    ),
  );
  assert.ok(sameBits(generate([cache]), reference));
  assert.equal(cache.table.size, BLOCKS);
  for (const row of cache.table.values()) assert.deepEqual(row, new Array(STEPS).fill(false));
  assert.deepEqual(cache.counts, { computed: BLOCKS * STEPS, reused: 0 });
});

test('block caching with a plan skips the blocks it names and equals computing then replacing', () => {
  let attention = 0;
  const count: Controller = {
    name: 'count',
    output: (c, out) => {
      if (c.place !== 'text') attention++;
      return out;
    },
  };
  const plan = (path: string, step: number) => step % 2 === 1 && path.startsWith('up_blocks');
  const cache = new BlockCaching({ plan: (c) => plan(c.path, c.step) });
  const cached = generate([cache, count]);
  const reused = 3 * (STEPS / 2);
  assert.deepEqual(cache.counts, { computed: BLOCKS * STEPS - reused, reused });
  // every block holds a self- and a cross-attention layer
  assert.equal(attention, 2 * (BLOCKS * STEPS - reused), 'attention ran only in computed blocks');
  assert.ok(sameBits(cached, generate([replacing(plan)])));
  assert.ok(!sameBits(cached, reference));
});

test('block caching calibration records the reuses it made, and the next run follows them bit for bit', () => {
  const cache = new BlockCaching({ threshold: 0.5 });
  const calibrated = cache.calibrate(() => generate([cache]));
  const planned = [...cache.table.values()].flat();
  const reused = planned.filter(Boolean).length;
  assert.ok(reused > 0 && reused < BLOCKS * (STEPS - 1), `a mixed plan expected, got ${reused} reuses`);
  assert.ok(
    [...cache.table.values()].every((row) => row[0] === false),
    'step 0 always computes',
  );
  assert.ok(sameBits(generate([cache]), calibrated));
  assert.deepEqual(cache.counts, { computed: BLOCKS * STEPS - reused, reused });
  const table = new Map(cache.table);
  assert.ok(sameBits(calibrated, generate([replacing((p, s) => table.get(p)?.[s] === true)])));
});
