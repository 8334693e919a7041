// The guidance options of `attnkit generate` and `attnkit maps`: score-driven guidance (--excite: Attend-and-
// Excite; --box: layout guidance or BoxDiff) and conditional alignment (--paint: paint-with-words). Every word,
// box and mask is checked against the prompt and the image size before anything is generated.

import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { Controller } from '../attention/hooks.js';
import { readPng } from '../io/png.js';
import { SHAPES } from '../lab/index.js';
import { AttendAndExcite, nounSubjects } from '../methods/application/attend-and-excite.js';
import { BoxDiff } from '../methods/application/box-diff.js';
import { LayoutGuidance } from '../methods/application/layout-guidance.js';
import type { Box, LatentGuidance, WordBox, WordRef } from '../methods/application/score-guidance.js';
import { type PaintedWord, PaintWithWords, type RegionMask } from '../methods/map/paint-with-words.js';
import type { StableDiffusion } from '../pipelines/stable-diffusion.js';
import { checkInputFile } from './paths.js';

/** The guidance flags as commander parses them. */
export interface GuidanceFlags {
  /** true: the prompt's nouns (the Shapes grammar's shapes); else comma-separated words or word indices. */
  excite?: boolean | string;
  box?: WordBox[];
  boxMethod?: string;
  boxScale?: string;
  boxSides?: string;
  paint?: PaintSpec[];
  paintScale?: string;
}

/** One `--paint` value: a word, its region (a PNG's path or a box) and its weight. */
export interface PaintSpec {
  word: string;
  region: string | Box;
  weight: number;
}

const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;

/** A word or a word index ("3"). */
function wordRef(s: string): WordRef {
  return /^\d+$/.test(s) ? Number(s) : s;
}

/** "x0,y0,x1,y1" → a box of fractions, or undefined when `s` is not four numbers. */
function parseBoxText(s: string): Box | undefined {
  const parts = s.split(',');
  if (parts.length !== 4 || !parts.every((p) => NUMBER.test(p.trim()))) return undefined;
  return parts.map((p) => Number(p)) as unknown as Box;
}

/** Parses `word=x0,y0,x1,y1` (fractions of the image). The box's range is checked by the method. */
export function parseBoxSpec(v: string): WordBox {
  const i = v.indexOf('=');
  const box = i > 0 ? parseBoxText(v.slice(i + 1)) : undefined;
  if (!box)
    throw new InvalidArgumentError(`--box expects word=x0,y0,x1,y1 (fractions of the image), got '${v}'`);
  return { word: wordRef(v.slice(0, i)), box };
}

/** Parses `word=mask.png[:weight]` or `word=x0,y0,x1,y1[:weight]` (weight default 1). */
export function parsePaintSpec(v: string): PaintSpec {
  const i = v.indexOf('=');
  if (i <= 0 || i === v.length - 1) {
    throw new InvalidArgumentError(
      `--paint expects word=mask.png[:weight] or word=x0,y0,x1,y1[:weight], got '${v}'`,
    );
  }
  let region = v.slice(i + 1);
  let weight = 1;
  const j = region.lastIndexOf(':');
  if (j >= 0 && NUMBER.test(region.slice(j + 1))) {
    weight = Number(region.slice(j + 1));
    region = region.slice(0, j);
  }
  if (!(weight >= 0 && weight <= 100))
    throw new InvalidArgumentError(`--paint weight must be from 0 to 100, got ${weight}`);
  return { word: v.slice(0, i), region: parseBoxText(region) ?? region, weight };
}

