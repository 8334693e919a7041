// The options several `attnkit` commands share, declared once. Each group has a function that adds its options
// to a commander Command and a parser that reads their values back out of the options commander hands the
// action, checked, as a typed object. The readers at the bottom serve the groups and any command-specific
// option (the edit methods' own options): nothing in the CLI casts a value it reads out of those options.

import type { Command } from 'commander';
import { setThreads } from '../kernels/ort.js';
import { floatIn, intIn } from './args.js';
import { GUIDANCE, SEED, STEPS, THREADS } from './limits.js';
import { checkOutputPaths } from './paths.js';

/** Progress and notes go to stderr, one line each; results go to stdout. */
export function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

// ─── -m, --model ───────────────────────────────────────────────────────────────────────────────────────

export function addModelOption(cmd: Command): Command {
  return cmd
    .option(
      '-m, --model <path>',
      'diffusers model folder, or an SD 1.x / 2.x single-file checkpoint (.safetensors) (default: the built-in Shapes model)',
    )
    .option(
      '--tokenizer <dir>',
      'CLIP tokenizer folder (vocab.json, merges.txt) for a single-file --model, which holds none ' +
        '(default: $ATTNKIT_TOKENIZER, else tokenizer/ beside the file)',
    )
    .option(
      '--model-config <file>',
      'for a single-file --model: a JSON file of diffusers config values the weights cannot tell, ' +
        '{"unet": {…}, "vae": {…}, "text_encoder": {…}, "scheduler": {…}} (e.g. an SD 2-base file: ' +
        '{"unet": {"sample_size": 64}, "scheduler": {"prediction_type": "epsilon"}})',
    );
}

/** --model: the folder or file given, or undefined for the built-in model (models.ts resolves it). */
export function parseModel(flags: object): string | undefined {
  return stringFlag(flags, 'model');
}

/** --tokenizer and --model-config: what a single-file --model needs besides its weights, if given. */
export function parseSingleFile(flags: object): { tokenizer?: string; config?: string } {
  return { tokenizer: stringFlag(flags, 'tokenizer'), config: stringFlag(flags, 'modelConfig') };
}

// ─── --seed, --steps, --guidance ───────────────────────────────────────────────────────────────────────

export interface SamplingDefaults {
  /** Adds --seed (random seed, default 0) before the steps (default true). */
  seed?: boolean;
  /** The steps option's name (default --steps; maps and segment say --sampling-steps). */
  stepsFlag?: '--steps' | '--sampling-steps';
  stepsHelp?: string;
  steps: number;
  guidance: number;
}

export interface Sampling {
  seed: number;
  steps: number;
  guidance: number;
}

/** --seed, the steps and --guidance, in that order. */
export function addSamplingOptions(cmd: Command, d: SamplingDefaults): Command {
  if (d.seed !== false) cmd.option('--seed <n>', 'random seed', intIn('--seed', SEED), 0);
  const steps = d.stepsFlag ?? '--steps';
  return cmd
    .option(`${steps} <n>`, d.stepsHelp ?? 'denoising steps', intIn(steps, STEPS), d.steps)
    .option('--guidance <w>', 'classifier-free guidance scale', floatIn('--guidance', GUIDANCE), d.guidance);
}

/** The values of addSamplingOptions' options (`seed` 0 where the command has no --seed). */
export function parseSampling(flags: object, stepsFlag: SamplingDefaults['stepsFlag'] = '--steps'): Sampling {
  return {
    seed: numberFlag(flags, 'seed') ?? 0,
    steps: requiredNumber(flags, stepsFlag === '--steps' ? 'steps' : 'samplingSteps'),
    guidance: requiredNumber(flags, 'guidance'),
  };
}

// ─── --threads, -q ──────────────────────────────────────────────────────────────────────────────────────

export interface RunOptions {
  threads?: number;
  quiet: boolean;
}

const THREADS_HELP = 'onnxruntime threads (default: all cores)';

/** --threads and -q, the last options of every command that runs a model. */
export function addRunOptions(cmd: Command, threadsHelp = THREADS_HELP): Command {
  return addThreadsOption(cmd, threadsHelp).option('-q, --quiet', 'no progress bar');
}

/** --threads alone (bench has no progress bar). */
export function addThreadsOption(cmd: Command, help = THREADS_HELP): Command {
  return cmd.option('--threads <n>', help, intIn('--threads', THREADS));
}

/**
 * Reads --threads and -q and sets onnxruntime's thread count when --threads was given, after checking that the
 * outputs given (flag → path) can be written: a run fails before its work, not after it.
 */
export function startRun(flags: object, outputs: Record<string, string | undefined> = {}): RunOptions {
  const threads = numberFlag(flags, 'threads');
  if (threads !== undefined) setThreads(threads);
  checkOutputPaths(outputs);
  return { ...(threads !== undefined ? { threads } : {}), quiet: booleanFlag(flags, 'quiet') };
}

// ─── readers: one option's value, of the type its declaration gives it ─────────────────────────────────

function optionValue(flags: object, key: string): unknown {
  return Object.getOwnPropertyDescriptor(flags, key)?.value;
}

function wrongType(key: string, want: string, v: unknown): Error {
  return new Error(`internal: option '${key}' holds ${JSON.stringify(v)}, not ${want}`);
}

/** An option with a <value> argument: undefined when not given and without default. */
export function stringFlag(flags: object, key: string): string | undefined {
  const v = optionValue(flags, key);
  if (v === undefined || typeof v === 'string') return v;
  throw wrongType(key, 'a string', v);
}

/** An option with a <value> argument that is required or has a default. */
export function requiredString(flags: object, key: string): string {
  const v = stringFlag(flags, key);
  if (v === undefined) throw wrongType(key, 'a string', v);
  return v;
}

/** A variadic option (<values...>). */
export function stringsFlag(flags: object, key: string): string[] | undefined {
  const v = optionValue(flags, key);
  if (v === undefined) return undefined;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
  throw wrongType(key, 'a list of strings', v);
}

/** An option parsed by args.ts' int or float. */
export function numberFlag(flags: object, key: string): number | undefined {
  const v = optionValue(flags, key);
  if (v === undefined || typeof v === 'number') return v;
  throw wrongType(key, 'a number', v);
}

/** A number option with a default. */
export function requiredNumber(flags: object, key: string): number {
  const v = numberFlag(flags, key);
  if (v === undefined) throw wrongType(key, 'a number', v);
  return v;
}

/** A switch: false when not given. */
export function booleanFlag(flags: object, key: string): boolean {
  const v = optionValue(flags, key);
  if (v === undefined || typeof v === 'boolean') return v === true;
  throw wrongType(key, 'a switch', v);
}
