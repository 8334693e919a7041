// Reading a diffusers `scheduler_config.json` into a typed config, as diffusers' `from_config` does: each
// scheduler takes the keys of its own constructor (missing or null → the diffusers default) and ignores
// keys that belong to other schedulers, so one config can drive any scheduler. A key whose value attnkit
// does not implement is an error that names the scheduler, the key, the value and what is supported.

import { jsonPreview } from '../io/json-preview.js';
import { CONFIG_LIMITS, overLimit } from '../models/config.js';
import type { BetaConfig, BetaSchedule, PredictionType, TimestepSpacing } from './noise-schedule.js';

/** A scheduler's `scheduler_config.json` as parsed JSON. */
export type SchedulerConfigJson = Readonly<Record<string, unknown>>;

/** The keys every scheduler here reads (diffusers' names and defaults). */
export interface CommonSchedulerConfig extends BetaConfig {
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
}

/** DDIM's and DDPM's clipping of x̂₀ to [−clip_sample_range, clip_sample_range]. */
export interface ClipSampleConfig {
  clip_sample: boolean;
  clip_sample_range: number;
}

/** Keys that carry no math: bookkeeping written by diffusers. */
const BOOKKEEPING = new Set(['_class_name', '_diffusers_version', '_use_default_values']);

const PREDICTION_TYPES: readonly PredictionType[] = ['epsilon', 'v_prediction', 'sample'];

const show = (v: unknown): string => jsonPreview(v);

export class SchedulerConfigReader {
  readonly #read = new Set<string>();

  constructor(
    readonly className: string,
    readonly json: SchedulerConfigJson,
  ) {}

