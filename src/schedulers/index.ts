// Schedulers: DDIM, DDPM, Euler, DPM-Solver++ (2M), PNDM (PLMS), built from a diffusers
// `scheduler_config.json` by its `_class_name` or by name, so one config drives any of them (diffusers'
// `SchedulerClass.from_config(pipe.scheduler.config)`).

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonPreview } from '../io/json-preview.js';
import { checkConfigDepth } from '../models/config.js';
import { type SchedulerConfigJson, SchedulerConfigReader } from './config.js';
import { DDIMScheduler } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';
import { DPMSolverMultistepScheduler } from './dpm-solver.js';
import { EulerDiscreteScheduler } from './euler.js';
import { PNDMScheduler } from './pndm.js';
import type { Scheduler, SchedulerName } from './scheduler.js';

export type { SchedulerConfigJson } from './config.js';
export { type DDIMConfig, DDIMScheduler, type InvertOutput } from './ddim.js';
export { type DDPMConfig, DDPMScheduler, type DDPMVarianceType } from './ddpm.js';
export { type DPMSolverConfig, DPMSolverMultistepScheduler } from './dpm-solver.js';
export { type EulerConfig, EulerDiscreteScheduler } from './euler.js';
export type { BetaSchedule, NoiseGenerator, PredictionType, TimestepSpacing } from './noise-schedule.js';
export { type PNDMConfig, PNDMScheduler } from './pndm.js';
export type { Scheduler, SchedulerName, StepOptions, StepOutput } from './scheduler.js';

const BY_NAME: Record<SchedulerName, { className: string; build: (json: SchedulerConfigJson) => Scheduler }> =
  {
    ddim: { className: 'DDIMScheduler', build: (j) => DDIMScheduler.fromConfig(j) },
    ddpm: { className: 'DDPMScheduler', build: (j) => DDPMScheduler.fromConfig(j) },
    euler: { className: 'EulerDiscreteScheduler', build: (j) => EulerDiscreteScheduler.fromConfig(j) },
    dpmpp2m: {
      className: 'DPMSolverMultistepScheduler',
      build: (j) => DPMSolverMultistepScheduler.fromConfig(j),
    },
    pndm: { className: 'PNDMScheduler', build: (j) => PNDMScheduler.fromConfig(j) },
  };

/** The names a scheduler can be chosen by (`--scheduler`, `GenerateOptions.scheduler`). */
export const SCHEDULER_NAMES = Object.keys(BY_NAME) as SchedulerName[];

function nameOfClass(className: unknown): SchedulerName {
  const found = SCHEDULER_NAMES.find((n) => BY_NAME[n].className === className);
  if (found) return found;
  const supported = SCHEDULER_NAMES.map((n) => `${BY_NAME[n].className} ('${n}')`).join(', ');
  throw new Error(
    `scheduler config: "_class_name" = ${jsonPreview(className)} is not supported by attnkit ` +
      `(supported: ${supported}); pass a name to use one of these with this config`,
  );
}

/**
 * A scheduler from a diffusers scheduler config: the class named by `name`, else by `_class_name`.
 * `overrides` replace config keys, as keyword arguments to diffusers' `from_config` do.
 */
export function schedulerFromConfig(
  config: SchedulerConfigJson,
  name?: SchedulerName,
  overrides: SchedulerConfigJson = {},
): Scheduler {
  if (name !== undefined && !(name in BY_NAME)) {
    throw new Error(
      `schedulerFromConfig: unknown scheduler '${name}' (expected one of ${SCHEDULER_NAMES.join(', ')})`,
    );
  }
  const chosen = name ?? nameOfClass(config['_class_name']);
  return BY_NAME[chosen].build({ ...config, ...overrides });
}

/**
 * Parses a scheduler_config.json. Python's json module writes non-finite floats as bare `Infinity`,
 * `-Infinity` and `NaN` (e.g. DPM-Solver's "lambda_min_clipped": -Infinity); they are read as numbers.
 */
