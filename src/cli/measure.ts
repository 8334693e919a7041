// attnkit measure edits — the issue-5 measurements (P2P colour/shape swap, reweight, heat-maps, MasaCtrl/PnP,
// inversion) on a Shapes model; attnkit measure report — docs/results.md from the JSON of `eval` and
// `measure edits`.

import { readFileSync } from 'node:fs';
import { isAbsolute, relative } from 'node:path';
import type { Command } from 'commander';
import { writeOutput } from '../io/output.js';
import { type Progress, progressBar } from '../io/progress.js';
import {
  EDIT_BLEND_THRESHOLD,
  type EditMeasurements,
  editsMarkdown,
  evalMarkdown,
  formatSummary,
  MEASUREMENTS,
  type MeasurementName,
  measureEdits,
  type ShapesEvalRun,
} from '../lab/index.js';
import { HEAT_MAP_SIDE, HEAT_MAP_THRESHOLD } from '../pipelines/heatmaps.js';
import { isSD3Folder, StableDiffusion3 } from '../pipelines/sd3.js';
import { StableDiffusion } from '../pipelines/stable-diffusion.js';
import { float, floatIn, int, intIn } from './args.js';
import { BATCH, COUNT, UNIT } from './limits.js';
import { parseIntList, parseStepRange } from './maps.js';
import { registerMeasureComposition } from './measure-composition.js';
import { registerMeasureGuidance } from './measure-guidance.js';
import { registerMeasureNewConcept } from './measure-new-concept.js';
import { packageRoot, resolveModel } from './models.js';
import {
  addModelOption,
  addRunOptions,
  addSamplingOptions,
  log,
  parseModel,
  parseSampling,
  startRun,
} from './options.js';

interface EditsFlags {
  only?: string;
  sceneOffset: number;
  seeds: number;
  batch: number;
  weights: string;
  reweightWord: string;
  nullTextSeeds: number;
  nullTextInner: number;
  nullTextLr: number;
  threshold: number;
  heatSteps?: string;
  res?: string;
  maskRes?: number;
  maskThres?: number;
  blendThreshold: number;
  minutes?: number;
  out?: string;
  markdown?: string;
}

interface ReportFlags {
  eval?: string;
  edits?: string;
  model?: string;
  out: string;
}

function parseOnly(v: string | undefined): MeasurementName[] {
  if (!v) return [...MEASUREMENTS];
  const names = v.split(',').map((s) => s.trim());
  for (const n of names) {
    if (!(MEASUREMENTS as readonly string[]).includes(n))
      throw new Error(`--only: unknown measurement '${n}'; choose from ${MEASUREMENTS.join(', ')}`);
  }
  return names as MeasurementName[];
}

/** docs/results.md: the eval table and the edit measurements. */
export function resultsMarkdown(model: string, evalRun?: ShapesEvalRun, edits?: EditMeasurements): string {
  const out = [
    '# Results on the built-in Shapes model',
    '',
    `Model: \`${model}\`. Written by \`attnkit measure report\` from the JSON of \`attnkit eval\` and ` +
      '`attnkit measure edits`; every number below comes from those runs.',
    '',
  ];
  if (evalRun) {
    const c = evalRun.config;
    out.push(
      `## ShapesEval on held-out prompts (issue 4)`,
      '',
      `${c.prompts} held-out prompts${c.asked !== undefined && c.prompts < c.asked ? ` (of ${c.asked} asked; the time budget ran out)` : ''} ` +
        `(scene seeds ${c.seeds[0]}–${c.seeds[1]}; training draws seeds below 4·10⁷), ` +
        `${c.scheduler.toUpperCase()} ${c.steps} steps, guidance ${c.guidanceScale}, ${c.batchSize} prompts per batch, ` +
        `${evalRun.seconds.toFixed(0)} s.`,
      '',
      evalMarkdown(evalRun),
      '',
    );
    if (evalRun.heatMaps) out.push(`Heat-map masks: ${evalRun.heatMaps.maskSource}.`, '');
    out.push(
      '<details><summary>ShapesEval summary</summary>',
      '',
      '```',
      formatSummary(evalRun.summary),
      '```',
      '',
      '</details>',
      '',
    );
  }
  if (edits) {
    out.push('## Attention control (issue 5)', '', editsMarkdown(edits));
  }
  out.push(
    '## How the numbers are measured',
    '',
    '- Prompts are captions of held-out scenes (scene seeds ≥ 10⁹; training draws seeds dataSeed·10⁷ + k for the ' +
      'data seeds 1–3), each image from noise seeded by its scene seed, so an image does not depend on its batch.',
    '- ShapesEval (src/shapes) reads every image with no learned model: palette colour unmixing, connected ' +
      'components, template fitting. An object is right when the object matched to the prompt object has its ' +
      'colour and shape; position is the 3×3 grid cell.',
    '- Object masks of generated images are the templates the detector fitted (shape, centre, scale) rasterised; ' +
      'rendered scenes use their ground-truth masks. Heat-maps are DAAM-aggregated cross-attention (the 16 × 16 ' +
      'layers, all heads) of the last third of the denoising steps, upsampled bicubically, min–max normalised and ' +
      `thresholded at ${HEAT_MAP_THRESHOLD} (Otsu also reported). Steps, layers and threshold were chosen on ` +
      "validation scenes, never the measured ones: DAAM's 0.4 over all steps marked about twice each object; on " +
      'the session-12 model all layers at 0.7 on the last third gave shape-word IoU 0.438 on validation prompts ' +
      '(rendered validation scenes 0.571), the 16 × 16 layers at 0.5 gave 0.499 (0.659) — docs/training.md.',
    '- Edits run many scenes per batch: each scene is a prompt group with its own controllers ' +
      '(src/methods/application/prompt-groups.ts), equal to running it alone (test/methods/prompt-groups.test.ts).',
    '- A measurement with fewer scenes than asked ran under a time budget (`--minutes`); the count is in its heading.',
    '',
    '## Reproduce',
    '',
    '```sh',
    `attnkit eval${evalRun?.heatMaps ? ` --heatmaps ${evalRun.heatMaps.scenes}` : ''} --out eval.json`,
    `attnkit measure edits${edits ? ` --seeds ${edits.config.seeds} --null-text-seeds ${edits.config.nullTextSeeds}` : ''} --out edits.json`,
    'attnkit measure report --eval eval.json --edits edits.json --out docs/results.md',
    '```',
    '',
  );
  return out.join('\n');
}

