// Score-driven guidance and conditional alignment on held-out prompts (issue 28), scored with ShapesEval, plain
// generation from the same seeds beside every method:
//
//   excite   Attend-and-Excite on the prompts' shape words: the first `excitePrompts` held-out prompts with three
//            objects (colour + shape of every object, exact object count, time per image), and the 1- and
//            2-object prompts among held-out [start, start + otherPrompts) (not worse by more than 2 points?).
//   layout   layout guidance, BoxDiff (each object's shape word → its ground-truth box) and paint-with-words (→
//            its ground-truth mask) on held-out [start, start + layoutPrompts): the share of objects whose
//            matched detected object's box has IoU ≥ 0.5 with the ground-truth box (and the share that also has
//            the right colour and shape), and relations where the prompt gives one.
//
// Each prompt's noise is seeded by its scene seed alone (seededLatents); times are wall-clock per image of the
// batches as run (quote them as ratios to plain from the same run).

import {
  AttendAndExcite,
  type AttendAndExciteOptions,
  BoxDiff,
  type BoxDiffOptions,
  type Controller,
  type LatentGuidance,
  LayoutGuidance,
  type LayoutGuidanceOptions,
  PaintWithWords,
  type PaintWithWordsOptions,
  type StableDiffusion,
} from '../../index.js';
import { Pace } from '../jobs.js';
import { type HeldOutPrompt, heldOutPrompts } from '../seeds.js';
import { type EvalSummary, evaluate, type SceneReport, summarize } from '../shapes/index.js';
import { boxIoU, groundTruthLayout } from '../shapes/layout.js';

/** The ground truth the layout methods are handed (the Shapes world's box and mask per caption object). */
export { boxIoU, groundTruthLayout, type ObjectLayout } from '../shapes/layout.js';

import { seededLatents } from '../shapes-eval.js';

/**
 * A method of the guidance measurement: plain generation, Attend-and-Excite, layout guidance, BoxDiff or
 * paint-with-words.
 */
export type GuidanceMethodName = 'plain' | 'excite' | 'layout' | 'boxdiff' | 'paint';

/**
 * Paint-with-words' settings in the measurement: the bias's steps, map sides and hard regions, and whether each
 * object's colour and size words are painted with its shape word (the whole phrase, as eDiff-I paints phrases).
 */
export interface PaintSettings
  extends Partial<Pick<PaintWithWordsOptions, 'steps' | 'resolutions' | 'hardThreshold' | 'outsideWeight'>> {
  phrase?: boolean;
  /**
   * Paint each object's box scaled by this factor about its centre instead of its mask (the model draws objects
   * larger than their masks; a smaller region may bring them to size).
   */
  shrink?: number;
}

/**
 * Options of the guidance measurement: held-out prompt ranges, sampling, each method's settings and progress
 * callbacks.
 */
export interface GuidanceMeasureOptions {
  /** First held-out prompt index (default 0; a development range such as 100 000 for tuning). */
  start?: number;
  /** Three-object prompts for Attend-and-Excite (default 200). */
  excitePrompts?: number;
  /** Held-out prompts whose 1- and 2-object ones Attend-and-Excite is checked on (default 200). */
  otherPrompts?: number;
  /** Held-out prompts for the layout methods (default 200). */
  layoutPrompts?: number;
  /** Which parts (default both). */
  parts?: readonly ('excite' | 'layout')[];
  steps?: number;
  guidanceScale?: number;
  batchSize?: number;
  /** Settings of the methods (defaults: each method's own). */
  excite?: Partial<Omit<AttendAndExciteOptions, 'tokenizer' | 'prompts' | 'subjects'>>;
  layout?: Partial<Omit<LayoutGuidanceOptions, 'tokenizer' | 'prompts' | 'boxes'>>;
  boxdiff?: Partial<Omit<BoxDiffOptions, 'tokenizer' | 'prompts' | 'boxes'>>;
  paintScale?: number;
  /** Paint-with-words' other settings (defaults: the reference's; tuned on development prompts, docs/guidance.md). */
  paint?: PaintSettings;
  /** The layout part's methods (default plain, layout, boxdiff, paint). */
  layoutMethods?: readonly GuidanceMethodName[];
  /** Time budget per run of one method on one prompt set; batches that would overrun it are not started. */
  minutesPerRun?: number;
  /** Called as a run advances: its label, prompts done and total. */
  onProgress?: (run: string, done: number, total: number) => void;
  /** Called with the measurement so far after each run (to save partial results). */
  onRun?: (m: GuidanceMeasurement) => void;
}