export function parseSchedulerConfig(text: string, source = 'scheduler_config.json'): SchedulerConfigJson {
  checkConfigDepth(text, source); // before JSON.parse, whose reviver recurses
  const sentinel = (v: string): string => `"\\u0000${v}"`;
  // only outside strings: a token after ':' , '[' or ',' (the JSON positions of a value)
  const patched = text.replace(
    /([:[,]\s*)(-?Infinity|NaN)(?=\s*[,\]}])/g,
    (_, pre: string, v: string) => pre + sentinel(v),
  );
  let parsed: unknown;
  try {
    parsed = JSON.parse(patched, (_key, value: unknown) => {
      if (typeof value !== 'string' || !value.startsWith('\u0000')) return value;
      return { Infinity: Number.POSITIVE_INFINITY, '-Infinity': Number.NEGATIVE_INFINITY, NaN: Number.NaN }[
        value.slice(1) as 'Infinity' | '-Infinity' | 'NaN'
      ];
    });
  } catch (e) {
    throw new Error(`${source} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${source}: expected a JSON object`);
  }
  return parsed as SchedulerConfigJson;
}

/** Runs `build`, prefixing any error with the file it came from. */
function inFile<T>(path: string, build: () => T): T {
  try {
    return build();
  } catch (e) {
    if (e instanceof Error && !e.message.startsWith(path)) e.message = `${path}: ${e.message}`;
    throw e;
  }
}

/**
 * Checks the scheduler config of a model folder when the model is loaded, so that a bad value is an error
 * naming the file and the key then rather than NaN images later: the scheduler its `_class_name` names is built
 * (a class attnkit does not implement has the keys all schedulers share checked, as another may be named later).
 *
 * A missing "prediction_type" means "epsilon", as in diffusers. With "rescale_betas_zero_snr" true that cannot
 * be what the model was trained for: at zero terminal SNR the last timestep is pure noise, ε says nothing about
 * the image and x̂₀ = (x − √(1 − ᾱ) ε) / √ᾱ divides by ᾱ_T = 0 — the NaN a v-prediction model gives when its
 * prediction_type is lost. Such a folder is refused, saying so. (Without zero SNR a lost "v_prediction" cannot
 * be told from the file: the images are wrong, not NaN.)
 */
export function checkSchedulerConfig(config: SchedulerConfigJson, path: string): void {
  inFile(path, () => {
    const className = config['_class_name'];
    const supported = SCHEDULER_NAMES.some((n) => BY_NAME[n].className === className);
    if (supported) schedulerFromConfig(config);
    else new SchedulerConfigReader(String(jsonPreview(className)), config).common({ spacing: 'leading' });
    if (config['rescale_betas_zero_snr'] !== true) return;
    const prediction = config['prediction_type'] ?? undefined;
    if (prediction !== undefined && prediction !== 'epsilon') return;
    throw new Error(
      `${prediction === undefined ? '"prediction_type" is missing, so it is "epsilon" (diffusers\' default)' : '"prediction_type" = "epsilon"'}` +
        ', but "rescale_betas_zero_snr" is true: at zero terminal SNR an ε-prediction gives no image at the ' +
        'last timestep (x̂₀ divides by ᾱ_T = 0: NaN). Zero-SNR models predict v: set "prediction_type" to ' +
        '"v_prediction" (or to what the model was trained with)',
    );
  });
}

/**
 * Loads `scheduler/scheduler_config.json` of a diffusers model folder (or `scheduler_config.json` of the
 * scheduler folder itself) and builds the scheduler it names, or `name` with that config. Errors name the file.
 */
export function loadScheduler(
  dir: string,
  name?: SchedulerName,
  overrides: SchedulerConfigJson = {},
): Scheduler {
  const candidates = [join(dir, 'scheduler', 'scheduler_config.json'), join(dir, 'scheduler_config.json')];
  const path = candidates.find((p) => existsSync(p));
  if (!path)
    throw new Error(`loadScheduler: no scheduler config in ${dir} (looked for ${candidates.join(' and ')})`);
  const config = parseSchedulerConfig(readFileSync(path, 'utf8'), path);
  return inFile(path, () => schedulerFromConfig(config, name, overrides));
}
