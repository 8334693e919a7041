// Paint-with-words' settings swept on development prompts (held-out indices from 100 000; never the reported
// 0–63): the weight w, the steps and map sides that get the bias, soft or hard regions, the shape word alone or
// the object's whole phrase. Plain generation from the same seeds first. One JSON line per setting on stdout.
//
//   nice -n 10 node --import tsx test/lab/guidance/paint-sweep.ts [start] [prompts] [settings…]
//   settings by name (default all of SETTINGS), e.g. w1 w2-phrase

import { BUILTIN_MODEL } from '../../../src/cli/models.js';
import { StableDiffusion } from '../../../src/index.js';
import { measureGuidance, type PaintSettings } from '../../../src/lab/index.js';

/** name → [w, other settings] */
const SETTINGS: Record<string, [number, PaintSettings]> = {
  'w0.4': [0.4, {}],
  w1: [1, {}],
  w2: [2, {}],
  w4: [4, {}],
  'w0.4-phrase': [0.4, { phrase: true }],
  'w1-phrase': [1, { phrase: true }],
  'w2-phrase': [2, { phrase: true }],
  'w1-hard': [1, { hardThreshold: 0.5 }],
  'w1-res16-8': [1, { resolutions: [16, 8] }],
  'w1-res8-4': [1, { resolutions: [8, 4] }],
  'w1-first-half': [1, { steps: [0, 12] }],
  'w1-first-quarter': [1, { steps: [0, 6] }],
  'w2-phrase-hard': [2, { phrase: true, hardThreshold: 0.5 }],
  'w1-out1': [1, { outsideWeight: 1 }],
  'w2-out1': [2, { outsideWeight: 1 }],
  'w1-out0.5': [1, { outsideWeight: 0.5 }],
  'w1-res16': [1, { resolutions: [16] }],
  'w2-res16-8': [2, { resolutions: [16, 8] }],
  'w1-out1-res16-8': [1, { outsideWeight: 1, resolutions: [16, 8] }],
  'w2-phrase-out1': [2, { phrase: true, outsideWeight: 1 }],
  'w2-out2': [2, { outsideWeight: 2 }],
  'w4-out2': [4, { outsideWeight: 2 }],
  'w2-out4': [2, { outsideWeight: 4 }],
  'w4-out4': [4, { outsideWeight: 4 }],
  'w1-shrink0.7': [1, { shrink: 0.7 }],
  'w1-shrink0.5': [1, { shrink: 0.5 }],
  'w2-out1-shrink0.7': [2, { outsideWeight: 1, shrink: 0.7 }],
  'w0.4-shrink0.6': [0.4, { shrink: 0.6 }],
};

const [start, prompts] = [Number(process.argv[2] ?? 100_000), Number(process.argv[3] ?? 16)];
const names = process.argv.length > 4 ? process.argv.slice(4) : ['plain', ...Object.keys(SETTINGS)];
const sd = StableDiffusion.fromPretrained(BUILTIN_MODEL);
for (const name of names) {
  const [w, paint] = SETTINGS[name] ?? [0, {}];
  if (name !== 'plain' && !SETTINGS[name])
    throw new Error(`no setting ${name}; known: ${Object.keys(SETTINGS).join(' ')}`);
  const m = measureGuidance(sd, {
    parts: ['layout'],
    layoutMethods: [name === 'plain' ? 'plain' : 'paint'],
    start,
    layoutPrompts: prompts,
    paintScale: w,
    paint,
  });
  const r = m.layout![0]!;
  const s = r.summary;
  console.log(
    JSON.stringify({
      name,
      start,
      prompts,
      iou50: `${r.boxes.iou50}/${r.boxes.objects}`,
      iou50Right: r.boxes.iou50Right,
      meanIoU: r.boxes.meanIoU,
      relations: `${s.relations.correct}/${s.relations.total}`,
      colorShape: `${s.colorShape.correct}/${s.colorShape.total}`,
      secondsPerImage: r.secondsPerImage,
    }),
  );
}
