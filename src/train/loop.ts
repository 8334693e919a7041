// The training loop shared by both stages: AdamW with linear warm-up, global gradient-norm clipping,
// a time budget, periodic checkpoints and a progress bar with the loss and ETA.

import { mkdirSync } from 'node:fs';
import { backward, enableGrad, type Parameter, progressBar, Tensor } from '../index.js';
import {
  hasCheckpoint,
  loadCheckpoint,
  recoverCheckpoint,
  saveCheckpoint,
  type TrainState,
} from './checkpoint.js';

/**
 * Options of the training loop: checkpoint folder, steps, learning-rate schedule, gradient clipping, time
 * budget, logging.
 */
export interface LoopOptions {
  /** Checkpoint folder. */
  dir: string;
  label: string;
  /** Total optimizer steps of the run (a resumed run continues towards the same total). */
  steps: number;
  /** Stop (and save) after this many minutes of this invocation. */
  minutes?: number;
  lr: number;
  warmup: number;
  /** After warm-up: keep `lr` ('constant', the default) or follow a cosine from `lr` down to lr/10 at `steps`. */
  decay?: 'constant' | 'cosine';
  /** Global gradient-norm clip (0 = none). */
  clip: number;
  checkpointMinutes: number;
  /** Load `dir`'s checkpoint first when there is one. */
  resume: boolean;
  /** Saved in the checkpoint's JSON. */
  extra?: Record<string, unknown>;
  quiet?: boolean;
  /** A plain line every `logEvery` steps (for logs that are not terminals). */
  log?: (line: string) => void;
  logEvery?: number;
}

/** Where a training loop stopped: the step, why (all steps done or out of time) and the seconds per step. */
export interface LoopResult {
  step: number;
  reason: 'steps' | 'time';
  secondsPerStep: number;
}

/** Scales every gradient so that their joint L2 norm is at most `maxNorm`; returns the norm before. */
export function clipGradNorm(params: readonly Parameter[], maxNorm: number): number {
  let sq = 0;
  for (const p of params) {
    const g = p.value.grad;
    if (g) for (const x of g.data as Float32Array) sq += x * x;
  }
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const s = maxNorm / (norm + 1e-6);
    for (const p of params) {
      const g = p.value.grad;
      if (g)
        p.value.grad = new Tensor(
          Float32Array.from(g.data as Float32Array, (x) => x * s),
          g.shape,
        );
    }
  }
  return norm;
}

/** The learning rate of optimizer step `step` (0-based): linear warm-up, then constant or cosine decay. */
export function learningRate(
  o: Pick<LoopOptions, 'lr' | 'warmup' | 'steps' | 'decay'>,
  step: number,
): number {
  if (step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  if (o.decay !== 'cosine') return o.lr;
  const progress = Math.min(1, (step - o.warmup) / Math.max(1, o.steps - o.warmup));
  return o.lr * (0.1 + 0.45 * (1 + Math.cos(Math.PI * progress)));
}

/**
 * The training loop of both stages: AdamW with linear warm-up (and optional decay), global gradient-norm
 * clipping, a time budget and periodic checkpoints.
 */
export function trainLoop(
  state: TrainState,
  lossAt: (step: number) => { loss: Tensor; logs: Record<string, number> },
  o: LoopOptions,
): LoopResult {
  mkdirSync(o.dir, { recursive: true });
  recoverCheckpoint(o.dir); // a save stopped between its files finished, killed saves' temporary files removed
  if (o.resume && hasCheckpoint(o.dir)) loadCheckpoint(o.dir, state);
  const opt = state.optimizer;
  const start = opt.stepCount;
  const t0 = Date.now();
  let lastSave = t0;
  const bar = progressBar(o.label, o.steps, { quiet: o.quiet ?? false });
  bar.update(start);
  let reason: LoopResult['reason'] = 'steps';
  let smooth = Number.NaN;
  while (opt.stepCount < o.steps) {
    if (o.minutes !== undefined && Date.now() - t0 > o.minutes * 60_000) {
      reason = 'time';
      break;
    }
    const step = opt.stepCount;
    const ts = Date.now();
    const { loss, logs } = enableGrad(() => lossAt(step));
    backward(loss);
    const gradNorm = clipGradNorm(opt.params, o.clip);
    const lr = learningRate(o, step);
    opt.step(lr);
    state.ema?.update();
    opt.zeroGrad();
    const value = loss.item();
    state.history.push({ loss: value, ...logs, gradNorm, ms: Date.now() - ts });
    smooth = Number.isNaN(smooth) ? value : 0.98 * smooth + 0.02 * value;
    bar.update(opt.stepCount, { loss: smooth });
    if (o.log && opt.stepCount % (o.logEvery ?? 25) === 0) {
      const elapsed = (Date.now() - t0) / 1000;
      const rate = elapsed / (opt.stepCount - start);
      o.log(
        `${o.label} step ${opt.stepCount}/${o.steps} loss ${smooth.toFixed(5)} (${value.toFixed(5)}) ` +
          `|g| ${gradNorm.toFixed(3)} ${rate.toFixed(2)} s/step, ETA ${(((o.steps - opt.stepCount) * rate) / 60).toFixed(1)} min`,
      );
    }
    if (Date.now() - lastSave > o.checkpointMinutes * 60_000) {
      saveCheckpoint(o.dir, state, o.extra);
      lastSave = Date.now();
    }
  }
  bar.stop();
  saveCheckpoint(o.dir, state, o.extra);
  const done = opt.stepCount - start;
  return { step: opt.stepCount, reason, secondsPerStep: done > 0 ? (Date.now() - t0) / 1000 / done : 0 };
}
