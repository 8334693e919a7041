// attnkit edit --source "<prompt>" --target "<prompt>" --method <name> — training-free editing; writes the
// source, the target and the two side by side. Methods come from EDIT_METHODS: to add one, write an EditMethod
// (edit-method.ts: its own options and a run() that returns the two images) and add one line to the table.

import { basename, dirname, extname, join } from 'node:path';
import { type Command, Option } from 'commander';
import { readPng, writePng } from '../io/png.js';
import { progressBar } from '../io/progress.js';
import { sideBySide } from '../io/render.js';
import { LOCAL_BLEND_TH } from '../methods/application/local-blend.js';
import { type EditPromptOptions, editPrompt, type PromptEditMethod } from '../pipelines/edit.js';
import { float } from './args.js';
import { masactrlMethod, pnpMethod } from './edit-features.js';
import type { EditMethod } from './edit-method.js';
import { shapeVariationsMethod } from './edit-shape-variations.js';
import { loadModel } from './models.js';
import {
  addModelOption,
  addRunOptions,
  addSamplingOptions,
  booleanFlag,
  log,
  numberFlag,
  parseModel,
  parseSampling,
  parseSingleFile,
  requiredString,
  startRun,
  stringFlag,
  stringsFlag,
} from './options.js';
import { checkInputFile } from './paths.js';

const P2P_EDITS = ['auto', 'replace', 'refine', 'reweight', 'none'] as const;

/** Prompt-to-Prompt's own options, parsed. */
interface P2POptions {
  edit: PromptEditMethod | 'auto';
  blend?: string[];
  blendThreshold?: number;
  reweight?: string[];
  crossReplaceSteps?: number;
  selfReplaceSteps?: number;
  nullText: boolean;
  nullTextSourceOnly: boolean;
  nullTextLr?: number;
}

function parseP2P(flags: object): P2POptions {
  const edit = stringFlag(flags, 'p2p') ?? 'auto';
  const known = P2P_EDITS.find((e) => e === edit); // commander checked the choice
  if (!known) throw new Error(`--p2p: unknown edit '${edit}'`);
  return {
    edit: known,
    blend: stringsFlag(flags, 'blend'),
    blendThreshold: numberFlag(flags, 'blendThreshold'),
    reweight: stringsFlag(flags, 'reweight'),
    crossReplaceSteps: numberFlag(flags, 'crossReplaceSteps'),
    selfReplaceSteps: numberFlag(flags, 'selfReplaceSteps'),
    nullText: booleanFlag(flags, 'nullText'),
    nullTextSourceOnly: booleanFlag(flags, 'nullTextSourceOnly'),
    nullTextLr: numberFlag(flags, 'nullTextLr'),
  };
}

/** Prompt-to-Prompt (src/pipelines/edit.ts). */
const promptToPrompt: EditMethod = {
  description: 'Prompt-to-Prompt: word swap, refinement or reweighting of cross-attention (+ LocalBlend)',
  options: [
    new Option('--p2p <edit>', 'replace | refine | reweight | none (default: auto from the prompts)').choices(
      [...P2P_EDITS],
    ),
    new Option('--blend <words...>', 'LocalBlend: only the regions of these words change'),
    new Option(
      '--blend-threshold <t>',
      "LocalBlend's threshold on the words' normalised maps (the reference's 0.3; 0.6 suits the Shapes model)",
    ).argParser(float('--blend-threshold')),
    new Option('--reweight <word=w...>', 'scale the attention to a word, e.g. --reweight circle=2'),
    new Option(
      '--cross-replace-steps <f>',
      'fraction of steps with cross-attention replaced (0.8)',
    ).argParser(float('--cross-replace-steps')),
    new Option('--self-replace-steps <f>', 'fraction of steps with self-attention replaced (0.4)').argParser(
      float('--self-replace-steps'),
    ),
    new Option('--null-text', 'with --image: null-text inversion (slower, faithful) instead of plain DDIM'),
    new Option(
      '--null-text-source-only',
      'with --null-text: the target samples with the plain unconditional embedding, the source alone with the optimised ones (the edit takes more often)',
    ),
    new Option(
      '--null-text-lr <x>',
      "with --null-text: Adam's learning rate at the first step (default 0.01, the reference's; 0.02 reconstructs Shapes scenes closer)",
    ).argParser(float('--null-text-lr')),
  ],
  run(c, flags) {
    const o = parseP2P(flags);
    if (o.nullText && !c.image) {
      throw new Error(
        '--null-text inverts the image given with --image; add --image <png> or drop --null-text',
      );
    }
    if (o.blendThreshold !== undefined && !o.blend)
      throw new Error('--blend-threshold sets LocalBlend; add --blend <words...> or drop --blend-threshold');
    if (o.nullTextSourceOnly && !o.nullText)
      throw new Error('--null-text-source-only sets null-text inversion; add --null-text or drop it');
    if (o.nullTextLr !== undefined && !o.nullText)
      throw new Error('--null-text-lr sets null-text inversion; add --null-text or drop --null-text-lr');
    if (c.image) {
      c.log(
        `inverting the image with the source prompt (DDIM, ${c.steps} steps${o.nullText ? ', null-text' : ''})`,
      );
    }
    const reweight = parseWeights(o.reweight);
    return editPrompt(c.sd, {
      source: c.source,
      target: c.target,
      method: o.edit,
      blend: blendOption(o.blend, o.blendThreshold),
      reweight,
      crossReplaceSteps: o.crossReplaceSteps,
      selfReplaceSteps: o.selfReplaceSteps,
      seed: c.seed,
      steps: c.steps,
      guidanceScale: c.guidance,
      ...(c.image
        ? {
            image: c.image.pixels,
            // --null-text-lr without --null-text was refused above
            nullText: o.nullTextLr !== undefined ? { learningRate: o.nullTextLr } : o.nullText,
            nullTextSourceOnly: o.nullTextSourceOnly,
          }
        : {}),
      onStep: (e) => c.onStep(e.step + 1),
    });
  },
};

