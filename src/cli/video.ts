// attnkit video "<prompt>" — a clip from a text-to-image model: Text2Video-Zero (cross-frame attention and
// motion dynamics) or independent frames; an animated GIF and a strip of the frames.
//
// The motion is written in the prompt ("a red circle moving right"): "moving <direction>" after the object.
// With the built-in Shapes model the prompt is read by the Moving Shapes grammar, so a motion word after
// anything but an object, or an object the Shapes world does not have, is an error naming the word; with
// another model any "moving <direction>" phrase is taken out of the prompt and given to the method.

import type { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { encodePng } from '../io/png.js';
import { progressBar } from '../io/progress.js';
import { parseMotionCaption } from '../lab/motion/caption.js';
import { T2V_ZERO_T0 } from '../methods/feature/cross-frame-attention.js';
import {
  encodeGif,
  frameStrip,
  generateVideo,
  MAX_VIDEO_FRAMES,
  MOTION_DIRECTIONS,
  type MotionDirection,
  VIDEO_METHODS,
  type VideoMethod,
} from '../pipelines/video.js';
import { floatIn, intIn } from './args.js';
import { IMAGE_SIDE } from './limits.js';
import { BUILTIN_MODEL, loadModel, resolveModel } from './models.js';
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

interface VideoFlags {
  out: string;
  strip?: string;
  frames: number;
  method: string;
  strength?: number;
  t0: number;
  width?: number;
  height?: number;
  delay: number;
}

/** The prompt without its motion phrases, and the one direction they give (none: the content stays). */
export function motionOfPrompt(
  prompt: string,
  shapesGrammar: boolean,
): { text: string; direction?: MotionDirection } {
  let text: string;
  let directions: string[];
  if (shapesGrammar) {
    const m = parseMotionCaption(prompt);
    text = m.stillText;
    directions = m.motions.filter((d) => d !== null);
  } else {
    const words = prompt.trim().split(/\s+/);
    const kept: string[] = [];
    directions = [];
    for (let i = 0; i < words.length; i++) {
      if (words[i]!.toLowerCase() !== 'moving') {
        kept.push(words[i]!);
        continue;
      }
      const d = words[i + 1]?.toLowerCase().replace(/[.,;!]$/, '');
      if (kept.length === 0 || d === undefined || !(MOTION_DIRECTIONS as readonly string[]).includes(d)) {
        throw new Error(
          `video: "moving" (word ${i}) must follow an object and be followed by a direction ` +
            `(${MOTION_DIRECTIONS.join(', ')}), got "${words.slice(Math.max(0, i - 1), i + 2).join(' ')}"`,
        );
      }
      directions.push(d);
      i++;
    }
    text = kept.join(' ');
  }
  const distinct = [...new Set(directions)];
  if (distinct.length > 1) {
    throw new Error(
      `video: the prompt asks for several directions (${distinct.join(', ')}); Text2Video-Zero moves the whole ` +
        'frame one way, so give one direction',
    );
  }
  return { text, ...(distinct[0] ? { direction: distinct[0] as MotionDirection } : {}) };
}

export function registerVideo(program: Command): void {
  const cmd = program
    .command('video')
    .description('generate a clip from a prompt ("a red circle moving right"): animated GIF + frame strip')
    .argument('<prompt>', 'the text prompt, with "moving <left|right|up|down>" after the object that moves');
  addModelOption(cmd)
    .option('-o, --out <file>', 'output GIF', 'clip.gif')
    .option('--strip <file>', 'also write the frames side by side as a PNG')
    .option('--frames <n>', 'frames in the clip', intIn('--frames', { min: 2, max: MAX_VIDEO_FRAMES }), 8)
    .option('--method <name>', `how frames are tied together: ${VIDEO_METHODS.join(' | ')}`, 't2v-zero')
    .option(
      '--strength <f>',
      'motion per frame as a fraction of the image side (default 12/512, Text2Video-Zero’s)',
      floatIn('--strength', { min: 0, max: 0.5 }),
    )
    .option(
      '--t0 <t>',
      'timestep at which the frames are translated (motion dynamics)',
      intIn('--t0', { min: 1, max: 999 }),
      T2V_ZERO_T0,
    )
    .option(
      '--delay <ms>',
      'milliseconds per frame in the GIF',
      intIn('--delay', { min: 0, max: 65_530 }),
      125,
    )
    .option('--width <px>', 'frame width', intIn('--width', IMAGE_SIDE))
    .option('--height <px>', 'frame height', intIn('--height', IMAGE_SIDE));
  addSamplingOptions(cmd, { steps: 25, guidance: 5 });
  addRunOptions(cmd).action((prompt: string, f: VideoFlags) => {
    if (!(VIDEO_METHODS as readonly string[]).includes(f.method))
      throw new Error(`video: --method must be one of ${VIDEO_METHODS.join(', ')}, got '${f.method}'`);
    const run = startRun(f, { '--out': f.out, '--strip': f.strip });
    const { seed, steps, guidance } = parseSampling(f);
    const model = parseModel(f);
    const motion = motionOfPrompt(prompt, resolveModel(model, () => {}) === BUILTIN_MODEL);
    const t0 = performance.now();
    const sd = loadModel(model, log, [motion.text], parseSingleFile(f));
    const bar = progressBar('denoising', steps, { quiet: run.quiet });
    const { frames } = generateVideo(sd, {
      prompt: motion.text,
      frames: f.frames,
      method: f.method as VideoMethod,
      ...(motion.direction ? { direction: motion.direction } : {}),
      ...(f.strength !== undefined ? { strength: f.strength } : {}),
      t0: f.t0,
      seed,
      steps,
      guidanceScale: guidance,
      width: f.width,
      height: f.height,
      onStep: (e) => bar.update(e.step + 1),
    });
    bar.stop();
    writeFileAtomic(f.out, encodeGif(frames, f.delay));
    if (f.strip) writeFileAtomic(f.strip, encodePng(frameStrip(frames)));
    log(
      `wrote ${f.out}${f.strip ? ` and ${f.strip}` : ''} (${f.frames} frames of ${frames.shape[3]}×${frames.shape[2]}, ` +
        `${motion.direction ? `moving ${motion.direction}` : 'no motion'}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
  });
}
