// attnkit maps "<prompt>" — DAAM heat-maps of every word of the prompt over the generated image (or a given one,
// --image), as a grid.

import type { Command } from 'commander';
import { readPng, writePng } from '../io/png.js';
import { progressBar } from '../io/progress.js';
import { type ColorMapName, colorize, imageGrid, overlayHeatMap } from '../io/render.js';
import { expandAs } from '../methods/map/heatmap.js';
import { resize2d } from '../methods/map/upsample.js';
import {
  generateWithHeatMaps,
  type HeatMapRun,
  type HeatMapRunOptions,
  imageHeatMaps,
} from '../pipelines/heatmaps.js';
import type { StableDiffusion } from '../pipelines/stable-diffusion.js';
import type { Tensor } from '../tensor/index.js';
import { intIn } from './args.js';
import { addGuidanceOptions, type GuidanceFlags, guidanceFromFlags } from './guidance-options.js';
import { COMPONENTS } from './limits.js';
import { loadModel } from './models.js';
import {
  addModelOption,
  addRunOptions,
  addSamplingOptions,
  booleanFlag,
  log,
  parseModel,
  parseSampling,
  parseSingleFile,
  startRun,
} from './options.js';
import { checkInputFile } from './paths.js';

/** The flags `maps` and `segment` share (besides --seed, --sampling-steps, --guidance and -q). */
export interface HeatMapFlags {
  image?: string;
  steps?: string;
  res?: string;
}

interface MapsFlags extends HeatMapFlags, GuidanceFlags {
  out: string;
  tokens?: boolean;
  normalize?: boolean;
  colormap: ColorMapName;
  selfComponents?: number;
}

/** "a:b" → [a, b) over `n` steps; either end may be left out ("5:", ":10"). */
export function parseStepRange(s: string, n: number, flag = '--steps'): [number, number] {
  const m = /^(\d*):(\d*)$/.exec(s.trim());
  if (!m) throw new Error(`${flag} expects a range a:b of step indices, got '${s}'`);
  const a = m[1] ? Number(m[1]) : 0;
  const b = m[2] ? Number(m[2]) : n;
  if (a >= b || a >= n) throw new Error(`${flag} ${s}: the range is empty for ${n} sampling steps`);
  return [a, b];
}

/** "16,8" → [16, 8]. */
export function parseIntList(s: string, flag: string): number[] {
  const out = s.split(',').map((x) => Number(x.trim()));
  if (out.some((v) => !Number.isInteger(v) || v <= 0))
    throw new Error(`${flag} expects sizes like 16,8; got '${s}'`);
  return out;
}

/** Integer zoom that makes a tile at least 128 px wide. */
export function tileZoom(width: number): number {
  return Math.max(1, Math.ceil(128 / width));
}

/**
 * The sides of maps of an image `height` latent pixels high that stand where `sides` stand at the model's own
 * latent side `base`: the side base / 2^k (after k downsamplings) becomes `height` halved k times, rounding up
 * as a stride-2 convolution with padding 1 does. Sides that are not base / 2^k are kept as given.
 */
export function sidesAtHeight(sides: readonly number[], base: number, height: number): number[] {
  return sides.map((side) => {
    let k = 0;
    while (base / 2 ** k > side) k++;
    if (base / 2 ** k !== side) return side;
    let h = height;
    for (let i = 0; i < k; i++) h = Math.ceil(h / 2);
    return h;
  });
}

/** The option that gives `maps` and `segment` an image to read instead of a generated one. */
export const IMAGE_OPTION = [
  '--image <png>',
  'maps of this image instead of a generated one: DDIM-inverted with the prompt over --sampling-steps ' +
    '(--seed and --guidance are then unused)',
] as const;

/**
 * A generated image's heat-maps, or with --image a given one's, with a progress bar. `opts.stepRange` and
 * `opts.resolutions` stand where --steps and --res are not given (else every step and every side).
 */
