// attnkit bench's report: the issue-6 targets are read off the right rows, and the tables show each column.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchTargets, formatSection, type Row, type Section } from '../../../src/cli/bench-report.js';
import { mse } from '../../../src/cli/bench-support.js';

function row(method: string, seconds: number, extra: Partial<Row> = {}): Row {
  return { method, seconds, samples: [seconds], peak: 0, out: '', ...extra };
}

test('targets: chunked exactness, memory and time; ToMe and agent speed-ups; ShapesEval drops', () => {
  const q = (maxAbs: number) => ({ mse: 0, relative: 0, maxAbs });
  const sections: Section[] = [
    {
      name: 'a',
      key: 'attention',
      rows: [row('softmax', 10, { peak: 800 }), row('chunked', 10.5, { peak: 100, quality: q(2e-6) })],
    },
    {
      name: 'u',
      key: 'unet64',
      rows: [row('tome', 1, { speedupVsFlash: 1.4 }), row('agent', 1, { speedupVsFlash: 1.3 })],
    },
    {
      name: 's',
      key: 'shapes',
      rows: [
        row('softmax', 1, { shapes: { accuracy: 0.8, objectAccuracy: 0.9, meanIoU: 1 } }),
        row('tome', 1, { shapes: { accuracy: 0.75, objectAccuracy: 0.9, meanIoU: 0.8 } }),
        row('caching', 1, {
          speedupVsFlash: 1.31,
          shapes: { accuracy: 0.79, objectAccuracy: 0.9, meanIoU: 0.9 },
        }),
      ],
    },
  ];
  const t = new Map(benchTargets(sections).map((x) => [x.name, x.pass]));
  assert.equal(t.get('chunked exact'), true);
  assert.equal(t.get('chunked memory'), true, '100 ≤ 800 / 8');
  assert.equal(t.get('chunked time'), true, '10.5 ≤ 1.1 × 10');
  assert.equal(t.get('ToMe 0.5 speed (64×64)'), false, '1.4 < 1.5');
  assert.equal(t.get('agent speed (64×64)'), true);
  assert.equal(t.get('tome ShapesEval drop'), false, '5 points > 3');
  assert.equal(t.get('caching ShapesEval drop'), true, '1 point');
  assert.equal(t.get('caching speed'), true);
});

test('mse: absolute, relative to the reference, max |Δ|; NaN shows up', () => {
  const r = mse(Float32Array.of(1, 2, 4), Float32Array.of(1, 2, 2));
  assert.deepEqual(r, { mse: 4 / 3, relative: 4 / 9, maxAbs: 2 });
  assert.ok(Number.isNaN(mse(Float32Array.of(Number.NaN), Float32Array.of(0)).maxAbs));
});

test('a section table has the quality columns, and ShapesEval columns only where scored', () => {
  const plain = formatSection({ name: 'x', key: 'x', rows: [row('softmax', 2, { speedup: 1 })] });
  assert.match(
    plain.split('\n')[0] as string,
    /method\s+s\/step\s+peak\s+vs softmax\s+vs flash\s+MSE\s+rel\. MSE\s+max \|Δ\|$/,
  );
  const scored = formatSection({
    name: 'y',
    key: 'shapes',
    rows: [row('tome', 2, { shapes: { accuracy: 0.5, objectAccuracy: 0.75, meanIoU: 0.6 } })],
  });
  assert.match(scored, /ShapesEval\s+objects\s+mean IoU/);
  assert.match(scored, /50\.0%\s+75\.0%\s+0\.60/);
});