/** The edit methods by name: one line per method. */
export const EDIT_METHODS: Record<string, EditMethod> = {
  p2p: promptToPrompt,
  masactrl: masactrlMethod,
  pnp: pnpMethod,
  'shape-variations': shapeVariationsMethod,
};

/** --blend words, with --blend-threshold when given (the second, subtracted-words threshold stays). */
function blendOption(words: string[] | undefined, threshold: number | undefined): EditPromptOptions['blend'] {
  if (!words || threshold === undefined) return words;
  return { words, th: [threshold, LOCAL_BLEND_TH[1]] };
}

/** `word=2` flags → { word: 2 }. */
export function parseWeights(list: readonly string[] | undefined): Record<string, number> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, number> = {};
  for (const item of list) {
    const at = item.lastIndexOf('=');
    const w = Number(item.slice(at + 1));
    if (at <= 0 || !Number.isFinite(w)) throw new Error(`--reweight expects word=weight, got '${item}'`);
    out[item.slice(0, at)] = w;
  }
  return out;
}

/** edit.png → edit.source.png, edit.target.png beside it. */
export function companionPaths(out: string): { source: string; target: string } {
  const ext = extname(out) || '.png';
  const stem = join(dirname(out), basename(out, extname(out)));
  return { source: `${stem}.source${ext}`, target: `${stem}.target${ext}` };
}

export function registerEdit(program: Command): void {
  const cmd = program
    .command('edit')
    .description('edit an image by changing its prompt, with attention control')
    .requiredOption('--source <prompt>', 'the source prompt')
    .option('--target <prompt>', 'the target prompt (default: the source, e.g. for a reweighting)')
    .addOption(
      new Option('--method <name>', 'editing method').choices(Object.keys(EDIT_METHODS)).default('p2p'),
    )
    .option('--image <png>', 'edit this image instead of a generated one (methods with inversion)');
  addModelOption(cmd).option(
    '-o, --out <file>',
    'side-by-side PNG; source and target go beside it',
    'edit.png',
  );
  addSamplingOptions(cmd, { steps: 50, guidance: 7.5 });
  addRunOptions(cmd);
  for (const m of Object.values(EDIT_METHODS)) for (const o of m.options ?? []) cmd.addOption(o);
  const list = Object.entries(EDIT_METHODS).map(([name, m]) => `  ${name.padEnd(10)} ${m.description}`);
  cmd.addHelpText('after', `\nMethods:\n${list.join('\n')}\n`);
  cmd.action((f: object) => {
    const chosen = requiredString(f, 'method');
    // an option of another method would be read by nobody: say so instead of editing without it
    for (const [name, m] of Object.entries(EDIT_METHODS)) {
      if (name === chosen) continue;
      for (const o of m.options ?? []) {
        if (cmd.getOptionValueSource(o.attributeName()) === 'cli')
          throw new Error(
            `${o.long} is an option of --method ${name}; it does nothing with --method ${chosen}`,
          );
      }
    }
    const imagePath = stringFlag(f, 'image');
    if (imagePath) checkInputFile(imagePath, '--image');
    const out = requiredString(f, 'out');
    const paths = companionPaths(out);
    const run = startRun(f, { '--out': out, '--out (source)': paths.source, '--out (target)': paths.target });
    const source = requiredString(f, 'source');
    const target = stringFlag(f, 'target');
    const sd = loadModel(parseModel(f), log, [source, ...(target ? [target] : [])], parseSingleFile(f));
    const { seed, steps, guidance } = parseSampling(f);
    const bar = progressBar('editing', steps, { quiet: run.quiet });
    const method = EDIT_METHODS[chosen];
    if (!method) throw new Error(`--method: unknown method '${chosen}'`); // commander checked the choice
    const t0 = performance.now();
    const edited = method.run(
      {
        sd,
        source,
        target: target ?? source,
        seed,
        steps,
        guidance,
        image: imagePath ? { path: imagePath, pixels: readPng(imagePath) } : undefined,
        log,
        onStep: (s) => bar.update(s),
      },
      f,
    );
    bar.stop();
    writePng(paths.source, edited.source);
    writePng(paths.target, edited.target);
    writePng(out, sideBySide([edited.source, edited.target]));
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    log(`wrote ${out} (source | target), ${paths.source}, ${paths.target} (${secs} s)`);
  });
}
