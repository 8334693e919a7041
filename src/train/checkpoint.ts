// Resumable training checkpoints: the models' parameters and AdamW's moments in one safetensors file,
// and the step, the Philox counter, the loss history and the run's settings in a JSON file beside it.
// Parameters are saved as float32, so resuming continues bit for bit where the run stopped. A run with an
// exponential moving average (ema.ts) also saves it, as `ema.<parameter name>`.
//
// The two files are one checkpoint. On disk, in the stage's folder:
//
//   checkpoint.safetensors          weights, `adamw.m.*`, `adamw.v.*`, `ema.*`; header metadata {"checkpoint": id}
//   checkpoint.json                 {"id": id, step, rngCounter, history, extra, emaUpdates}
//   checkpoint.json.<id>.tmp        the JSON of a save whose weights are in place and whose JSON is not yet
//
// with id = "<step>-<random>". A save writes the JSON to its temporary name (flushed), then the weights through
// a flushed temporary file renamed over the old ones — the commit point — then renames the JSON into place.
// A crash before the commit leaves the old pair (and temporary files, removed at the next run); one after it
// leaves the new weights and their JSON under its temporary name, which the next read puts in place. Any other
// pair whose ids differ is refused, naming both files. Checkpoints from before the ids (none in either file)
// are read as they are.

import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import {
  type AdamW,
  fsyncPath,
  type Generator,
  type Module,
  type Parameter,
  readSafetensors,
  readSafetensorsHeader,
  removeStaleTemps,
  Tensor,
  writeFileAtomic,
  writeSafetensors,
} from '../index.js';
import type { EMA } from './ema.js';

/**
 * What a training checkpoint holds: the modules by checkpoint prefix, the optimizer, the random generator,
 * the loss history and the moving average.
 */
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

/**
 * A checkpoint's metadata beside its weights: step, random-generator counter, loss history, what the stage
 * needs to rebuild itself.
 */
export interface CheckpointMeta {
  /** Names the pair: the same id is in the weights file's metadata (absent in checkpoints from before). */
  id?: string;
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
/** The weights file's metadata key holding the checkpoint's id. */
const ID_KEY = 'checkpoint';
const ID_FORM = /^\d+-[0-9a-f-]{36}$/;

function namedParameters(state: TrainState): [string, Parameter][] {
  return Object.entries(state.modules).flatMap(([prefix, m]) => [...m.namedParameters(prefix)]);
}

const pendingMeta = (dir: string, id: string) => join(dir, `${META}.${id}.tmp`);

function readMetaFile(path: string): CheckpointMeta {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as CheckpointMeta;
  } catch (e) {
    throw new Error(`${path}: not a checkpoint's JSON (${(e as Error).message})`);
  }
}

/** The id in the weights file's header (undefined: a checkpoint from before the ids, or no valid id). */
function weightsId(dir: string): string | undefined {
  const id = readSafetensorsHeader(join(dir, WEIGHTS)).metadata[ID_KEY];
  return id !== undefined && ID_FORM.test(id) ? id : undefined;
}

/**
 * Finishes a save that was stopped between its two renames: when the JSON of the weights in place waits
 * under its temporary name, it is renamed into place. Returns that JSON, or undefined when there is none.
 */
function completeSave(dir: string): CheckpointMeta | undefined {
  if (!existsSync(join(dir, WEIGHTS))) return undefined;
  const id = weightsId(dir);
  if (id === undefined) return undefined;
  const path = join(dir, META);
  if (existsSync(path) && readMetaFile(path).id === id) return undefined;
  const pending = pendingMeta(dir, id);
  if (!existsSync(pending)) return undefined;
  const meta = readMetaFile(pending);
  if (meta.id !== id) return undefined;
  try {
    renameSync(pending, path);
    fsyncPath(dir);
  } catch {
    // a folder this process cannot write to (e.g. exporting another user's run): read it where it is
  }
  return meta;
}

/** Whether `dir` holds a complete checkpoint (weights and metadata). */
export function hasCheckpoint(dir: string): boolean {
  if (!existsSync(join(dir, WEIGHTS))) return false;
  if (existsSync(join(dir, META))) return true;
  const id = weightsId(dir);
  return id !== undefined && existsSync(pendingMeta(dir, id));
}

/**
 * Makes `dir` ready for a run: finishes a save that was stopped between its renames and removes the
 * temporary files killed saves left (each as large as the checkpoint).
 */
export function recoverCheckpoint(dir: string): void {
  completeSave(dir);
  removeStaleTemps(dir, WEIGHTS);
  removeStaleTemps(dir, META);
}

/** Writes `dir/checkpoint.safetensors` and `dir/checkpoint.json` as one checkpoint (see the top of the file). */
export function saveCheckpoint(dir: string, state: TrainState, extra: Record<string, unknown> = {}): void {
  recoverCheckpoint(dir);
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
  const id = `${step}-${randomUUID()}`;
  const meta: CheckpointMeta = {
    id,
    step,
    rngCounter: state.gen.counter.toString(),
    history: state.history,
    extra,
    ...(state.ema ? { emaUpdates: state.ema.updates } : {}),
  };
  const pending = pendingMeta(dir, id);
  writeFileAtomic(pending, `${JSON.stringify(meta)}\n`);
  writeSafetensors(join(dir, WEIGHTS), tensors, { metadata: { [ID_KEY]: id } });
  fsyncPath(dir); // the commit: the new weights' name on disk before the JSON's
  try {
    renameSync(pending, join(dir, META));
  } catch (e) {
    // a reader of the folder (e.g. an export while the run goes on) may have finished this save already
    if (!(existsSync(join(dir, META)) && readMetaFile(join(dir, META)).id === id)) throw e;
  }
  fsyncPath(dir);
}

/**
 * Reads a checkpoint's JSON (e.g. to rebuild the models from its `extra` before `loadCheckpoint`), after
 * checking that it belongs to the weights beside it.
 */
export function readCheckpointMeta(dir: string): CheckpointMeta {
  const completed = completeSave(dir);
  if (completed) return completed;
  const weights = join(dir, WEIGHTS);
  const path = join(dir, META);
  const meta = readMetaFile(path);
  const id = weightsId(dir);
  if (meta.id !== id) {
    const which = (x: string | undefined) => (x === undefined ? 'no checkpoint id' : `checkpoint ${x}`);
    throw new Error(
      `${weights} (${which(id)}) and ${path} (${which(meta.id)}, step ${meta.step}) are not one checkpoint: ` +
        'a save was stopped between the two files, or they were copied from different runs; ' +
        'put back a matching pair or train the stage again without --resume',
    );
  }
  return meta;
}

/** A checkpoint's JSON and its tensors (parameters, `adamw.m.*`, `adamw.v.*`, `ema.*`), checked to be one pair. */
export function readCheckpoint(dir: string): { meta: CheckpointMeta; tensors: Map<string, Tensor> } {
  const meta = readCheckpointMeta(dir);
  const { tensors, metadata } = readSafetensors(join(dir, WEIGHTS));
  if (meta.id !== undefined && metadata[ID_KEY] !== meta.id) {
    throw new Error(`${join(dir, WEIGHTS)} changed while it was read (checkpoint ${meta.id} expected)`);
  }
  return { meta, tensors };
}

/**
 * Loads parameters, optimizer moments, step, RNG counter and history into `state`; returns the meta.
 * `state.ema` takes the saved average, or starts at the loaded weights when the checkpoint has none.
 */
export function loadCheckpoint(dir: string, state: TrainState): CheckpointMeta {
  const { meta, tensors } = readCheckpoint(dir);
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