/**
 * The JSON a run wrote (undefined when no file is given), refused with the flag and the file named when it is
 * missing, is not JSON, or lacks the top-level keys that run writes.
 */
function readRunJSON<T>(
  file: string | undefined,
  flag: string,
  writer: string,
  keys: readonly string[],
): (T & { model?: string }) | undefined {
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${flag} ${file}: cannot read it (${(e as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${flag} ${file} is not JSON (${(e as Error).message}); give the file ${writer} wrote`);
  }
  const missing = keys.filter((k) => !(json && typeof json === 'object' && k in json));
  if (missing.length > 0) {
    throw new Error(
      `${flag} ${file} is not what ${writer} writes: no ${missing.map((k) => `"${k}"`).join(', ')}`,
    );
  }
  return json as T & { model?: string };
}

export function registerMeasure(program: Command): void {
  const measure = program
    .command('measure')
    .description('measurements of the attention methods on a Shapes model');
  registerMeasureGuidance(measure);
  registerMeasureComposition(measure);
  registerMeasureNewConcept(measure);
  const editsCmd = measure.command('edits').description(`issue-5 measurements: ${MEASUREMENTS.join(', ')}`);
  addModelOption(editsCmd)
    .option('--only <names>', `comma-separated subset of ${MEASUREMENTS.join(',')}`)
    .option('--seeds <n>', 'scenes per measurement', intIn('--seeds', COUNT), 50)
    .option(
      '--scene-offset <n>',
      "shift every measurement's held-out scenes by n, for validation runs (e.g. 1000000)",
      int('--scene-offset'),
      0,
    );
  addSamplingOptions(editsCmd, {
    seed: false,
    stepsHelp: 'DDIM steps (sampling and inversion)',
    steps: 25,
    guidance: 5,
  })
    .option('--batch <n>', 'prompts per generate call', intIn('--batch', BATCH), 16)
    .option('--weights <list>', 'reweight weights (1 = the source image)', '1,2,4')
    .option('--reweight-word <which>', 'color | shape: the word reweighted', 'color')
    .option(
      '--null-text-seeds <n>',
      'scenes that also get null-text inversion and a real-image edit',
      intIn('--null-text-seeds', { ...COUNT, min: 0 }),
      5,
    )
    .option(
      '--null-text-inner <n>',
      "null-text inversion's Adam iterations per step",
      intIn('--null-text-inner', COUNT),
      10,
    )
    .option(
      '--null-text-lr <x>',
      "null-text inversion's Adam learning rate at the first step (the reference's is 0.01)",
      float('--null-text-lr'),
      0.02,
    )
    .option(
      '--threshold <t>',
      `heat-map threshold after min–max normalisation (DAAM's is 0.4; ${HEAT_MAP_THRESHOLD} was better on validation scenes)`,
      floatIn('--threshold', UNIT),
      HEAT_MAP_THRESHOLD,
    )
    .option(
      '--heat-steps <a:b>',
      'heat-maps from denoising steps a (incl.) to b (excl.), sampling order; default the last third',
    )
    .option(
      '--minutes <m>',
      'time budget: each measurement gets a share and stops starting batches past it (the output says how many scenes each used)',
      float('--minutes'),
    )
    .option(
      '--res <sides>',
      `heat-maps from cross-attention maps of these sides only, e.g. 8 or 16,8 (default ${HEAT_MAP_SIDE} where the UNet has it, else all)`,
    )
    .option(
      '--mask-res <side>',
      "feature: the side of the cross-attention maps MasaCtrl's MaskAuto reads (default: one above the smallest)",
      intIn('--mask-res', { min: 1, max: 4096 }),
    )
    .option(
      '--mask-thres <t>',
      "feature: MaskAuto's threshold on the min–max normalised maps (default: the reference's 0.1)",
      float('--mask-thres'),
    )
    .option(
      '--blend-threshold <t>',
      "LocalBlend's threshold in every LocalBlend edit (the reference's is 0.3; 0.6 was better on validation scenes)",
      float('--blend-threshold'),
      EDIT_BLEND_THRESHOLD,
    )
    .option('-o, --out <file>', 'write the results as JSON')
    .option('--markdown <file>', 'write the markdown tables');
  addRunOptions(editsCmd).action((f: EditsFlags) => {
    const run = startRun(f, { '--out': f.out, '--markdown': f.markdown });
    const { steps, guidance } = parseSampling(f);
    if (f.reweightWord !== 'color' && f.reweightWord !== 'shape')
      throw new Error('--reweight-word must be color or shape');
    const weights = f.weights.split(',').map((s) => float('--weights')(s.trim()));
    const model = resolveModel(parseModel(f), log);
    // an SD3-style folder (the DiT Shapes model) or a UNet one: the same measurements through the joint view
    const sd = isSD3Folder(model)
      ? StableDiffusion3.fromPretrained(model)
      : StableDiffusion.fromPretrained(model);
    let bar: { name: string; bar: Progress } | undefined;
    const results = measureEdits(sd, {
      // default: every measurement the model runs (a DiT leaves out the DDIM / null-text inversion one)
      only: f.only ? parseOnly(f.only) : undefined,
      sceneOffset: f.sceneOffset,
      seeds: f.seeds,
      steps,
      guidanceScale: guidance,
      batchPrompts: f.batch,
      weights,
      reweightWord: f.reweightWord,
      nullTextSeeds: f.nullTextSeeds,
      nullTextInnerSteps: f.nullTextInner,
      nullTextLr: f.nullTextLr,
      threshold: f.threshold,
      heatSteps: f.heatSteps ? parseStepRange(f.heatSteps, steps, '--heat-steps') : undefined,
      resolutions: f.res ? parseIntList(f.res, '--res') : undefined,
      maskResolution: f.maskRes,
      maskThreshold: f.maskThres,
      blendThreshold: f.blendThreshold,
      minutes: f.minutes,
      onProgress: (m, done, total) => {
        if (bar?.name !== m) {
          bar?.bar.stop();
          bar = { name: m, bar: progressBar(m.padEnd(11), total, { quiet: run.quiet }) };
        }
        bar.bar.update(done);
      },
    });
    bar?.bar.stop();
    const md = editsMarkdown(results);
    process.stdout.write(`${md}\n`);
    if (f.out) {
      writeOutput(f.out, `${JSON.stringify({ model, ...results }, null, 2)}\n`);
      log(`wrote ${f.out}`);
    }
    if (f.markdown) {
      writeOutput(f.markdown, `${md}\n`);
      log(`wrote ${f.markdown}`);
    }
  });
  measure
    .command('report')
    .description('write docs/results.md from the JSON of `attnkit eval` and `attnkit measure edits`')
    .option('--eval <file>', 'JSON written by attnkit eval --out')
    .option('--edits <file>', 'JSON written by attnkit measure edits --out')
    .option('--model <name>', 'the model named in the report (default: the one the JSON names)')
    .option('-o, --out <file>', 'the markdown file', 'docs/results.md')
    .action((f: ReportFlags) => {
      if (!f.eval && !f.edits) throw new Error('give --eval and/or --edits');
      const evalRun = readRunJSON<ShapesEvalRun>(f.eval, '--eval', 'attnkit eval --out', [
        'config',
        'summary',
        'headline',
      ]);
      const edits = readRunJSON<EditMeasurements>(f.edits, '--edits', 'attnkit measure edits --out', [
        'config',
        'seconds',
      ]);
      const named = f.model ?? evalRun?.model ?? edits?.model ?? 'models/shapes-v1';
      const model = isAbsolute(named) ? relative(packageRoot, named) || named : named;
      writeOutput(f.out, resultsMarkdown(model, evalRun, edits));
      process.stderr.write(`wrote ${f.out}\n`);
    });
}
