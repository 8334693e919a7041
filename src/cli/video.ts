// attnkit video "<prompt>" — a clip from a text-to-image model: Text2Video-Zero (cross-frame attention and
// motion dynamics) or independent frames; an animated GIF and a strip of the frames.
//
// The motion is written in the prompt ("a red circle moving right"): "moving <direction>" after the object.
// With the built-in Shapes model the prompt is read by the Moving Shapes grammar, so a motion word after
// anything but an object, or an object the Shapes world does not have, is an error naming the word; with
// another model any "moving <direction>" phrase is taken out of the prompt and given to the method.

import type { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { writeOutput } from '../io/output.js';
import { encodePng } from '../io/png.js';
import { progressBar } from '../io/progress.js';
import { parseMotionCaption } from '../lab/motion/caption.js';
import { measureVideoEdit } from '../lab/motion/edit.js';
import { measureVideo } from '../lab/motion/measure.js';
import type { ClipSummary } from '../lab/motion/metrics.js';
import { T2V_ZERO_T0, WARP_SAMPLINGS, type WarpSampling } from '../methods/feature/cross-frame-attention.js';
import { MotionAdapter } from '../models/motion-module.js';
import {
  editVideo,
  encodeGif,
  frameStrip,
  generateVideo,
  MAX_VIDEO_FRAMES,
  MOTION_DIRECTIONS,
  type MotionDirection,
  VIDEO_METHODS,
  type VideoMethod,
} from '../pipelines/video.js';
import { concat, type Tensor } from '../tensor/index.js';
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
import { reportVideoEdit } from './video-eval-edit.js';

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
  adapter?: string;
  edit?: string;
  source?: string;
  warp: string;
  t1?: number;
}

/**
 * The target of a video edit: its prompt (motion words kept, for the motion modules) and its text without them.
 * A motion phrase in the target must ask for the source's motion: the edit changes what is drawn, not how it moves.
 */
function editTarget(
  target: string,
  source: { text: string; direction?: MotionDirection },
  model: Parameters<typeof resolveModel>[0],
): { prompt: string; text: string } {
  const m = motionOfPrompt(target, resolveModel(model, () => {}) === BUILTIN_MODEL);
  if (m.direction !== undefined && m.direction !== source.direction) {
    throw new Error(
      `video: --edit asks for motion "${m.direction}" but the prompt for ${source.direction ? `"${source.direction}"` : 'none'}; ` +
        "an edit keeps the motion, so give the target the prompt's motion phrase or none",
    );
  }
  if (m.text === source.text)
    throw new Error(`video: --edit "${target}" is the prompt itself; change a word (e.g. a colour)`);
  return { prompt: target, text: m.text };
}

