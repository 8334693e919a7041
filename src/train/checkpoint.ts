// Resumable training checkpoints: the models' parameters and AdamW's moments in one safetensors file,
// and the step, the Philox counter, the loss history and the run's settings in a JSON file beside it.
// Parameters are saved as float32, so resuming continues bit for bit where the run stopped. A run with an
// exponential moving average (ema.ts) also saves it, as `ema.<parameter name>`.

import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  type AdamW,
  type Generator,
  type Module,
  type Parameter,
  readSafetensors,
  Tensor,
  writeSafetensors,
} from '../index.js';
import type { EMA } from './ema.js';

export interface TrainState {
  /** Checkpoint prefix → module ('vae', 'unet', 'text_encoder'). */
  modules: Record<string, Module>;
  optimizer: AdamW;
  gen: Generator;
  /** One entry per step done: the loss and any other logged values. */
  history: Record<string, number>[];
  /** The moving average of the parameters, when the run keeps one. */
  ema?: EMA;
}

export interface CheckpointMeta {
  step: number;
  /** The Generator's counter, as a decimal string (it is a 128-bit integer). */
  rngCounter: string;
  history: Record<string, number>[];
  /** Anything the stage needs to rebuild itself (configs, scaling factor, …). */
  extra: Record<string, unknown>;
  /** Updates of the saved moving average (absent: the checkpoint has none). */
  emaUpdates?: number;
}

const WEIGHTS = 'checkpoint.safetensors';
const META = 'checkpoint.json';

function namedParameters(state: TrainState): [string, Parameter][] {
  return Object.entries(state.modules).flatMap(([prefix, m]) => [...m.namedParameters(prefix)]);
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(join(dir, WEIGHTS)) && existsSync(join(dir, META));
}

/** Writes `dir/checkpoint.safetensors` and then `dir/checkpoint.json`, each atomically. */
export function saveCheckpoint(dir: string, state: TrainState, extra: Record<string, unknown> = {}): void {
  const { step, m, v } = state.optimizer.state();
  const tensors = new Map<string, Tensor>();
  for (const [name, p] of namedParameters(state)) {
    tensors.set(name, p.value);
    const mp = m.get(p);
    const vp = v.get(p);
    if (mp) tensors.set(`adamw.m.${name}`, mp);
    if (vp) tensors.set(`adamw.v.${name}`, vp);
    const ema = state.ema?.shadow.get(p);
    if (ema) tensors.set(`ema.${name}`, new Tensor(ema, p.value.shape));
  }
  writeSafetensors(join(dir, WEIGHTS), tensors);
  const meta: CheckpointMeta = {
    step,
    rngCounter: state.gen.counter.toString(),
    history: state.history,
    extra,
    ...(state.ema ? { emaUpdates: state.ema.updates } : {}),
  };
  const tmp = join(dir, `${META}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(meta)}\n`);
  renameSync(tmp, join(dir, META));
}

/** Reads a checkpoint's JSON (e.g. to rebuild the models from its `extra` before `loadCheckpoint`). */
export function readCheckpointMeta(dir: string): CheckpointMeta {
  return JSON.parse(readFileSync(join(dir, META), 'utf8')) as CheckpointMeta;
}

/**
 * Loads parameters, optimizer moments, step, RNG counter and history into `state`; returns the meta.
 * `state.ema` takes the saved average, or starts at the loaded weights when the checkpoint has none.
 */
export function loadCheckpoint(dir: string, state: TrainState): CheckpointMeta {
  const meta = readCheckpointMeta(dir);
  const { tensors } = readSafetensors(join(dir, WEIGHTS));
  const m = new Map<Parameter, Tensor>();
  const v = new Map<Parameter, Tensor>();
  const missing: string[] = [];
  for (const [name, p] of namedParameters(state)) {
    const t = tensors.get(name);
    if (!t) {
      missing.push(name);
      continue;
    }
    p.value = t.requireGrad(p.value.requiresGrad);
    const mt = tensors.get(`adamw.m.${name}`);
    const vt = tensors.get(`adamw.v.${name}`);
    if (mt) m.set(p, mt);
    if (vt) v.set(p, vt);
    const et = tensors.get(`ema.${name}`);
    state.ema?.reset(p, et ? (et.data as Float32Array) : undefined);
  }
  if (state.ema) state.ema.updates = meta.emaUpdates ?? 0;
  if (missing.length > 0) {
    throw new Error(
      `loadCheckpoint: ${join(dir, WEIGHTS)} lacks ${missing.length} parameters (${missing.slice(0, 5).join(', ')}…); ` +
        'was it written by a run with another config?',
    );
  }
  state.optimizer.loadState({ step: meta.step, m, v });
  state.gen.counter = BigInt(meta.rngCounter);
  state.history.splice(0, state.history.length, ...meta.history);
  return meta;
}
