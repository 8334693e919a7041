// attnkit eval — ShapesEval of the model on held-out Shapes prompts (issue 4): the target table, ShapesEval's
// summary, and with --heatmaps the shape-word heat-map IoU; --out writes everything as JSON.

import type { Command } from 'commander';
import { writeOutput } from '../io/output.js';
import { writePng } from '../io/png.js';
import { progressBar } from '../io/progress.js';
import { imageGrid } from '../io/render.js';
import { setThreads } from '../kernels/ort.js';
import { evalRunJSON, formatEvalRun, formatReport, runShapesEval } from '../lab/index.js';
import { HEAT_MAP_SIDE, HEAT_MAP_THRESHOLD } from '../pipelines/heatmaps.js';
import { StableDiffusion } from '../pipelines/stable-diffusion.js';
import type { SchedulerName } from '../schedulers/index.js';
import { float, int } from './args.js';
import { parseIntList, parseStepRange } from './maps.js';
import { resolveModel } from './models.js';

interface EvalFlags {
  model?: string;
  prompts: number;
  start: number;
  steps: number;
  guidance: number;
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
  threads?: number;
  quiet?: boolean;
  reconstruct?: boolean;
}

export function registerEval(program: Command): void {
  program
    .command('eval')
    .description(
      'ShapesEval on held-out Shapes prompts (scene seeds ≥ 10⁹, never trained on): prints the table',
    )
    .option('-m, --model <dir>', 'diffusers model folder (default: the built-in Shapes model)')
    .option('-n, --prompts <n>', 'number of held-out prompts', int('--prompts'), 200)
    .option('--start <i>', 'first held-out prompt index', int('--start'), 0)
    .option('--steps <n>', 'denoising steps', int('--steps'), 25)
    .option('--guidance <w>', 'classifier-free guidance scale', float('--guidance'), 5)
    .option(
      '--guidance-rescale <phi>',
      'rescale the guided prediction (0–1; 0.7 in Lin et al. 2024; default off)',
      float('--guidance-rescale'),
    )
    .option('--scheduler <name>', 'ddim | ddpm | euler | dpmpp2m | pndm', 'ddim')
    .option('--batch <n>', 'prompts per generate call', int('--batch'), 16)
    .option(
      '--heatmaps [n]',
      'also the shape-word heat-map IoU on the first n prompts (default 100)',
      int('--heatmaps'),
    )
    .option(
      '--threshold <t>',
      `heat-map threshold after min–max normalisation (DAAM's is 0.4; ${HEAT_MAP_THRESHOLD} was better on validation; Otsu is reported too)`,
      float('--threshold'),
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
    )
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', int('--threads'))
    .option('-q, --quiet', 'no progress bar')
    .action((f: EvalFlags) => {
      if (f.threads) setThreads(f.threads);
      const log = (s: string) => process.stderr.write(`${s}\n`);
      const model = resolveModel(f.model, log);
      const sd = StableDiffusion.fromPretrained(model);
      const heatMaps = f.heatmaps === true ? 100 : (f.heatmaps ?? 0);
      const bar = progressBar('eval', f.prompts, { quiet: f.quiet });
      let done = 0;
      const run = runShapesEval(sd, {
        prompts: f.prompts,
        start: f.start,
        steps: f.steps,
        guidanceScale: f.guidance,
        ...(f.guidanceRescale !== undefined ? { guidanceRescale: f.guidanceRescale } : {}),
        scheduler: f.scheduler,
        batchSize: f.batch,
        heatMaps,
        threshold: f.threshold,
        heatSteps: f.heatSteps ? parseStepRange(f.heatSteps, f.steps, '--heat-steps') : undefined,
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
          `${run.rows.map((r) => `[${r.seed}] ${formatReport(r.report)}`).join('\n')}\n\n`,
        );
      process.stdout.write(`${formatEvalRun(run)}\n`);
      if (f.out) {
        writeOutput(f.out, `${JSON.stringify({ model, ...JSON.parse(evalRunJSON(run)) }, null, 2)}\n`);
        log(`wrote ${f.out}`);
      }
      if (f.grid && run.images) {
        writePng(f.grid, imageGrid(run.images, { cols: Math.min(16, run.images.length) }));
        log(`wrote ${f.grid}`);
      }
    });
}
