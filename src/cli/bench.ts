// attnkit bench — every attention method side by side in one run: SD1.5-architecture UNet (random weights),
// a guided denoising loop, and the built-in Shapes model when it is installed. Seconds per step, peak memory,
// speed-up against the softmax reference measured in the same run, and quality against its output.

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import type { Command } from 'commander';
import { writeOutput } from '../io/output.js';
import { isSD3Folder } from '../pipelines/sd3.js';
import { intIn } from './args.js';
import { measureShapesDiT } from './bench-dit.js';
import { type Measured, measureAttention, measureLoop, measureUNet } from './bench-methods.js';
import { benchTargets, printSection, type Row, type Section } from './bench-report.js';
import { measureShapes, type ShapesScore, scoreShapes, shapesPrompts } from './bench-shapes.js';
import { loadF32, median, mse, runWorker } from './bench-support.js';
import { COUNT, STEPS } from './limits.js';
import { BUILTIN_MODEL } from './models.js';
import { addThreadsOption, numberFlag, startRun } from './options.js';

type Job =
  | { kind: 'attention'; method: string; runs: number; out: string }
  | { kind: 'unet'; method: string; size: number; runs: number; out: string }
  | { kind: 'loop'; method: string; size: number; steps: number; out: string }
  | { kind: 'shapes'; method: string; dir: string; prompts: number; steps: number; out: string };

function work(job: Job): Measured {
  if (job.kind === 'attention') return measureAttention(job.method, job.runs, job.out);
  if (job.kind === 'unet') return measureUNet(job.method, job.size, job.runs, job.out);
  if (job.kind === 'loop') return measureLoop(job.method, job.size, job.steps, job.out);
  // the DiT Shapes model (an SD3-style folder) or the UNet one
  const measure = isSD3Folder(job.dir) ? measureShapesDiT : measureShapes;
  return measure(job.method, job.dir, job.prompts, job.steps, job.out);
}

const ATTENTION = ['softmax', 'flash', 'chunked', 'sliced', 'linear-elu', 'linear-relu', 'agent', 'window'];
const UNET = [...ATTENTION, 'tome', 'tome+softmax'];
const LOOP = ['softmax', 'flash', 'tome', 'caching', 'block-caching', 'cfg-share'];
const SHAPES = [
  'softmax',
  'flash',
  'chunked',
  'linear-elu',
  'agent',
  'window',
  'tome',
  'caching',
  'block-caching',
  'cfg-share',
];

interface Flags {
  sizes: string;
  runs: number;
  loopSize: number;
  loopSteps: number;
  shapesPrompts: number;
  shapesSteps: number;
  methods?: string;
  skip: string;
  model: string;
  out: string;
  worker?: string;
}

/** Runs `methods` one child process each; the first is the reference every row is compared with. */
async function section(
  name: string,
  methods: readonly string[],
  job: (m: string, out: string) => Job,
  tmp: string,
  threads?: number,
) {
  const rows: Row[] = [];
  for (const m of methods) {
    process.stderr.write(`[bench] ${name}: ${m}\n`);
    const out = join(tmp, `${name}-${m}`.replace(/[^\w.-]/g, '_'));
    const r = await runWorker<Measured>(job(m, out), threads);
    rows.push({
      method: m,
      seconds: median(r.samples),
      samples: r.samples,
      peak: r.peak - r.baseline,
      out,
      note: r.note,
    });
  }
  const ref = rows[0] ? loadF32(rows[0].out) : new Float32Array();
  for (const r of rows) {
    r.speedup = (rows[0]?.seconds ?? Number.NaN) / r.seconds;
    const flash = rows.find((x) => x.method === 'flash');
    if (flash) r.speedupVsFlash = flash.seconds / r.seconds;
    r.quality = mse(loadF32(r.out), ref);
  }
  return rows;
}

