// attnkit compose --background bg.png --object obj.png --object-mask m.png --box x0,y0,x1,y1 --prompt "…" — TF-ICON
// (src/pipelines/compose.ts): pastes the object into the background at the box without training; writes the
// composite, and beside it (--preview) the cut-and-paste image it started from and the composite.

import type { Command } from 'commander';
import { readPng, writePng } from '../io/png.js';
import { progressBar } from '../io/progress.js';
import { sideBySide } from '../io/render.js';
import { composeImage, type PixelBox } from '../pipelines/compose.js';
import { floatIn } from './args.js';
import { UNIT } from './limits.js';
import { loadModel } from './models.js';
import {
  addModelOption,
  addRunOptions,
  addSamplingOptions,
  log,
  numberFlag,
  parseModel,
  parseSampling,
  parseSingleFile,
  requiredString,
  startRun,
  stringFlag,
} from './options.js';
import { checkInputFile } from './paths.js';

/** `x0,y0,x1,y1` → a pixel box; anything else is an error that shows the form. */
export function parseBox(text: string): PixelBox {
  const parts = text.split(',').map((s) => s.trim());
  const v = parts.map(Number);
  if (parts.length !== 4 || v.some((x) => !Number.isInteger(x) || x < 0))
    throw new Error(`--box expects four whole pixel numbers x0,y0,x1,y1 (e.g. 8,8,40,40), got '${text}'`);
  return v as unknown as PixelBox;
}

/** The object mask PNG as 0/1 per pixel (white = object: the mean of its channels above the middle). */
function readMask(path: string): Float32Array {
  const m = readPng(path);
  const [, c, h, w] = m.shape as [number, number, number, number];
  const v = m.toArray();
  return Float32Array.from({ length: h * w }, (_, p) => {
    let s = 0;
    for (let ch = 0; ch < c; ch++) s += v[ch * h * w + p]!;
    return s / c > 0 ? 1 : 0;
  });
}

export function registerCompose(program: Command): void {
  const cmd = program
    .command('compose')
    .description('paste an object into a background image at a box, without training (TF-ICON)')
    .requiredOption('--background <png>', 'the background image')
    .requiredOption('--object <png>', 'the image holding the object')
    .requiredOption('--object-mask <png>', "the object's mask (white = object), the object image's size")
    .requiredOption('--box <x0,y0,x1,y1>', 'where the object goes in the background, in pixels')
    .requiredOption('--prompt <text>', 'the composite’s prompt')
    .option(
      '--tau-a <f>',
      'fraction of steps with the composite self-attention (0.4)',
      floatIn('--tau-a', UNIT),
    )
    .option(
      '--tau-b <f>',
      'fraction of steps keeping the background outside the box (0.8)',
      floatIn('--tau-b', UNIT),
    );
  addModelOption(cmd)
    .option('-o, --out <file>', 'the composite PNG', 'compose.png')
    .option('--preview <file>', 'also write cut-and-paste | composite side by side');
  addSamplingOptions(cmd, { steps: 50, guidance: 2.5 });
  addRunOptions(cmd).action((f: object) => {
    const [bgPath, objPath, maskPath] = ['background', 'object', 'objectMask'].map((k) =>
      requiredString(f, k),
    );
    checkInputFile(bgPath!, '--background');
    checkInputFile(objPath!, '--object');
    checkInputFile(maskPath!, '--object-mask');
    const box = parseBox(requiredString(f, 'box'));
    const out = requiredString(f, 'out');
    const preview = stringFlag(f, 'preview');
    const run = startRun(f, { '--out': out, '--preview': preview });
    const prompt = requiredString(f, 'prompt');
    const background = readPng(bgPath!);
    const object = readPng(objPath!);
    const objectMask = readMask(maskPath!);
    const sd = loadModel(parseModel(f), log, [prompt], parseSingleFile(f));
    const { seed, steps, guidance } = parseSampling(f);
    const bar = progressBar('composing', steps, { quiet: run.quiet });
    const t0 = performance.now();
    log(`inverting the background and the object with the exceptional prompt (DDIM, ${steps} steps)`);
    const r = composeImage(sd, {
      background,
      object,
      objectMask,
      box,
      prompt,
      tauA: numberFlag(f, 'tauA'),
      tauB: numberFlag(f, 'tauB'),
      seed,
      steps,
      guidanceScale: guidance,
      onStep: (e) => bar.update(e.step + 1),
    });
    bar.stop();
    writePng(out, r.image);
    if (preview) writePng(preview, sideBySide([r.pasted, r.image]));
    log(
      `wrote ${out}${preview ? ` and ${preview}` : ''} (${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
  });
}
