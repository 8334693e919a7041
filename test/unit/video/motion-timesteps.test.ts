// The motion training's timestep draw: uniform over [0, T) (AnimateDiff's), or a share of clips drawn from the
// noisier half [T/2, T), where a clip's layout and motion are decided. Counted over many draws against the
// mixture's own rate: P(t ≥ T/2) = f + (1 − f)/2.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Generator } from '../../../src/tensor/random.js';
import { drawTimestep } from '../../../src/train/motion.js';

const share = (f: number, n = 4000) => {
  const gen = new Generator(3);
  let high = 0;
  for (let i = 0; i < n; i++) {
    const t = drawTimestep(gen, 1000, f);
    assert.ok(Number.isInteger(t) && t >= 0 && t < 1000, `t = ${t}`);
    if (t >= 500) high++;
  }
  return high / n;
};

test('drawTimestep: the share of timesteps in the noisier half is f + (1 − f)/2', () => {
  assert.equal(share(1), 1);
  assert.ok(Math.abs(share(0) - 0.5) < 0.03, `uniform: ${share(0)}`);
  assert.ok(Math.abs(share(0.5) - 0.75) < 0.03, `f = 0.5: ${share(0.5)}`);
  assert.throws(() => drawTimestep(new Generator(0), 1000, 1.5), /highNoise must be in \[0, 1\]/);
});