export function registerBench(program: Command): void {
  const cmd = program
    .command('bench')
    .description('time every attention method against the softmax reference (speed, peak memory, quality)')
    .option('--sizes <list>', 'latent sizes of the SD1.5 UNet evaluations', '32,64')
    .option('--runs <n>', 'timed UNet evaluations per method (after one warm-up)', intIn('--runs', COUNT), 2)
    .option(
      '--loop-size <n>',
      'latent size of the guided denoising loop',
      intIn('--loop-size', { min: 1, max: 512 }),
      32,
    )
    .option('--loop-steps <n>', 'steps of the denoising loop', intIn('--loop-steps', STEPS), 10)
    .option(
      '--shapes-prompts <n>',
      'prompts generated on the built-in model',
      intIn('--shapes-prompts', COUNT),
      16,
    )
    .option('--shapes-steps <n>', 'denoising steps on the built-in model', intIn('--shapes-steps', STEPS), 20)
    .option('--methods <list>', 'only these methods (the reference softmax is always run)')
    .option('--skip <list>', 'sections to skip: attention, unet, loop, shapes', '')
    .option('--model <dir>', 'the built-in model folder', BUILTIN_MODEL)
    .option('--out <file>', 'results JSON', 'bench/results/attention-methods.json');
  addThreadsOption(cmd, 'onnxruntime threads in every measurement (default: all cores)')
    .option('--worker <json>', 'internal: run one measurement and print it')
    .action(async (f: Flags) => {
      const threads = numberFlag(f, 'threads');
      if (f.worker) {
        startRun(f);
        process.stdout.write(`\nRESULT ${JSON.stringify(work(JSON.parse(f.worker) as Job))}\n`);
        return;
      }
      const keep = (list: readonly string[]) =>
        f.methods ? list.filter((m) => m === 'softmax' || f.methods?.split(',').includes(m)) : list;
      const skip = new Set(f.skip.split(','));
      const tmp = mkdtempSync(join(os.tmpdir(), 'attnkit-bench-'));
      const sections: Section[] = [];
      const notes: string[] = [];
      try {
        if (!skip.has('attention')) {
          const rows = await section(
            'attention',
            keep(ATTENTION),
            (method, out) => ({ kind: 'attention', method, runs: 3, out }),
            tmp,
            threads,
          );
          sections.push({
            name: 'self-attention (2, 8 heads, 4096 tokens, 40): one call',
            key: 'attention',
            rows,
          });
        }
        for (const size of skip.has('unet') ? [] : f.sizes.split(',').map(Number)) {
          const rows = await section(
            `unet${size}`,
            keep(UNET),
            (method, out) => ({ kind: 'unet', method, size, runs: f.runs, out }),
            tmp,
            threads,
          );
          sections.push({
            name: `SD1.5 UNet, batch 2 (one guided step), ${size}×${size} latent`,
            key: `unet${size}`,
            rows,
          });
        }
        if (!skip.has('loop')) {
          const { loopSize: size, loopSteps: steps } = f;
          const rows = await section(
            'loop',
            keep(LOOP),
            (method, out) => ({ kind: 'loop', method, size, steps, out }),
            tmp,
            threads,
          );
          sections.push({
            name: `SD1.5 UNet, ${steps}-step guided DDIM loop, ${size}×${size}: final latents`,
            key: 'loop',
            rows,
          });
        }
        if (!skip.has('shapes')) {
          if (existsSync(join(f.model, 'model_index.json'))) {
            const { shapesPrompts: prompts, shapesSteps: steps, model: dir } = f;
            const job = (method: string, out: string): Job => ({
              kind: 'shapes',
              method,
              dir,
              prompts,
              steps,
              out,
            });
            const rows = await section('shapes', keep(SHAPES), job, tmp, threads);
            const texts = shapesPrompts(prompts);
            const shape = [prompts, 3, 64, 64];
            const ref = scoreShapes(loadF32(rows[0]?.out as string), shape, texts);
            for (const r of rows)
              r.shapes = scoreShapes(loadF32(r.out), shape, texts, ref.reports).score as ShapesScore;
            sections.push({
              name: `built-in model ${dir}: ${prompts} prompts, ${steps} steps: images`,
              key: 'shapes',
              rows,
            });
          } else {
            notes.push(
              `built-in model not measured: ${f.model} has no model_index.json (not trained/installed yet)`,
            );
          }
        }
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
      for (const s of sections) printSection(s);
      const targets = benchTargets(sections);
      printSection({ name: 'targets (issue 6)', key: 'targets', rows: [] }, targets);
      for (const n of notes) console.log(`- ${n}`);
      mkdirSync(dirname(f.out), { recursive: true });
      const json = {
        date: new Date().toISOString(),
        machine: machine(),
        flags: { ...f, worker: undefined },
        sections,
        targets,
        notes,
      };
      writeOutput(f.out, `${JSON.stringify(json, (k, v) => (k === 'out' ? undefined : v), 2)}\n`);
      console.log(`wrote ${f.out}`);
    });
}

function machine(): Record<string, unknown> {
  return {
    cpu: os.cpus()[0]?.model,
    cores: os.availableParallelism(),
    memGiB: os.totalmem() / 2 ** 30,
    node: process.version,
    load: os.loadavg(),
  };
}
