// generalizeTraces (src/tensor/symbolic-axes.ts): two traces of one forward become one graph whose shape
// values are computed from the inputs' dims. Checked by running the graph at a third size against the eager
// forward (exact: the same kernels run), and by the errors for what cannot be generalised.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildModel, type GraphSpec } from '../../../src/kernels/graph.js';
import { createSession, runSession } from '../../../src/kernels/ort.js';
import { GraphTrace, interpolate, Tensor, withTrace } from '../../../src/tensor/index.js';
import { type AxisSizes, generalizeTraces } from '../../../src/tensor/symbolic-axes.js';
import { uniform } from '../../helpers/random.js';
import { assertClose } from '../../helpers/tolerance.js';

const EXACT = { atol: 0, rtol: 0 };

/** Traces `f` on x of shape (batch, 3, height, width), the input declared with those axis names. */
function traceAt(f: (x: Tensor) => Tensor, at: Readonly<Record<string, number>>): GraphSpec {
  const x = uniform([at.batch as number, 3, at.height as number, at.width as number], 7);
  const trace = new GraphTrace();
  trace.input('x', x, ['batch', 3, 'height', 'width']);
  const y = withTrace(trace, () => f(x));
  return trace.graph([{ name: 'y', tensor: y }]);
}

const SIZES: AxisSizes = {
  first: { batch: 1, height: 2, width: 2 },
  second: { batch: 2, height: 6, width: 10 },
};

function generalize(f: (x: Tensor) => Tensor, sizes = SIZES): GraphSpec {
  return generalizeTraces(traceAt(f, sizes.first), traceAt(f, sizes.second), sizes);
}

function runGraph(g: GraphSpec, x: Tensor): Tensor {
  const [y] = runSession(createSession(buildModel(g)), { x: x.ort() }, ['y']);
  assert.ok(y);
  return Tensor.fromOrt(y);
}

test('reshape, permute, split, expand, slice and resize shapes are computed in the graph', () => {
  // the head split and merge of attention, a token reshape, a 2× upsample and a crop, all size-dependent
  const f = (x: Tensor) => {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    const tokens = x.permute([0, 2, 3, 1]).reshape([b, h * w, c]); // (B, HW, C)
    const heads = tokens.reshape([b * h, w, c]).reshape([b, h * w * c]); // merges and splits of dynamic dims
    const back = heads.reshape([b, h, w, c]).permute([0, 3, 1, 2]); // (B, C, H, W)
    const [a, rest] = back.split([1, 2], 1) as [Tensor, Tensor];
    const up = interpolate(a.expand([b, 2, h, w]).add(rest), { scale: 2 }); // (B, 2, 2H, 2W)
    return up.slice(2, 1).slice(3, 0, w); // (B, 2, 2H − 1, W)
  };
  const g = generalize(f);
  // 2H − 1 is no product of the axes: that output dim gets a name of its own
  assert.deepEqual(g.outputs[0]?.dims, ['batch', 2, 'y_dim2', 'width']);
  for (const shape of [
    [3, 3, 4, 6],
    [1, 3, 8, 2],
  ]) {
    const x = uniform(shape, 11);
    assertClose(runGraph(g, x), f(x), EXACT);
  }
});

test('a constant built from a size is refused, naming it and its node', () => {
  const f = (x: Tensor) => x.add(Tensor.zeros(x.shape));
  assert.throws(
    () => generalize(f),
    /constant 'const_\d+' \(input 1 of Add_0\) depends on the input sizes but is not a shape/,
  );
});

test('a forward that takes another path at another size is refused', () => {
  const f = (x: Tensor) => (x.shape[0] === 1 ? x.mul(2) : x.add(1));
  assert.throws(() => generalize(f), /the two traces differ at node 0 \(Mul_0 vs Add_0\)/);
});

test('a shape value that is not a product of the axes ((H + 1)·W) is refused', () => {
  const f = (x: Tensor) => {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    return x.pad([0, 0, 0, 0, 0, 0, 1, 0]).reshape([b, c, (h + 1) * w]);
  };
  assert.throws(() => generalize(f), /is 6 in the first trace and 70 in the second, not a product/);
});

test('each varying axis must grow by a prime of its own', () => {
  const f = (x: Tensor) => x.mul(2);
  const sizes = { first: { batch: 1, height: 2, width: 2 }, second: { batch: 2, height: 8, width: 4 } };
  assert.throws(() => generalize(f, sizes), /axis 'height' grows 2 → 8; each axis must grow by a prime/);
  const shared = { first: { batch: 1, height: 2, width: 2 }, second: { batch: 2, height: 4, width: 6 } };
  assert.throws(() => generalize(f, shared), /axis 'height' grows 2 → 4/);
});

test('the trace leaves out nodes and constants the outputs do not depend on', () => {
  const x = Tensor.from([1, 2, 3]);
  const trace = new GraphTrace();
  trace.input('x', x);
  const y = withTrace(trace, () => {
    x.mul(Tensor.from([5, 5, 5])); // unused
    return x.add(1);
  });
  const g = trace.graph([{ name: 'y', tensor: y }]);
  assert.deepEqual(
    g.nodes.map((n) => n.op),
    ['Add', 'Identity'],
  );
  assert.equal(g.initializers?.length, 1);
});
