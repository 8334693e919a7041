// attnkit edit --source "<prompt>" --target "<prompt>" --method <name> — training-free editing; writes the
// source, the target and the two side by side. Methods come from EDIT_METHODS: to add one, write an EditMethod
// (its own options and a run() that returns the two images) and add one line to the table.

import { basename, dirname, extname, join } from 'node:path';
import { type Command, Option } from 'commander';
import { readPng, writePng } from '../io/png.js';
import { progressBar } from '../io/progress.js';
import { sideBySide } from '../io/render.js';
import { setThreads } from '../kernels/ort.js';
import { LOCAL_BLEND_TH } from '../methods/application/local-blend.js';
import { type EditPromptOptions, editPrompt, type PromptEditMethod } from '../pipelines/edit.js';
import type { StableDiffusion } from '../pipelines/stable-diffusion.js';
import type { Tensor } from '../tensor/index.js';
import { float, int } from './args.js';
import { masactrlMethod, pnpMethod } from './edit-features.js';
import { loadModel } from './models.js';

/** What every edit method is handed. */
export interface EditContext {
  sd: StableDiffusion;
  source: string;
  target: string;
  seed: number;
  steps: number;
  guidance: number;
  /** The image to edit (1, 3, H, W) in [-1, 1], when --image was given (methods that invert it). */
  image?: Tensor;
  /** Every parsed flag, the method's own options included (camelCase, as commander names them). */
  flags: Readonly<Record<string, unknown>>;
  log: (s: string) => void;
  onStep: (step: number) => void;
}

export interface EditMethod {
  description: string;
  /** Options only this method reads (shown in --help). */
  options?: readonly Option[];
  run(ctx: EditContext): { source: Tensor; target: Tensor };
}

const P2P_EDITS = ['auto', 'replace', 'refine', 'reweight', 'none'];

/** Prompt-to-Prompt (src/pipelines/edit.ts). */
const promptToPrompt: EditMethod = {
  description: 'Prompt-to-Prompt: word swap, refinement or reweighting of cross-attention (+ LocalBlend)',
  options: [
    new Option('--p2p <edit>', 'replace | refine | reweight | none (default: auto from the prompts)').choices(
      P2P_EDITS,
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
  run(c) {
    const f = c.flags;
    if (f['nullText'] && !c.image) {
      throw new Error(
        '--null-text inverts the image given with --image; add --image <png> or drop --null-text',
      );
    }
    if (f['blendThreshold'] !== undefined && !f['blend'])
      throw new Error('--blend-threshold sets LocalBlend; add --blend <words...> or drop --blend-threshold');
    if (f['nullTextSourceOnly'] && !f['nullText'])
      throw new Error('--null-text-source-only sets null-text inversion; add --null-text or drop it');
    if (f['nullTextLr'] !== undefined && !f['nullText'])
      throw new Error('--null-text-lr sets null-text inversion; add --null-text or drop --null-text-lr');
    if (c.image) {
      c.log(
        `inverting the image with the source prompt (DDIM, ${c.steps} steps${f['nullText'] ? ', null-text' : ''})`,
      );
    }
    const reweight = parseWeights(f['reweight'] as string[] | undefined);
    return editPrompt(c.sd, {
      source: c.source,
      target: c.target,
      method: (f['p2p'] as PromptEditMethod | 'auto' | undefined) ?? 'auto',
      blend: blendOption(f['blend'] as string[] | undefined, f['blendThreshold'] as number | undefined),
      reweight,
      crossReplaceSteps: f['crossReplaceSteps'] as number | undefined,
      selfReplaceSteps: f['selfReplaceSteps'] as number | undefined,
      seed: c.seed,
      steps: c.steps,
      guidanceScale: c.guidance,
      ...(c.image
        ? {
            image: c.image,
            // --null-text-lr without --null-text was refused above
            nullText:
              f['nullTextLr'] !== undefined
                ? { learningRate: f['nullTextLr'] as number }
                : f['nullText'] === true,
            nullTextSourceOnly: f['nullTextSourceOnly'] === true,
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
    .option('--image <png>', 'edit this image instead of a generated one (methods with inversion)')
    .option('-m, --model <dir>', 'diffusers model folder (default: the built-in Shapes model)')
    .option('-o, --out <file>', 'side-by-side PNG; source and target go beside it', 'edit.png')
    .option('--seed <n>', 'random seed', int('--seed'), 0)
    .option('--steps <n>', 'denoising steps', int('--steps'), 50)
    .option('--guidance <w>', 'classifier-free guidance scale', float('--guidance'), 7.5)
    .option('--threads <n>', 'onnxruntime threads (default: all cores)', int('--threads'))
    .option('-q, --quiet', 'no progress bar');
  for (const m of Object.values(EDIT_METHODS)) for (const o of m.options ?? []) cmd.addOption(o);
  const list = Object.entries(EDIT_METHODS).map(([name, m]) => `  ${name.padEnd(10)} ${m.description}`);
  cmd.addHelpText('after', `\nMethods:\n${list.join('\n')}\n`);
  cmd.action((f: Record<string, unknown>) => {
    const chosen = f['method'] as string;
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
    if (f['threads']) setThreads(f['threads'] as number);
    const log = (s: string) => process.stderr.write(`${s}\n`);
    const prompts = [f['source'] as string, ...(f['target'] ? [f['target'] as string] : [])];
    const sd = loadModel(f['model'] as string | undefined, log, prompts);
    const steps = f['steps'] as number;
    const bar = progressBar('editing', steps, { quiet: f['quiet'] as boolean | undefined });
    const method = EDIT_METHODS[chosen]!;
    const t0 = performance.now();
    const { source, target } = method.run({
      sd,
      source: f['source'] as string,
      target: (f['target'] as string | undefined) ?? (f['source'] as string),
      seed: f['seed'] as number,
      steps,
      guidance: f['guidance'] as number,
      image: f['image'] ? readPng(f['image'] as string) : undefined,
      flags: f,
      log,
      onStep: (s) => bar.update(s),
    });
    bar.stop();
    const out = f['out'] as string;
    const paths = companionPaths(out);
    writePng(paths.source, source);
    writePng(paths.target, target);
    writePng(out, sideBySide([source, target]));
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    log(`wrote ${out} (source | target), ${paths.source}, ${paths.target} (${secs} s)`);
  });
}
