// attnkit measure guidance — issue 28's measurement: Attend-and-Excite on three-object held-out prompts (and the
// 1- and 2-object ones), layout guidance, BoxDiff and paint-with-words with each object's ground-truth box or
// mask, plain generation from the same seeds beside each (lab/measure/guidance.ts).

import type { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { type Progress, progressBar } from '../io/progress.js';
import { type GuidanceMethodName, guidanceMarkdown, measureGuidance } from '../lab/measure/guidance.js';
import { StableDiffusion } from '../pipelines/stable-diffusion.js';
import { float, floatIn, int, intIn } from './args.js';
import { BATCH, COUNT } from './limits.js';
import { resolveModel } from './models.js';
import {
  addModelOption,
  addRunOptions,
  addSamplingOptions,
  log,
  parseModel,
  parseSampling,
  startRun,
} from './options.js';

interface MeasureGuidanceFlags {
  start: number;
  excitePrompts: number;
  otherPrompts: number;
  layoutPrompts: number;
  parts: string;
  batch: number;
  exciteRes?: number;
  exciteScale?: number;
  exciteRefine: boolean;
  layoutScale?: number;
  layoutSides?: string;
  layoutSteps?: number;
  layoutMethods?: string;
  exciteNormalizeEot?: boolean;
  paintScale?: number;
  minutesPerRun?: number;
  out?: string;
  markdown?: string;
}

/** Adds `guidance` to the `measure` command. */
export function registerMeasureGuidance(measure: Command): void {
  const cmd = measure
    .command('guidance')
    .description(
      'issue 28: Attend-and-Excite, layout guidance, BoxDiff and paint-with-words against plain generation',
    );
  addModelOption(cmd)
    .option(
      '--start <n>',
      'first held-out prompt index (tune on a development range, e.g. 100000)',
      int('--start'),
      0,
    )
    .option(
      '--excite-prompts <n>',
      'three-object prompts for Attend-and-Excite',
      intIn('--excite-prompts', COUNT),
      200,
    )
    .option(
      '--other-prompts <n>',
      'held-out prompts whose 1- and 2-object ones are checked',
      intIn('--other-prompts', COUNT),
      200,
    )
    .option(
      '--layout-prompts <n>',
      'held-out prompts for the layout methods',
      intIn('--layout-prompts', COUNT),
      200,
    )
    .option('--parts <list>', 'excite,layout', 'excite,layout');
  addSamplingOptions(cmd, { seed: false, steps: 25, guidance: 5 })
    .option('--batch <n>', 'prompts per generate call', intIn('--batch', BATCH), 16)
    .option(
      '--excite-res <side>',
      "Attend-and-Excite's map side (default the latent side / 4)",
      intIn('--excite-res', { min: 2, max: 4096 }),
    )
    .option(
      '--excite-scale <f>',
      "Attend-and-Excite's scale factor (default 20)",
      floatIn('--excite-scale', { min: 0, max: 10_000 }),
    )
    .option('--no-excite-refine', "skip Attend-and-Excite's iterative refinement")
    .option('--excite-normalize-eot', "Attend-and-Excite's softmax without eos and padding (normalize_eot)")
    .option(
      '--layout-scale <f>',
      "layout guidance's loss scale (default 30)",
      floatIn('--layout-scale', { min: 0, max: 10_000 }),
    )
    .option(
      '--layout-sides <list>',
      "the map sides layout guidance's loss reads, e.g. 8 (default the mid block and the up path at the latent side / 4)",
    )
    .option(
      '--layout-steps <n>',
      'layout guidance guides steps [0, n) (default 10 of 51, scaled)',
      intIn('--layout-steps', { min: 0, max: 10_000 }),
    )
    .option('--layout-methods <list>', "the layout part's methods: plain,layout,boxdiff,paint (default all)")
    .option(
      '--paint-scale <w>',
      "paint-with-words' w (default 0.4)",
      floatIn('--paint-scale', { min: 0, max: 100 }),
    )
    .option(
      '--minutes-per-run <m>',
      'time budget of each method on each prompt set',
      float('--minutes-per-run'),
    )
    .option('-o, --out <file>', 'write the results as JSON (after every run)')
    .option('--markdown <file>', 'write the markdown tables');
  addRunOptions(cmd).action((f: MeasureGuidanceFlags) => {
    const run = startRun(f, { '--out': f.out, '--markdown': f.markdown });
    const { steps, guidance } = parseSampling(f);
    const parts = f.parts.split(',').map((p) => p.trim());
    for (const p of parts)
      if (p !== 'excite' && p !== 'layout') throw new Error(`--parts: excite or layout, got '${p}'`);
    const sides = f.layoutSides?.split(',').map((v) => Number(v.trim()));
    if (sides?.some((v) => !Number.isInteger(v) || v < 1))
      throw new Error(`--layout-sides: map sides as integers, e.g. 8 or 16,8; got '${f.layoutSides}'`);
    const methods = f.layoutMethods?.split(',').map((v) => v.trim());
    for (const m of methods ?? [])
      if (!['plain', 'layout', 'boxdiff', 'paint'].includes(m))
        throw new Error(`--layout-methods: plain, layout, boxdiff or paint, got '${m}'`);
    const model = resolveModel(parseModel(f), log);
    const sd = StableDiffusion.fromPretrained(model);
    let bar: { name: string; bar: Progress } | undefined;
    const save = (m: object) => {
      if (f.out) writeFileAtomic(f.out, `${JSON.stringify({ model, ...m }, null, 2)}\n`);
    };
    const results = measureGuidance(sd, {
      start: f.start,
      excitePrompts: f.excitePrompts,
      otherPrompts: f.otherPrompts,
      layoutPrompts: f.layoutPrompts,
      parts: parts as ('excite' | 'layout')[],
      steps,
      guidanceScale: guidance,
      batchSize: f.batch,
      excite: {
        ...(f.exciteRes ? { attentionRes: f.exciteRes } : {}),
        ...(f.exciteScale !== undefined ? { scaleFactor: f.exciteScale } : {}),
        ...(f.exciteRefine ? {} : { thresholds: new Map<number, number>() }),
        ...(f.exciteNormalizeEot ? { normalizeEot: true } : {}),
      },
      layout: {
        ...(f.layoutScale !== undefined ? { lossScale: f.layoutScale } : {}),
        ...(sides ? { sides } : {}),
        ...(f.layoutSteps !== undefined ? { maxIndexStep: f.layoutSteps } : {}),
      },
      ...(methods ? { layoutMethods: methods as GuidanceMethodName[] } : {}),
      ...(f.paintScale !== undefined ? { paintScale: f.paintScale } : {}),
      ...(f.minutesPerRun !== undefined ? { minutesPerRun: f.minutesPerRun } : {}),
      onProgress: (name, done, total) => {
        if (bar?.name !== name) {
          bar?.bar.stop();
          bar = { name, bar: progressBar(name.padEnd(20), total, { quiet: run.quiet }) };
        }
        bar.bar.update(done);
      },
      onRun: save,
    });
    bar?.bar.stop();
    const md = guidanceMarkdown(results);
    process.stdout.write(`${md}\n`);
    save(results);
    if (f.markdown) {
      writeFileAtomic(f.markdown, md);
      log(`wrote ${f.markdown}`);
    }
  });
}