export function runHeatMaps(
  sd: StableDiffusion,
  prompt: string,
  f: HeatMapFlags,
  opts: Pick<
    HeatMapRunOptions,
    'stepRange' | 'resolutions' | 'selfComponents' | 'guidance' | 'controllers'
  > = {},
): HeatMapRun {
  const s = parseSampling(f, '--sampling-steps');
  const quiet = booleanFlag(f, 'quiet');
  const common = {
    prompt,
    stepRange: f.steps ? parseStepRange(f.steps, s.steps) : opts.stepRange,
    resolutions: f.res ? parseIntList(f.res, '--res') : opts.resolutions,
    selfComponents: opts.selfComponents,
  };
  const bar = progressBar(f.image ? 'inverting' : 'denoising', s.steps, { quiet });
  try {
    if (f.image) {
      const image = readPng(f.image);
      // default sides name the model's own image size; at another size the same layers have other sides
      const resolutions =
        !f.res && common.resolutions
          ? sidesAtHeight(
              common.resolutions,
              sd.unet.config.sampleSize,
              (image.shape[2] as number) / sd.vae.scaleFactor,
            )
          : common.resolutions;
      return imageHeatMaps(sd, {
        ...common,
        resolutions,
        image,
        steps: s.steps,
        onStep: (s) => bar.update(s + 1),
      });
    }
    return generateWithHeatMaps(sd, {
      ...common,
      guidance: opts.guidance,
      controllers: opts.controllers,
      seed: s.seed,
      steps: s.steps,
      guidanceScale: s.guidance,
      onStep: (e) => bar.update(e.step + 1),
    });
  } finally {
    bar.stop();
  }
}

export function registerMaps(program: Command): void {
  const cmd = program
    .command('maps')
    .description('cross-attention heat-maps (DAAM) of each word of a prompt, over the generated image')
    .argument('<prompt>', 'the text prompt');
  addModelOption(cmd)
    .option(...IMAGE_OPTION)
    .option('-o, --out <file>', 'output PNG (a grid: the image, then one overlay per word)', 'maps.png');
  addSamplingOptions(cmd, { stepsFlag: '--sampling-steps', steps: 25, guidance: 7.5 })
    .option('--steps <a:b>', 'aggregate the maps of denoising steps a (incl.) to b (excl.); default all')
    .option('--res <sizes>', 'aggregate only maps of these sides, e.g. 16,8; default all')
    .option('--tokens', 'one tile per token (bos and eos included) instead of per word')
    .option('--normalize', "DAAM's normalisation: each token's map over the sum of the words' maps")
    .option('--colormap <name>', 'jet | viridis | gray', 'jet')
    .option(
      '--self-components <k>',
      "also the top k components of the self-attention maps (P2P's view)",
      intIn('--self-components', COMPONENTS),
    );
  addGuidanceOptions(cmd);
  addRunOptions(cmd).action((prompt: string, f: MapsFlags) => {
    if (f.image) checkInputFile(f.image, '--image');
    const guided = f.excite !== undefined || !!f.box?.length || !!f.paint?.length;
    if (f.image && guided)
      throw new Error('--excite, --box and --paint guide a generation; drop them or --image');
    startRun(f, { '--out': f.out });
    const sd = loadModel(parseModel(f), log, [prompt], parseSingleFile(f));
    const steer = guidanceFromFlags(sd, prompt, f, [sd.defaultSize, sd.defaultSize]);
    const run = runHeatMaps(sd, prompt, f, {
      selfComponents: f.selfComponents ? { maxCom: f.selfComponents } : undefined,
      ...steer,
    });
    const heat = f.normalize ? run.heatMap.normalized() : run.heatMap;
    const [, , h, w] = run.image.shape as [number, number, number, number];
    const maps: { label: string; map: Tensor }[] = f.tokens
      ? Array.from({ length: heat.numTokens + 2 }, (_, i) => ({
          label: tokenLabel(sd, prompt, i),
          map: heat.token(i),
        }))
      : heat.wordHeatMaps().map((m) => ({ label: m.word, map: m.map }));
    const tiles = [
      run.image,
      ...maps.map((m) => overlayHeatMap(run.image, expandAs(m.map, [h, w]), { colorMap: f.colormap })),
    ];
    for (const c of run.selfComponents ?? [])
      tiles.push(colorize(resize2d(c, [h, w], 'nearest'), f.colormap));
    const labels = [
      'image',
      ...maps.map((m) => m.label),
      ...(run.selfComponents ?? []).map((_, i) => `self ${i + 1}`),
    ];
    writePng(f.out, imageGrid(tiles, { cols: Math.min(tiles.length, 6), labels, zoom: tileZoom(w) }));
    log(
      `wrote ${f.out} (${maps.length} ${f.tokens ? 'tokens' : 'words'}, ${run.store.numSteps} steps aggregated)`,
    );
  });
}

function tokenLabel(sd: StableDiffusion, prompt: string, i: number): string {
  const id = sd.tokenizer.call(prompt, { onWarning: () => {} }).ids[0]![i]!;
  if (id === sd.tokenizer.bosTokenId) return '<bos>';
  if (id === sd.tokenizer.eosTokenId) return '<eos>';
  return sd.tokenizer.decode([id]);
}