/** Adds --excite, --box, --box-method, --paint and --paint-scale to a command. */
export function addGuidanceOptions(cmd: Command): Command {
  return cmd
    .option(
      '--excite [words]',
      "Attend-and-Excite on these subject words (comma-separated; word indices too); alone: the prompt's shape nouns",
    )
    .option(
      '--box <word=x0,y0,x1,y1>',
      'place a word’s object in a box (fractions of the image); repeatable',
      (v: string, prev: WordBox[] = []) => [...prev, parseBoxSpec(v)],
    )
    .option(
      '--box-method <name>',
      'how --box guides: layout (Chen et al., backward guidance) | boxdiff',
      'layout',
    )
    .option(
      '--box-scale <f>',
      "layout guidance's loss scale (default the reference's 30; the built-in model: 100 with --box-sides 16,8)",
    )
    .option('--box-sides <list>', 'the map sides layout guidance reads, e.g. 16,8 (default scaled from SD)')
    .option(
      '--paint <word=mask.png[:weight]>',
      'paint-with-words: the word’s region as a mask PNG of the image’s size (white = inside) or a box; repeatable',
      (v: string, prev: PaintSpec[] = []) => [...prev, parsePaintSpec(v)],
    )
    .option('--paint-scale <w>', 'w of paint-with-words’ bias w · log(1 + σ) · max(QKᵀ)', '0.4');
}

/** A mask PNG as a region: its grey level (mean of the channels) in [0, 1]. */
function readMask(path: string): RegionMask {
  checkInputFile(path, '--paint');
  const image = readPng(path); // (1, 3, H, W) in [-1, 1]
  const [, , height, width] = image.shape as [number, number, number, number];
  const grey = image
    .mean({ axes: [1] })
    .add(1)
    .mul(0.5)
    .toArray(); // (1, H, W)
  return { width, height, data: Float32Array.from(grey, (v) => Math.min(1, Math.max(0, v))) };
}

/**
 * The guidance and controllers the flags ask for, made (and so checked) before generation: a word not in
 * the prompt, a box outside [0, 1] or inverted, a mask not of the image's size are errors naming them.
 */
export function guidanceFromFlags(
  sd: StableDiffusion,
  prompt: string,
  f: GuidanceFlags,
  imageSize: readonly [number, number],
): { guidance: LatentGuidance[]; controllers: Controller[] } {
  const guidance: LatentGuidance[] = [];
  const controllers: Controller[] = [];
  const tokenizer = sd.tokenizer;
  if (f.excite !== undefined && f.excite !== false) {
    const subjects =
      f.excite === true
        ? nounSubjects(tokenizer, prompt, SHAPES)
        : f.excite
            .split(',')
            .map((w) => w.trim())
            .filter((w) => w !== '')
            .map(wordRef);
    if (subjects.length === 0)
      throw new Error('--excite: give subject words, or no value for the shape nouns');
    guidance.push(new AttendAndExcite({ tokenizer, prompts: prompt, subjects }));
  }
  if (f.box && f.box.length > 0) {
    const method = f.boxMethod ?? 'layout';
    const lossScale = f.boxScale === undefined ? undefined : Number(f.boxScale);
    if (lossScale !== undefined && !(lossScale >= 0 && lossScale <= 10_000))
      throw new Error(`--box-scale must be a number from 0 to 10000, got '${f.boxScale}'`);
    const sides = f.boxSides?.split(',').map((v) => Number(v.trim()));
    if (sides?.some((v) => !Number.isInteger(v) || v < 1 || v > 4096))
      throw new Error(`--box-sides: map sides as integers, e.g. 16,8; got '${f.boxSides}'`);
    const tuned = { ...(lossScale !== undefined ? { lossScale } : {}), ...(sides ? { sides } : {}) };
    if (method === 'layout')
      guidance.push(new LayoutGuidance({ tokenizer, prompts: prompt, boxes: f.box, ...tuned }));
    else if (method === 'boxdiff') guidance.push(new BoxDiff({ tokenizer, prompts: prompt, boxes: f.box }));
    else throw new Error(`--box-method must be layout or boxdiff, got '${method}'`);
  }
  if (f.paint && f.paint.length > 0) {
    const scale = Number(f.paintScale ?? 0.4);
    if (!(scale >= 0 && scale <= 100))
      throw new Error(`--paint-scale must be from 0 to 100, got '${f.paintScale}'`);
    const words: PaintedWord[] = f.paint.map((p) => ({
      word: wordRef(p.word),
      region: typeof p.region === 'string' ? readMask(p.region) : p.region,
      weight: p.weight,
    }));
    controllers.push(
      new PaintWithWords({
        tokenizer,
        prompts: prompt,
        words,
        imageSize,
        alphasCumprod: sd.scheduler().alphasCumprod,
        scale,
      }),
    );
  }
  return { guidance, controllers };
}