/** Boxes of the prompt objects against ground truth. */
export interface BoxScore {
  objects: number;
  /** Matched to a detected object whose box has IoU ≥ 0.5 with the ground-truth box. */
  iou50: number;
  /** The same, and the detected object has the right colour and shape. */
  iou50Right: number;
  meanIoU: number | null;
}

/** One method on one prompt set. */
export interface RunScore {
  method: GuidanceMethodName;
  prompts: number;
  asked: number;
  secondsPerImage: number;
  summary: EvalSummary;
  boxes: BoxScore;
  /** Scene seeds of the prompts generated. */
  seeds: number[];
}

/**
 * The guidance measurement's result: its settings and the scores of each run (Attend-and-Excite on
 * three-object and on other prompts; layout guidance, BoxDiff, paint-with-words and plain on the same
 * prompts).
 */
export interface GuidanceMeasurement {
  config: Required<Pick<GuidanceMeasureOptions, 'start' | 'steps' | 'guidanceScale' | 'batchSize'>> & {
    excite: GuidanceMeasureOptions['excite'];
    layout: GuidanceMeasureOptions['layout'];
    boxdiff: GuidanceMeasureOptions['boxdiff'];
    paintScale?: number;
    paint?: PaintSettings;
  };
  /** Attend-and-Excite: on three-object prompts, and on the one- and two-object ones. */
  excite?: { three: RunScore[]; others: RunScore[] };
  /** Layout guidance, BoxDiff, paint-with-words and plain on the same prompts. */
  layout?: RunScore[];
}

interface RunSpec {
  method: GuidanceMethodName;
  label: string;
  prompts: readonly HeldOutPrompt[];
  /** Guidance and controllers for one batch. */
  make: (batch: readonly HeldOutPrompt[]) => { guidance?: LatentGuidance[]; controllers?: Controller[] };
}

/** Generates and scores one method on one prompt set, batch by batch, within the time budget. */
function run(sd: StableDiffusion, spec: RunSpec, o: GuidanceMeasureOptions & { start: number }): RunScore {
  const [steps, guidanceScale, batchSize] = [o.steps ?? 25, o.guidanceScale ?? 5, o.batchSize ?? 16];
  const pace = new Pace(performance.now() + (o.minutesPerRun ?? Number.POSITIVE_INFINITY) * 60_000);
  const reports: SceneReport[] = [];
  const boxes: { iou: number | null; right: boolean }[] = [];
  let seconds = 0;
  for (let b = 0; b < spec.prompts.length && pace.fits(); b += batchSize) {
    const batch = spec.prompts.slice(b, b + batchSize);
    const { guidance, controllers } = spec.make(batch);
    const t0 = performance.now();
    const { images } = sd.generate({
      prompt: batch.map((p) => p.caption.text),
      latents: seededLatents(
        sd,
        batch.map((p) => p.seed),
      ),
      steps,
      guidanceScale,
      scheduler: 'ddim',
      ...(guidance ? { guidance } : {}),
      ...(controllers ? { controllers } : {}),
    });
    seconds += (performance.now() - t0) / 1000;
    batch.forEach((p, k) => {
      const report = evaluate(images.slice(0, k, k + 1), p.caption.text);
      reports.push(report);
      groundTruthLayout(p.scene, p.caption).forEach((truth, i) => {
        const o = report.objects[i];
        const d = o?.detected;
        boxes.push({ iou: d ? boxIoU(d.box, truth.pixelBox) : null, right: !!(o?.color && o.shape) });
      });
    });
    pace.tick();
    o.onProgress?.(spec.label, reports.length, spec.prompts.length);
  }
  const hit = boxes.filter((x) => (x.iou ?? 0) >= 0.5);
  const ious = boxes.flatMap((x) => (x.iou === null ? [] : [x.iou]));
  return {
    method: spec.method,
    prompts: reports.length,
    asked: spec.prompts.length,
    secondsPerImage: reports.length > 0 ? seconds / reports.length : 0,
    summary: summarize(reports),
    boxes: {
      objects: boxes.length,
      iou50: hit.length,
      iou50Right: hit.filter((x) => x.right).length,
      meanIoU: ious.length > 0 ? ious.reduce((a, v) => a + v, 0) / ious.length : null,
    },
    seeds: spec.prompts.slice(0, reports.length).map((p) => p.seed),
  };
}