  #get(key: string): unknown {
    this.#read.add(key);
    const v = this.json[key];
    return v === null ? undefined : v;
  }

  #bad(key: string, value: unknown, what: string): Error {
    return new Error(`${this.className} config: "${key}" must be ${what}, got ${show(value)}`);
  }

  /** A value of the right type that breaks a rule: '"key" = value <rule>'. */
  invalid(key: string, value: unknown, rule: string): Error {
    return new Error(`${this.className} config: "${key}" = ${show(value)} ${rule}`);
  }

  unsupported(key: string, value: unknown, supported: string): Error {
    return new Error(
      `${this.className} config: "${key}" = ${show(value)} is not supported by attnkit (supported: ${supported})`,
    );
  }

  number(key: string, fallback: number, opts: { integer?: boolean; min?: number } = {}): number {
    const v = this.#get(key) ?? fallback;
    const ok = typeof v === 'number' && !Number.isNaN(v) && (!opts.integer || Number.isInteger(v));
    if (!ok || (opts.min !== undefined && v < opts.min)) {
      const what = `${opts.integer ? 'an integer' : 'a number'}${opts.min !== undefined ? ` ≥ ${opts.min}` : ''}`;
      throw this.#bad(key, v, what);
    }
    return v;
  }

  /** A finite number > 0. */
  positive(key: string, fallback: number): number {
    const v = this.number(key, fallback);
    if (!(v > 0 && v < Number.POSITIVE_INFINITY)) throw this.invalid(key, v, 'must be a number > 0');
    return v;
  }

  /** A number, or null when the key is absent or null. */
  numberOrNull(key: string, opts: { min?: number } = {}): number | null {
    this.accept(key);
    return this.json[key] == null ? null : this.number(key, 0, opts);
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.#get(key) ?? fallback;
    if (typeof v !== 'boolean') throw this.#bad(key, v, 'true or false');
    return v;
  }

  /** A string from `supported`; any other value is an error naming the supported ones. */
  choice<T extends string>(key: string, fallback: T, supported: readonly T[]): T {
    const v = this.#get(key) ?? fallback;
    if (typeof v !== 'string') throw this.#bad(key, v, `one of ${supported.map(show).join(', ')}`);
    if (!(supported as readonly string[]).includes(v))
      throw this.unsupported(key, v, supported.map(show).join(', '));
    return v as T;
  }

  /** The key must be absent, null, or equal to one of `supported` (a feature attnkit does not implement). */
  only(key: string, supported: readonly (string | number | boolean)[]): void {
    const v = this.#get(key);
    if (v !== undefined && !supported.includes(v as string | number | boolean)) {
      throw this.unsupported(key, v, supported.map(show).join(', '));
    }
  }

  /** Read and accepted whatever its value: it changes nothing in what attnkit computes. */
  accept(key: string): void {
    this.#read.add(key);
  }

  numbersOrNull(key: string): number[] | null {
    const v = this.#get(key);
    if (v === undefined) return null;
    if (!Array.isArray(v) || v.some((x) => typeof x !== 'number'))
      throw this.#bad(key, v, 'a list of numbers');
    return v as number[];
  }

  /** The keys of the file this scheduler did not read (other schedulers' keys, unknown keys). */
  ignoredKeys(): string[] {
    return Object.keys(this.json).filter((k) => !this.#read.has(k) && !BOOKKEEPING.has(k));
  }

  /**
   * The keys all five schedulers share. `predictionTypes` defaults to all three, `zeroSnr` (whether
   * rescale_betas_zero_snr may be true) to true.
   */
  common(opts: {
    spacing: TimestepSpacing;
    predictionTypes?: readonly PredictionType[];
    zeroSnr?: boolean;
  }): CommonSchedulerConfig {
    const trained = this.numbersOrNull('trained_betas');
    const T = this.number('num_train_timesteps', 1000, { integer: true, min: 1 });
    if (T > CONFIG_LIMITS.trainTimesteps) {
      throw new Error(overLimit(`${this.className} config`, '"num_train_timesteps"', T, 'trainTimesteps'));
    }
    if (trained && trained.length !== T) {
      throw new Error(
        `${this.className} config: "trained_betas" has ${trained.length} values but num_train_timesteps is ${T}`,
      );
    }
    // β_t is a variance: 0 < β_t < 1 (β_t = 1 leaves no signal, ᾱ = 0 and x̂₀ divides by zero)
    const betaAt = trained?.findIndex((b) => !(b > 0 && b < 1)) ?? -1;
    if (trained && betaAt >= 0) {
      throw new Error(
        `${this.className} config: "trained_betas"[${betaAt}] = ${show(trained[betaAt])} must be a number in (0, 1)`,
      );
    }
    const config: CommonSchedulerConfig = {
      num_train_timesteps: T,
      beta_start: this.number('beta_start', 0.0001),
      beta_end: this.number('beta_end', 0.02),
      beta_schedule: this.choice<BetaSchedule>('beta_schedule', 'linear', [
        'linear',
        'scaled_linear',
        'squaredcos_cap_v2',
      ]),
      trained_betas: trained,
      prediction_type: this.choice('prediction_type', 'epsilon', opts.predictionTypes ?? PREDICTION_TYPES),
      timestep_spacing: this.choice<TimestepSpacing>('timestep_spacing', opts.spacing, [
        'leading',
        'trailing',
        'linspace',
      ]),
      steps_offset: this.number('steps_offset', 0, { integer: true, min: 0 }),
    };
    if (config.steps_offset >= T) {
      throw this.invalid('steps_offset', config.steps_offset, `must be less than num_train_timesteps (${T})`);
    }
    // the linear schedules run from beta_start to beta_end (the cosine one and trained_betas do not read them)
    if (!trained && config.beta_schedule !== 'squaredcos_cap_v2') {
      for (const key of ['beta_start', 'beta_end'] as const) {
        const b = config[key];
        if (!(b > 0 && b < 1))
          throw this.invalid(key, b, 'must be a number in (0, 1): β is a variance per step');
      }
      if (config.beta_start > config.beta_end) {
        throw this.invalid(
          'beta_start',
          config.beta_start,
          `must not exceed "beta_end" = ${config.beta_end}: noise grows with t (swapped values?)`,
        );
      }
    }
    if (opts.zeroSnr ?? true) config.rescale_betas_zero_snr = this.boolean('rescale_betas_zero_snr', false);
    else this.only('rescale_betas_zero_snr', [false]);
    return config;
  }

  clipSample(): ClipSampleConfig {
    return {
      clip_sample: this.boolean('clip_sample', true),
      clip_sample_range: this.positive('clip_sample_range', 1),
    };
  }

  /** Dynamic thresholding (Imagen) is not implemented: "thresholding" must be false; its settings are read. */
  noThresholding(): void {
    this.only('thresholding', [false]);
    this.accept('dynamic_thresholding_ratio');
    this.accept('sample_max_value');
  }
}
