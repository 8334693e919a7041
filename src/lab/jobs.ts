// Batched runs for the lab: many jobs (groups of prompts, each from its own seed, with their own controllers)
// in as few generate calls as possible, under a time budget.
//
// Every job's prompts are a group with its own controllers (groupControllers), so a batch of 16 prompts is one
// UNet call per step; each job's noise is seeded by its seed alone, so its images do not depend on the batch.

import { concat, groupControllers, type PromptGroup, type Tensor } from '../index.js';
import { type MeasureModel, noiseOf, sampleImages } from './measure/model.js';

/**
 * One job of a batched lab run: its seed (which alone seeds its noise), its prompts and their groups of
 * controllers.
 */
export interface Job {
  seed: number;
  prompts: string[];
  /** Groups over this job's prompts (local indices). */
  groups: PromptGroup[];
}

/**
 * How a batched lab run samples (steps, guidance), how many prompts go in one generate call, and its
 * deadline.
 */
export interface JobOptions {
  /** Sampling steps (DDIM on the UNet, the flow's Euler steps on the DiT). */
  steps: number;
  guidanceScale: number;
  /** Prompts per generate call (a job larger than this runs alone). */
  batchPrompts: number;
  /** performance.now() after which no batch is started that would end past it (Infinity: none). */
  deadline: number;
}

/** Whether another chunk of work fits before `deadline` (ms, performance.now), judged by the chunks so far. */
export class Pace {
  private readonly t0 = performance.now();
  private chunks = 0;
  constructor(readonly deadline: number) {}
  /** Whether another chunk of work fits before the deadline, judged by the mean time of the chunks so far. */
  fits(): boolean {
    if (this.chunks === 0) return true;
    const now = performance.now();
    return now + (now - this.t0) / this.chunks <= this.deadline;
  }
  /** Counts one chunk of work done. */
  tick(): void {
    this.chunks++;
  }
}

/** Consecutive slices of `size` items (the last may be shorter). */
export function chunks<T>(xs: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

/**
 * Runs the jobs in batches while they fit before the deadline (at least one batch): the images (1, 3, H, W)
 * of each job run, in order; `progress` gets the number of jobs done after each batch.
 */
export function runJobs(
  sd: MeasureModel,
  jobs: readonly Job[],
  o: JobOptions,
  progress: (done: number) => void,
): Tensor[][] {
  const out: Tensor[][] = [];
  const pace = new Pace(o.deadline);
  let i = 0;
  while (i < jobs.length && pace.fits()) {
    const chunk: Job[] = [];
    let n = 0;
    while (i < jobs.length && (chunk.length === 0 || n + jobs[i]!.prompts.length <= o.batchPrompts)) {
      n += jobs[i]!.prompts.length;
      chunk.push(jobs[i]!);
      i++;
    }
    const groups: PromptGroup[] = [];
    const latents: Tensor[] = [];
    let offset = 0;
    for (const job of chunk) {
      const z = noiseOf(sd, job.seed);
      for (const _ of job.prompts) latents.push(z);
      for (const g of job.groups) groups.push({ ...g, prompts: g.prompts.map((p) => p + offset) });
      offset += job.prompts.length;
    }
    const images = sampleImages(sd, {
      prompt: chunk.flatMap((j) => j.prompts),
      latents: concat(latents, 0),
      steps: o.steps,
      guidanceScale: o.guidanceScale,
      controllers: groups.length > 0 ? [groupControllers(groups)] : [],
    });
    let row = 0;
    for (const job of chunk) {
      out.push(job.prompts.map(() => images.slice(0, row, ++row)));
    }
    pace.tick();
    progress(i);
  }
  return out;
}