/** The first `n` held-out prompts from `start` with `objects` objects (scanning forward). */
export function promptsWithObjects(n: number, start: number, objects: number): HeldOutPrompt[] {
  const out: HeldOutPrompt[] = [];
  for (let i = start; out.length < n; i += 256) {
    for (const p of heldOutPrompts(256, i)) {
      if (p.caption.objects.length === objects && out.length < n) out.push(p);
    }
    if (i - start > 100 * n + 10_000) throw new Error(`no ${n} held-out prompts with ${objects} objects`);
  }
  return out;
}

/** Runs the measurement (see the top of this file). */
export function measureGuidance(sd: StableDiffusion, opts: GuidanceMeasureOptions = {}): GuidanceMeasurement {
  const o = { ...opts, start: opts.start ?? 0 };
  const parts = opts.parts ?? ['excite', 'layout'];
  const tokenizer = sd.tokenizer;
  const texts = (b: readonly HeldOutPrompt[]) => b.map((p) => p.caption.text);
  const layouts = (b: readonly HeldOutPrompt[]) => b.map((p) => groundTruthLayout(p.scene, p.caption));
  const m: GuidanceMeasurement = {
    config: {
      start: o.start,
      steps: o.steps ?? 25,
      guidanceScale: o.guidanceScale ?? 5,
      batchSize: o.batchSize ?? 16,
      excite: opts.excite,
      layout: opts.layout,
      boxdiff: opts.boxdiff,
      ...(opts.paintScale !== undefined ? { paintScale: opts.paintScale } : {}),
      ...(opts.paint ? { paint: opts.paint } : {}),
    },
  };
  const plain: RunSpec['make'] = () => ({});
  const excite: RunSpec['make'] = (b) => ({
    guidance: [
      new AttendAndExcite({
        tokenizer,
        prompts: texts(b),
        subjects: b.map((p) => p.caption.objects.map((phrase) => phrase.shape.index)),
        ...opts.excite,
      }),
    ],
  });
  if (parts.includes('excite')) {
    const three = promptsWithObjects(opts.excitePrompts ?? 200, o.start, 3);
    const others = heldOutPrompts(opts.otherPrompts ?? 200, o.start).filter(
      (p) => p.caption.objects.length < 3,
    );
    m.excite = { three: [], others: [] };
    for (const [set, prompts] of [
      ['three', three],
      ['others', others],
    ] as const) {
      for (const [method, make] of [
        ['plain', plain],
        ['excite', excite],
      ] as const) {
        m.excite[set].push(run(sd, { method, label: `${method} (${set})`, prompts, make }, o));
        opts.onRun?.(m);
      }
    }
  }
  if (parts.includes('layout')) {
    const prompts = heldOutPrompts(opts.layoutPrompts ?? 200, o.start);
    const boxes = (b: readonly HeldOutPrompt[]) =>
      layouts(b).map((r) => r.map((x) => ({ word: x.shapeWord, box: x.box })));
    const makers: [GuidanceMethodName, RunSpec['make']][] = [
      ['plain', plain],
      [
        'layout',
        (b) => ({
          guidance: [new LayoutGuidance({ tokenizer, prompts: texts(b), boxes: boxes(b), ...opts.layout })],
        }),
      ],
      [
        'boxdiff',
        (b) => ({
          guidance: [new BoxDiff({ tokenizer, prompts: texts(b), boxes: boxes(b), ...opts.boxdiff })],
        }),
      ],
      [
        'paint',
        (b) => ({
          controllers: [
            new PaintWithWords({
              tokenizer,
              prompts: texts(b),
              words: layouts(b).map((r, k) =>
                r.flatMap((x, i) => {
                  const { scene: s, caption } = b[k] as HeldOutPrompt;
                  const f = opts.paint?.shrink;
                  const [x0, y0, x1, y1] = x.box;
                  const [cx, cy, hw, hh] = [
                    (x0 + x1) / 2,
                    (y0 + y1) / 2,
                    ((x1 - x0) * (f ?? 1)) / 2,
                    ((y1 - y0) * (f ?? 1)) / 2,
                  ];
                  const region =
                    f === undefined
                      ? { width: s.width, height: s.height, data: x.mask }
                      : ([cx - hw, cy - hh, cx + hw, cy + hh] as [number, number, number, number]);
                  const ph = caption.objects[i]!;
                  const words = opts.paint?.phrase
                    ? [ph.size, ph.color, ph.shape].flatMap((w) => (w ? [w.index] : []))
                    : [x.shapeWord];
                  return words.map((word) => ({ word, region }));
                }),
              ),
              imageSize: [(b[0] as HeldOutPrompt).scene.height, (b[0] as HeldOutPrompt).scene.width],
              alphasCumprod: sd.scheduler().alphasCumprod,
              ...(opts.paintScale !== undefined ? { scale: opts.paintScale } : {}),
              ...(opts.paint?.steps ? { steps: opts.paint.steps } : {}),
              ...(opts.paint?.resolutions ? { resolutions: opts.paint.resolutions } : {}),
              ...(opts.paint?.hardThreshold !== undefined ? { hardThreshold: opts.paint.hardThreshold } : {}),
              ...(opts.paint?.outsideWeight ? { outsideWeight: opts.paint.outsideWeight } : {}),
            }),
          ],
        }),
      ],
    ];
    m.layout = [];
    for (const [method, make] of makers) {
      if (opts.layoutMethods && !opts.layoutMethods.includes(method)) continue;
      m.layout.push(run(sd, { method, label: `${method} (layout)`, prompts, make }, o));
      opts.onRun?.(m);
    }
  }
  return m;
}

