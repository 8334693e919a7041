// attnkit eval — ShapesEval of the model on held-out Shapes prompts (issue 4): the target table, ShapesEval's
// summary, and with --heatmaps the shape-word heat-map IoU; --out writes everything as JSON.

import type { Command } from 'commander';
import { writeOutput } from '../io/output.js';
import { writePng } from '../io/png.js';
import { progressBar } from '../io/progress.js';
import { imageGrid } from '../io/render.js';
import { evalRunJSON, formatEvalRun, formatReport, runShapesEval } from '../lab/index.js';
import { HEAT_MAP_SIDE, HEAT_MAP_THRESHOLD } from '../pipelines/heatmaps.js';
import { isSD3Folder, StableDiffusion3 } from '../pipelines/sd3.js';
import { StableDiffusion } from '../pipelines/stable-diffusion.js';
import type { SchedulerName } from '../schedulers/index.js';
import { float, floatIn, int, intIn } from './args.js';
import { BATCH, COUNT, UNIT } from './limits.js';
import { parseIntList, parseStepRange } from './maps.js';
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

interface EvalFlags {
  prompts: number;
  start: number;
  guidanceRescale?: number;
  scheduler: SchedulerName;
  batch: number;
  heatmaps?: number | true;
  threshold: number;
  heatSteps?: string;
  res?: string;
  out?: string;
  grid?: string;
  rows?: boolean;
  minutes?: number;
  reconstruct?: boolean;
}

export function registerEval(program: Command): void {
  const cmd = program
    .command('eval')
    .description(
      'ShapesEval on held-out Shapes prompts (scene seeds ≥ 10⁹, never trained on): prints the table',
    );
  addModelOption(cmd)
    .option('-n, --prompts <n>', 'number of held-out prompts', intIn('--prompts', COUNT), 200)
    .option('--start <i>', 'first held-out prompt index', int('--start'), 0);
  addSamplingOptions(cmd, { seed: false, steps: 25, guidance: 5 })
    .option(
      '--guidance-rescale <phi>',
      'rescale the guided prediction (0–1; 0.7 in Lin et al. 2024; default off)',
      float('--guidance-rescale'),
    )
    .option('--scheduler <name>', 'ddim | ddpm | euler | dpmpp2m | pndm', 'ddim')
    .option('--batch <n>', 'prompts per generate call', intIn('--batch', BATCH), 16)
    .option(
      '--heatmaps [n]',
      'also the shape-word heat-map IoU on the first n prompts (default 100)',
      intIn('--heatmaps', COUNT),
    )
    .option(
      '--threshold <t>',
      `heat-map threshold after min–max normalisation (DAAM's is 0.4; ${HEAT_MAP_THRESHOLD} was better on validation; Otsu is reported too)`,
      floatIn('--threshold', UNIT),
      HEAT_MAP_THRESHOLD,
    )
    .option(
      '--heat-steps <a:b>',
      'heat-maps from denoising steps a (incl.) to b (excl.); default the last third',
    )
    .option(
      '--res <sides>',
      `heat-maps from cross-attention maps of these sides only, e.g. 8 or 16,8 (default ${HEAT_MAP_SIDE} where the UNet has it, else all)`,
    )
    .option('-o, --out <file>', 'write the results as JSON')
    .option('--grid <file>', 'write a PNG grid of the generated images')
    .option('--rows', 'print the report of every prompt')
    .option(
      '--minutes <m>',
      'time budget: start no batch that would end past it (the output says how many ran)',
      float('--minutes'),
    )
    .option(
      '--reconstruct',
      "score the VAE's round trips of the prompts' rendered scenes (the ceiling of any generation)",
    );
  addRunOptions(cmd).action((f: EvalFlags) => {
    const run = startRun(f, { '--out': f.out, '--grid': f.grid });
    const { steps, guidance } = parseSampling(f);
    const model = resolveModel(parseModel(f), log);
    // an SD3-style folder (StableDiffusion3Pipeline: MM-DiT + flow matching) or a UNet one
    const sd = isSD3Folder(model)
      ? StableDiffusion3.fromPretrained(model)
      : StableDiffusion.fromPretrained(model);
    const heatMaps = f.heatmaps === true ? 100 : (f.heatmaps ?? 0);
    const bar = progressBar('eval', f.prompts, { quiet: run.quiet });
    let done = 0;
    const result = runShapesEval(sd, {
      prompts: f.prompts,
      start: f.start,
      steps,
      guidanceScale: guidance,
      ...(f.guidanceRescale !== undefined ? { guidanceRescale: f.guidanceRescale } : {}),
      // an SD3-style model samples with its flow-matching scheduler (--scheduler's default, ddim, is left out)
      ...(sd instanceof StableDiffusion3 && f.scheduler === 'ddim' ? {} : { scheduler: f.scheduler }),
      batchSize: f.batch,
      heatMaps,
      threshold: f.threshold,
      heatSteps: f.heatSteps ? parseStepRange(f.heatSteps, steps, '--heat-steps') : undefined,
      resolutions: f.res ? parseIntList(f.res, '--res') : undefined,
      keepImages: f.grid !== undefined,
      minutes: f.minutes,
      reconstruct: f.reconstruct ?? false,
      onStep: (s, n) => bar.update(done, { step: `${s}/${n}` }),
      onProgress: (d) => {
        done = d;
        bar.update(d);
      },
    });
    bar.stop();
    if (f.rows)
      process.stdout.write(
        `${result.rows.map((r) => `[${r.seed}] ${formatReport(r.report)}`).join('\n')}\n\n`,
      );
    process.stdout.write(`${formatEvalRun(result)}\n`);
    if (f.out) {
      writeOutput(f.out, `${JSON.stringify({ model, ...JSON.parse(evalRunJSON(result)) }, null, 2)}\n`);
      log(`wrote ${f.out}`);
    }
    if (f.grid && result.images) {
      writePng(f.grid, imageGrid(result.images, { cols: Math.min(16, result.images.length) }));
      log(`wrote ${f.grid}`);
    }
  });
}
