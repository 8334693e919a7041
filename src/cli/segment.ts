// attnkit segment "<prompt>" --word <w> — a mask of a word from its cross-attention (DAAM map + threshold), over a
// generated image or a given one (--image, DDIM-inverted with the prompt).

import type { Command } from 'commander';
import { writeGrayPng, writePng } from '../io/png.js';
import { imageGrid, overlayHeatMap } from '../io/render.js';
import { attentionMask, normalizedAttention } from '../methods/application/attention-mask.js';
import { defaultHeatResolutions, heatStepRange } from '../pipelines/heatmaps.js';
import { floatIn } from './args.js';
import { UNIT } from './limits.js';
import { type HeatMapFlags, IMAGE_OPTION, runHeatMaps, tileZoom } from './maps.js';
import { loadModel } from './models.js';
import {
  addModelOption,
  addRunOptions,
  addSamplingOptions,
  log,
  parseModel,
  parseSampling,
  parseSingleFile,
  startRun,
} from './options.js';
import { checkInputFile } from './paths.js';

interface SegmentFlags extends HeatMapFlags {
  word: string;
  out: string;
  preview?: string;
  threshold: string;
  normalize: 'minmax' | 'max';
}

export function registerSegment(program: Command): void {
  const cmd = program
    .command('segment')
    .description("segment a word's object from its cross-attention, in a generated image or a given one")
    .argument('<prompt>', 'the text prompt')
    .requiredOption('--word <word>', 'the word (or phrase) of the prompt to segment');
  addModelOption(cmd)
    .option(...IMAGE_OPTION)
    .option('-o, --out <file>', 'the mask, a grayscale PNG at image size', 'mask.png')
    .option('--preview <file>', 'also write image | heat-map | mask side by side')
    .option('--threshold <t>', "a value in [0, 1] after normalisation, or 'otsu'", '0.4')
    .option('--normalize <how>', 'minmax (DAAM) | max (LocalBlend)', 'minmax');
  addSamplingOptions(cmd, { stepsFlag: '--sampling-steps', steps: 25, guidance: 7.5 })
    .option(
      '--steps <a:b>',
      'aggregate the maps of denoising steps a to b (excl.); default the last third (the heat-map measurements)',
    )
    .option(
      '--res <sizes>',
      'aggregate only maps of these sides, e.g. 16,8; default 16 where the UNet has 16 × 16 maps (with --image ' +
        'at another size, the same layers at that size), else all',
    );
  addRunOptions(cmd).action((prompt: string, f: SegmentFlags) => {
    const threshold = f.threshold === 'otsu' ? 'otsu' : threshold01(f.threshold);
    if (f.image) checkInputFile(f.image, '--image');
    startRun(f, { '--out': f.out, '--preview': f.preview });
    if (f.normalize !== 'minmax' && f.normalize !== 'max')
      throw new Error('--normalize must be minmax or max');
    const sd = loadModel(parseModel(f), log, [prompt], parseSingleFile(f));
    // fail before generating: a word not in the prompt (named with the prompt's words), or cut off it
    sd.tokenizer.keptTokenIndices(prompt, f.word);
    // the setting the heat-map measurements read (docs/results.md): DAAM's own is every step and side
    const run = runHeatMaps(sd, prompt, f, {
      stepRange: heatStepRange(parseSampling(f, '--sampling-steps').steps, undefined, 'segment'),
      resolutions: defaultHeatResolutions(sd),
    });
    const [, , h, w] = run.image.shape as [number, number, number, number];
    const map = run.heatMap.wordHeatMap(f.word);
    const mask = attentionMask(map, { size: [h, w], threshold, normalize: f.normalize });
    writeGrayPng(f.out, mask);
    const area = mask.toArray().reduce((a, b) => a + b, 0) / (h * w);
    log(`wrote ${f.out} (${w}×${h}, '${f.word}' covers ${(100 * area).toFixed(1)}%)`);
    if (f.preview) {
      const heat = normalizedAttention(map, { size: [h, w], normalize: f.normalize });
      const tiles = [run.image, overlayHeatMap(run.image, heat), mask.mul(2).sub(1).reshape([1, 1, h, w])];
      const grid = imageGrid(
        tiles.map((t) => (t.shape[1] === 1 ? t.expand([1, 3, h, w]) : t)),
        { labels: ['image', f.word, 'mask'], zoom: tileZoom(w) },
      );
      writePng(f.preview, grid);
      log(`wrote ${f.preview}`);
    }
  });
}

/** --threshold: a value in [0, 1] (the map is normalised to it); outside, the mask is all or nothing. */
function threshold01(v: string): number {
  try {
    return floatIn('--threshold', UNIT)(v);
  } catch {
    throw new Error(`--threshold must be 'otsu' or a number from 0 to 1, got '${v}'`);
  }
}
