// attnkit measure new-concept — issue 27's new-concept experiment: writes the diamond's training folder
// (--write-data), or measures the base model and each taught model given (--lora, --custom-diffusion,
// --full) on "a <colour> diamond …" prompts and on ShapesEval's held-out prompts (lab/measure/new-concept.ts).

import type { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { type Progress, progressBar } from '../io/progress.js';
import {
  applyConcept,
  type ConceptMethod,
  measureNewConcept,
  type NewConceptResult,
  newConceptMarkdown,
  writeNewConceptFolder,
} from '../lab/measure/new-concept.js';
import { NEW_CONCEPT_SEEDS } from '../lab/shapes/new-concept.js';
import { StableDiffusion } from '../pipelines/stable-diffusion.js';
import { intIn } from './args.js';
import { BATCH, COUNT } from './limits.js';
import { resolveModel } from './models.js';
import { addModelOption, addRunOptions, log, parseModel, startRun } from './options.js';

interface NewConceptFlags {
  writeData?: string;
  images: number;
  lora?: string;
  customDiffusion?: string;
  full?: string;
  skipBase?: boolean;
  prompts: number;
  evalPrompts: number;
  dev?: boolean;
  batch: number;
  out?: string;
  markdown?: string;
}

/** Adds `new-concept` to the `measure` command. */
export function registerMeasureNewConcept(measure: Command): void {
  const cmd = measure
    .command('new-concept')
    .description('issue 27: a new shape (diamond) taught by LoRA, Custom Diffusion or full fine-tuning');
  addModelOption(cmd)
    .option('--write-data <dir>', 'write the training folder (name.png + name.txt) and stop')
    .option('--images <n>', 'training images to write', intIn('--images', { min: 1, max: 50 }), 50)
    .option('--lora <file>', 'a LoRA taught on the folder (merged at scale 1)')
    .option('--custom-diffusion <file>', 'Custom Diffusion K/V taught on the folder')
    .option('--full <file>', 'a fully fine-tuned UNet (train full)')
    .option('--skip-base', 'measure only the taught models')
    .option('--prompts <n>', '"a <colour> diamond" prompts', intIn('--prompts', COUNT), 100)
    .option(
      '--eval-prompts <n>',
      'ShapesEval held-out prompts (0: skip)',
      intIn('--eval-prompts', { min: 0, max: 100_000 }),
      200,
    )
    .option(
      '--dev',
      'development seeds and ShapesEval prompts from 100000 (for tuning), not the held-out ones',
    )
    .option('--batch <n>', 'prompts per generate call', intIn('--batch', BATCH), 16)
    .option('-o, --out <file>', 'write the results as JSON (after every model)')
    .option('--markdown <file>', 'write the markdown table');
  addRunOptions(cmd).action((f: NewConceptFlags) => {
    const run = startRun(f, { '--out': f.out, '--markdown': f.markdown });
    if (f.writeData !== undefined) {
      writeNewConceptFolder(f.writeData, f.images);
      log(`wrote ${f.images} diamond images with captions to ${f.writeData}`);
      return;
    }
    const model = resolveModel(parseModel(f), log);
    const sd = StableDiffusion.fromPretrained(model);
    const taught: [string, ConceptMethod | null, string][] = [];
    if (!f.skipBase) taught.push(['base', null, '']);
    if (f.lora) taught.push(['LoRA', 'lora', f.lora]);
    if (f.customDiffusion) taught.push(['Custom Diffusion', 'custom-diffusion', f.customDiffusion]);
    if (f.full) taught.push(['full fine-tuning', 'full', f.full]);
    if (taught.length === 0)
      throw new Error('measure new-concept: nothing to measure: drop --skip-base or give a model');
    const results: Record<string, NewConceptResult & { file?: string }> = {};
    const settings = f.dev
      ? { seedBase: NEW_CONCEPT_SEEDS.development, evalStart: 100_000 }
      : { seedBase: NEW_CONCEPT_SEEDS.heldOut, evalStart: 0 };
    for (const [name, method, file] of taught) {
      const restore = method ? applyConcept(sd, method, file) : () => {};
      let bar: { part: string; bar: Progress } | undefined;
      try {
        const r = measureNewConcept(sd, {
          ...settings,
          prompts: f.prompts,
          evalPrompts: f.evalPrompts,
          batchSize: f.batch,
          onProgress: (part, done, total) => {
            if (bar?.part !== part) {
              bar?.bar.stop();
              bar = { part, bar: progressBar(`${name} ${part}`.padEnd(30), total, { quiet: run.quiet }) };
            }
            bar.bar.update(done);
          },
        });
        results[name] = { ...r, ...(file ? { file } : {}) };
      } finally {
        bar?.bar.stop();
        restore();
      }
      if (f.out) writeFileAtomic(f.out, `${JSON.stringify({ model, ...settings, results }, null, 2)}\n`);
    }
    const md = newConceptMarkdown(results);
    process.stdout.write(`${md}\n`);
    if (f.markdown) {
      writeFileAtomic(f.markdown, md);
      log(`wrote ${f.markdown}`);
    }
  });
}