/** The --warp flag checked. */
function warpOf(flag: string): WarpSampling {
  if (!(WARP_SAMPLINGS as readonly string[]).includes(flag))
    throw new Error(`video: --warp must be one of ${WARP_SAMPLINGS.join(', ')}, got '${flag}'`);
  return flag as WarpSampling;
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
    .option('--height <px>', 'frame height', intIn('--height', IMAGE_SIDE))
    .option(
      '--edit <target>',
      'Video-P2P: the clip edited to this prompt (a word swapped); --out gets the edit',
    )
    .option('--source <file>', 'with --edit: also write the source clip as a GIF')
    .option(
      '--t1 <t>',
      'Text2Video-Zero: re-noise the moved frames from t0 back to t1 and sample again from there (reference 941)',
      intIn('--t1', { min: 1, max: 999 }),
    )
    .option('--warp <mode>', `motion warp sampling: ${WARP_SAMPLINGS.join(' | ')}`, 'nearest-reflection');
  addSamplingOptions(cmd, { steps: 25, guidance: 5 });
  addRunOptions(cmd).action((prompt: string, f: VideoFlags) => {
    if (!(VIDEO_METHODS as readonly string[]).includes(f.method))
      throw new Error(`video: --method must be one of ${VIDEO_METHODS.join(', ')}, got '${f.method}'`);
    if (f.source !== undefined && f.edit === undefined)
      throw new Error('video: --source writes the source clip of an edit; give --edit "<target prompt>"');
    const run = startRun(f, { '--out': f.out, '--strip': f.strip, '--source': f.source });
    const { seed, steps, guidance } = parseSampling(f);
    const model = parseModel(f);
    const motion = motionOfPrompt(prompt, resolveModel(model, () => {}) === BUILTIN_MODEL);
    if ((f.method === 'motion') !== (f.adapter !== undefined))
      throw new Error(
        'video: --method motion takes a MotionAdapter folder (--adapter <dir>), and --adapter only goes with it',
      );
    const target = f.edit === undefined ? undefined : editTarget(f.edit, motion, model);
    const motionAdapter = f.adapter ? MotionAdapter.fromPretrained(f.adapter) : undefined;
    const t0 = performance.now();
    const sd = loadModel(model, log, [motion.text, ...(target ? [target.text] : [])], parseSingleFile(f));
    const bar = progressBar('denoising', steps, { quiet: run.quiet });
    const options = {
      prompt: f.method === 'motion' ? prompt : motion.text,
      ...(motionAdapter ? { motionAdapter } : {}),
      frames: f.frames,
      method: f.method as VideoMethod,
      ...(motion.direction ? { direction: motion.direction } : {}),
      ...(f.strength !== undefined ? { strength: f.strength } : {}),
      t0: f.t0,
      ...(f.t1 !== undefined ? { t1: f.t1 } : {}),
      warp: warpOf(f.warp),
      seed,
      steps,
      guidanceScale: guidance,
      width: f.width,
      height: f.height,
      onStep: (e: { step: number }) => bar.update(e.step + 1),
    };
    let frames: Tensor;
    let strip: Tensor;
    if (target) {
      // Video-P2P: the source clip and the edited clip from one noise; the strip shows the source above the edit
      const edit = editVideo(sd, { ...options, target: f.method === 'motion' ? target.prompt : target.text });
      frames = edit.edited;
      strip = concat([frameStrip(edit.source), frameStrip(edit.edited)], 2);
      if (f.source) writeFileAtomic(f.source, encodeGif(edit.source, f.delay));
    } else {
      frames = generateVideo(sd, options).frames;
      strip = frameStrip(frames);
    }
    bar.stop();
    writeFileAtomic(f.out, encodeGif(frames, f.delay));
    if (f.strip) writeFileAtomic(f.strip, encodePng(strip));
    log(
      `wrote ${f.out}${f.source ? `, ${f.source}` : ''}${f.strip ? ` and ${f.strip}` : ''} (${target ? `edited to "${target.text}", ` : ''}${f.frames} frames of ${frames.shape[3]}×${frames.shape[2]}, ` +
        `${motion.direction ? `moving ${motion.direction}` : 'no motion'}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
  });
}

interface VideoEvalFlags {
  clips: number;
  start: number;
  methods: string;
  t0: number;
  strength?: number;
  shared: boolean;
  json?: string;
  adapter?: string;
  edit: boolean;
  crossReplace: number;
  selfReplace: number;
  warp: string;
  t1?: number;
}

const pct = (r: { correct: number; total: number; rate: number | null }) =>
  r.rate === null ? '—' : `${(100 * r.rate).toFixed(1)}% (${r.correct}/${r.total})`;

/** One markdown row of a method's clip summary. */
export function summaryRow(name: string, s: ClipSummary): string {
  const num = (x: number | null, d: number) => (x === null ? '—' : x.toFixed(d));
  return `| ${name} | ${pct(s.identity)} | ${pct(s.direction)} | ${pct(s.directionOneObject)} | ${num(s.straightness, 3)} | ${pct(s.colorShapeOneObject)} | ${num(s.background, 2)} |`;
}

/** attnkit video-eval: the video methods on held-out Moving Shapes clips, clip metrics per method. */
export function registerVideoEval(program: Command): void {
  const cmd = program
    .command('video-eval')
    .description(
      'measure the video methods on held-out Moving Shapes clips (identity, direction, background)',
    );
  addModelOption(cmd)
    .option('--clips <n>', 'clips', intIn('--clips', { min: 1, max: 10_000 }), 40)
    .option(
      '--start <i>',
      'first held-out index (dev: e.g. 100000)',
      intIn('--start', { min: 0, max: 1e9 }),
      0,
    )
    .option('--methods <list>', `comma-separated: ${VIDEO_METHODS.join(', ')}`, VIDEO_METHODS.join(','))
    .option('--t0 <t>', 'timestep of the motion warp', intIn('--t0', { min: 1, max: 999 }), T2V_ZERO_T0)
    .option(
      '--strength <f>',
      'motion per frame, fraction of the side',
      floatIn('--strength', { min: 0, max: 0.5 }),
    )
    .option(
      '--shared',
      'clips whose moving objects all go one way (what a global translation can follow)',
      false,
    )
    .option('--json <file>', 'write the settings, summaries and per-clip results')
    .option('--adapter <dir>', "MotionAdapter folder for the method 'motion'")
    .option(
      '--t1 <t>',
      'Text2Video-Zero: re-noise the moved frames from t0 back to t1 and sample again from there (reference 941)',
      intIn('--t1', { min: 1, max: 999 }),
    )
    .option('--warp <mode>', `motion warp sampling: ${WARP_SAMPLINGS.join(' | ')}`, 'nearest-reflection')
    .option(
      '--edit',
      "Video-P2P's word swap of object 0's colour instead (methods default t2v-zero,motion-only)",
      false,
    )
    .option(
      '--cross-replace <f>',
      'with --edit: fraction of steps cross-attention is replaced',
      floatIn('--cross-replace', { min: 0, max: 1 }),
      0.8,
    )
    .option(
      '--self-replace <f>',
      'with --edit: fraction of steps self-attention is replaced',
      floatIn('--self-replace', { min: 0, max: 1 }),
      0.4,
    );
  addSamplingOptions(cmd, { seed: false, steps: 25, guidance: 5 });
  addRunOptions(cmd).action((f: VideoEvalFlags, command: Command) => {
    if (f.edit && command.getOptionValueSource('methods') === 'default') f.methods = 't2v-zero,motion-only';
    const methods = f.methods.split(',').map((m) => m.trim());
    const bad = methods.filter((m) => !(VIDEO_METHODS as readonly string[]).includes(m));
    if (bad.length > 0 || methods.length === 0)
      throw new Error(`video-eval: --methods takes ${VIDEO_METHODS.join(', ')}, got '${f.methods}'`);
    if (f.edit && f.t1 !== undefined) throw new Error('video-eval: --t1 is not built for --edit (Video-P2P)');
    const run = startRun(f, { '--json': f.json });
    const { steps, guidance } = parseSampling(f);
    const sd = loadModel(parseModel(f), log, [], parseSingleFile(f));
    const bar = progressBar('clips', f.clips * methods.length, { quiet: run.quiet });
    const t0 = performance.now();
    // the clips, sampling and motion settings both measurements share
    const common = {
      clips: f.clips,
      start: f.start,
      methods: methods as VideoMethod[],
      steps,
      guidanceScale: guidance,
      t0: f.t0,
      ...(f.strength !== undefined ? { strength: f.strength } : {}),
      sharedDirection: f.shared,
      warp: warpOf(f.warp),
      onClip: (done: number) => bar.update(done),
    };
    if (f.edit) {
      const e = measureVideoEdit(sd, {
        ...common,
        crossReplaceSteps: f.crossReplace,
        selfReplaceSteps: f.selfReplace,
      });
      bar.stop();
      reportVideoEdit(e, (performance.now() - t0) / 1000, f.json);
      return;
    }
    const m = measureVideo(sd, {
      ...common,
      ...(f.t1 !== undefined ? { t1: f.t1 } : {}),
      ...(f.adapter ? { motionAdapter: MotionAdapter.fromPretrained(f.adapter) } : {}),
    });
    bar.stop();
    const seconds = (performance.now() - t0) / 1000;
    const lines = [
      `${f.clips} clips from held-out index ${f.start}, ${steps} steps, guidance ${guidance}, t0 ${f.t0}${f.t1 !== undefined ? `, t1 ${f.t1}` : ''}, warp ${f.warp}, ${seconds.toFixed(0)} s`,
      '| method | identity (clips) | direction (objects) | direction, 1-object clips | straightness | 1-object colour + shape per frame | background change |',
      '|---|---|---|---|---|---|---|',
      ...methods.map((name) => summaryRow(name, m.summary[name as VideoMethod]!)),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    if (f.json) {
      const rows = m.rows.map((r) => ({
        seed: r.seed,
        caption: r.caption,
        method: r.method,
        identity: r.report.identity,
        background: r.report.background,
        trajectories: r.report.objects.map((o) => o.trajectory && { ...o.trajectory }),
      }));
      writeOutput(
        f.json,
        `${JSON.stringify({ settings: m.settings, seconds, summary: m.summary, rows }, null, 1)}\n`,
      );
    }
  });
}