const pct = (r: { rate: number | null; correct: number; total: number }) =>
  r.rate === null ? '—' : `${(100 * r.rate).toFixed(1)}% (${r.correct}/${r.total})`;
const share = (a: number, n: number) => (n > 0 ? `${((100 * a) / n).toFixed(1)}% (${a}/${n})` : '—');

const METHOD_NAMES: Record<GuidanceMethodName, string> = {
  plain: 'plain generation',
  excite: 'Attend-and-Excite',
  layout: 'layout guidance (backward)',
  boxdiff: 'BoxDiff',
  paint: 'paint-with-words',
};

/** The measurement as markdown tables (what `attnkit measure guidance` writes into docs/guidance.md). */
export function guidanceMarkdown(m: GuidanceMeasurement): string {
  const lines: string[] = [];
  const c = m.config;
  lines.push(
    `Held-out prompts from index ${c.start}, DDIM ${c.steps} steps, guidance ${c.guidanceScale}, ${c.batchSize} prompts per batch; each image's noise seeded by its scene seed.`,
  );
  const plainTime = (rs: readonly RunScore[]) => rs.find((r) => r.method === 'plain')?.secondsPerImage ?? 0;
  if (m.excite) {
    const { three, others } = m.excite;
    lines.push('', '### Attend-and-Excite', '');
    lines.push(
      '| run | prompts | colour + shape (3 objects) | exact object count | objects colour + shape | s / image | × plain |',
    );
    lines.push('|---|---|---|---|---|---|---|');
    for (const r of three) {
      const ratio = plainTime(three) > 0 ? (r.secondsPerImage / plainTime(three)).toFixed(2) : '—';
      const s = r.summary;
      lines.push(
        `| ${METHOD_NAMES[r.method]} | ${r.prompts}/${r.asked} | ${pct(s.byObjectCount['3']?.colorShape ?? { rate: null, correct: 0, total: 0 })} | ${pct(s.count)} | ${pct(s.colorShape)} | ${r.secondsPerImage.toFixed(2)} | ${ratio} |`,
      );
    }
    lines.push(
      '',
      '| run (1- and 2-object prompts) | prompts | 1 object: colour + shape | 2 objects: colour + shape | exact count |',
    );
    lines.push('|---|---|---|---|---|');
    for (const r of others) {
      const s = r.summary;
      const by = (n: string) => pct(s.byObjectCount[n]?.colorShape ?? { rate: null, correct: 0, total: 0 });
      lines.push(
        `| ${METHOD_NAMES[r.method]} | ${r.prompts}/${r.asked} | ${by('1')} | ${by('2')} | ${pct(s.count)} |`,
      );
    }
  }
  if (m.layout) {
    lines.push('', '### Layout: each object given its ground-truth box (mask for paint-with-words)', '');
    lines.push(
      '| method | prompts | objects with box IoU ≥ 0.5 | … and right colour + shape | mean box IoU (matched) | relations | all objects colour + shape | s / image | × plain |',
    );
    lines.push('|---|---|---|---|---|---|---|---|---|');
    for (const r of m.layout) {
      const ratio = plainTime(m.layout) > 0 ? (r.secondsPerImage / plainTime(m.layout)).toFixed(2) : '—';
      const b = r.boxes;
      lines.push(
        `| ${METHOD_NAMES[r.method]} | ${r.prompts}/${r.asked} | ${share(b.iou50, b.objects)} | ${share(b.iou50Right, b.objects)} | ${b.meanIoU?.toFixed(3) ?? '—'} | ${pct(r.summary.relations)} | ${pct(r.summary.colorShape)} | ${r.secondsPerImage.toFixed(2)} | ${ratio} |`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
