// attnkit measure composition — issue 33's measurements: Object-Shape Variations on held-out one- and two-object
// scenes (plain proxy regeneration beside it) and TF-ICON pasting rendered objects into rendered scenes
// (cut-and-paste + SDEdit beside it); lab/measure/shape-variations.ts and lab/measure/tf-icon.ts. Writes JSON.

import type { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { progressBar } from '../io/progress.js';
import { measureShapeVariations } from '../lab/measure/shape-variations.js';
import { measureTFIcon } from '../lab/measure/tf-icon.js';
import { StableDiffusion } from '../pipelines/stable-diffusion.js';
import { int, intIn } from './args.js';
import { COUNT } from './limits.js';
import { resolveModel } from './models.js';
import {
  addModelOption,
  addRunOptions,
  addSamplingOptions,
  log,
  numberFlag,
  parseModel,
  parseSampling,
  requiredString,
  startRun,
  stringFlag,
} from './options.js';

/** Adds `composition` to the `measure` command. */
export function registerMeasureComposition(measure: Command): void {
  const cmd = measure
    .command('composition')
    .description('issue 33: shape variations and TF-ICON on held-out Shapes scenes, with their baselines');
  addModelOption(cmd)
    .option(
      '--start <n>',
      'first held-out index (tune on a development range, e.g. 100000)',
      int('--start'),
      0,
    )
    .option('--scenes <n>', 'scenes for shape variations (0: skip)', int('--scenes'), 50)
    .option('--proxies <n>', 'proxies per scene', intIn('--proxies', COUNT), 3)
    .option('--cases <n>', 'TF-ICON cases (0: skip)', int('--cases'), 50)
    .option('--out <file>', 'JSON results', 'composition.json');
  addSamplingOptions(cmd, { steps: 25, guidance: 5, seed: false });
  addRunOptions(cmd).action((f: object) => {
    const out = requiredString(f, 'out');
    const run = startRun(f, { '--out': out });
    const sd = StableDiffusion.fromPretrained(resolveModel(parseModel(f), log));
    const { steps, guidance } = parseSampling(f);
    const start = numberFlag(f, 'start') ?? 0;
    const scenes = numberFlag(f, 'scenes') ?? 0;
    const cases = numberFlag(f, 'cases') ?? 0;
    const t0 = performance.now();
    // the JSON is rewritten after every scene and case, so an interrupted run keeps what it measured
    const done: { shape?: unknown; tfIcon?: unknown } = {};
    const write = (partial: boolean) => {
      const secs = (performance.now() - t0) / 1000;
      const json = { start, steps, guidance, secs, partial, ...done };
      writeFileAtomic(out, `${JSON.stringify(json, null, 2)}\n`);
      return secs;
    };
    const bar = (name: string, n: number) => progressBar(name, n, { quiet: run.quiet });
    const sv = bar('shape variations', scenes);
    const shape =
      scenes > 0
        ? measureShapeVariations(sd, {
            start,
            scenes,
            proxies: numberFlag(f, 'proxies') ?? 3,
            steps,
            guidanceScale: guidance,
            progress: (d) => sv.update(d),
            partial: (m) => {
              done.shape = m;
              write(true);
            },
          })
        : undefined;
    sv.stop();
    const tb = bar('TF-ICON', cases);
    // TF-ICON's same-domain guidance is the reference's 2.5; the SDEdit baseline uses the same
    const tfIcon =
      cases > 0
        ? measureTFIcon(sd, {
            start,
            cases,
            steps,
            guidanceScale: 2.5,
            progress: (d) => tb.update(d),
            partial: (m) => {
              done.tfIcon = m;
              write(true);
            },
          })
        : undefined;
    tb.stop();
    Object.assign(done, { shape, tfIcon });
    const secs = write(false);
    log(`wrote ${out} (${secs.toFixed(0)} s)${stringFlag(f, 'model') ? '' : ' with the built-in model'}`);
  });
}
