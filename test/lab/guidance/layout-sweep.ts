// Layout guidance's settings swept on development prompts (held-out indices from 100 000; never the reported
// 0–63): the loss scale, the map sides the loss reads, the steps guided and updates per step. Plain generation
// from the same seeds first. One JSON line per setting on stdout.
//
//   nice -n 10 node --import tsx test/lab/guidance/layout-sweep.ts [start] [prompts] [settings…]
//   settings by name (default all of SETTINGS), e.g. s30 s30-side8

import { BUILTIN_MODEL } from '../../../src/cli/models.js';
import { type LayoutGuidanceOptions, StableDiffusion } from '../../../src/index.js';
import { measureGuidance } from '../../../src/lab/index.js';

type Settings = Partial<Omit<LayoutGuidanceOptions, 'tokenizer' | 'prompts' | 'boxes'>>;

/** name → settings of LayoutGuidance */
const SETTINGS: Record<string, Settings> = {
  s30: {},
  's30-side8': { sides: [8] },
  's30-side16-8': { sides: [16, 8] },
  's30-side8-4': { sides: [8, 4] },
  's10-side8': { lossScale: 10, sides: [8] },
  's100-side8': { lossScale: 100, sides: [8] },
  's30-side8-steps10': { sides: [8], maxIndexStep: 10 },
  's100-side16-8': { lossScale: 100, sides: [16, 8] },
  's100-side8-steps10': { lossScale: 100, sides: [8], maxIndexStep: 10 },
  s100: { lossScale: 100 },
  's50-side8': { lossScale: 50, sides: [8] },
  's300-side8': { lossScale: 300, sides: [8] },
  's1000-side8': { lossScale: 1000, sides: [8] },
  's300-side16-8': { lossScale: 300, sides: [16, 8] },
  's300-side8-steps10': { lossScale: 300, sides: [8], maxIndexStep: 10 },
  's300-side8-4': { lossScale: 300, sides: [8, 4] },
};

const [start, prompts] = [Number(process.argv[2] ?? 100_000), Number(process.argv[3] ?? 16)];
if (start < 100_000) throw new Error('layout-sweep: development prompts only (start ≥ 100 000)');
const names = process.argv.length > 4 ? process.argv.slice(4) : ['plain', ...Object.keys(SETTINGS)];
const sd = StableDiffusion.fromPretrained(BUILTIN_MODEL);
for (const name of names) {
  const layout = SETTINGS[name];
  if (name !== 'plain' && !layout)
    throw new Error(`no setting ${name}; known: ${Object.keys(SETTINGS).join(' ')}`);
  const t0 = performance.now();
  const m = measureGuidance(sd, {
    parts: ['layout'],
    layoutMethods: [name === 'plain' ? 'plain' : 'layout'],
    start,
    layoutPrompts: prompts,
    ...(layout ? { layout } : {}),
  });
  const r = m.layout![0]!;
  const s = r.summary;
  console.log(
    JSON.stringify({
      name,
      start,
      prompts: r.prompts,
      layout,
      iou50: `${r.boxes.iou50}/${r.boxes.objects}`,
      iou50Right: r.boxes.iou50Right,
      meanIoU: r.boxes.meanIoU,
      relations: `${s.relations.correct}/${s.relations.total}`,
      colorShape: `${s.colorShape.correct}/${s.colorShape.total}`,
      secondsPerImage: r.secondsPerImage,
      minutes: (performance.now() - t0) / 60_000,
    }),
  );
}
