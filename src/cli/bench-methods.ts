// The methods `attnkit bench` compares, and the measurements a bench worker process makes: one attention
// call, one UNet evaluation, or a guided denoising loop, each with one method's controllers.

import {
  type AttentionCall,
  type AttentionContext,
  type AttentionFunction,
  type Controller,
  flashAttention,
  guidedBatch,
  softmaxAttention,
} from '../attention/index.js';
import { AttentionCaching } from '../methods/application/attention-caching.js';
import { BlockCaching } from '../methods/application/block-caching.js';
import { TokenMerging } from '../methods/application/token-merging.js';
import {
  agentAttention,
  chunkedAttention,
  linearAttention,
  slicedAttention,
  useAttention,
  windowAttention,
} from '../methods/function/index.js';
import { randomSD15UNet, SD15_SCHEDULER_CONFIG } from '../models/random-sd15.js';
import { memory } from '../process/memory.js';
import { schedulerFromConfig } from '../schedulers/index.js';
import { concat, noGrad, type Tensor } from '../tensor/index.js';
import { Generator } from '../tensor/random.js';
import { now, saveF32, startPeak } from './bench-support.js';

const self = (c: AttentionCall) => c.kind === 'self';

/** A method as `bench` runs it: its controllers, and whether it must calibrate on another run first. */
export interface BenchMethod {
  name: string;
  note: string;
  controllers(): Controller[];
}

export function cachingThreshold(): number {
  return Number(process.env['ATTNKIT_BENCH_CACHE_THRESHOLD'] ?? 0.1);
}

export function blockCachingThreshold(): number {
  return Number(process.env['ATTNKIT_BENCH_BLOCK_THRESHOLD'] ?? 0.1);
}

/** A method whose plan is made on a calibration run before it is measured (the caches). */
export interface Calibrated {
  readonly calibrated: boolean;
  calibrate<T>(run: () => T): T;
}

/** Runs `run` once as the calibration of every calibrated controller (nested), or plainly when none is. */
export function calibrateOn<T>(controllers: readonly Controller[], run: () => T): T | undefined {
  const cal = controllers.filter(
    (c): c is Controller & Calibrated =>
      (c instanceof AttentionCaching || c instanceof BlockCaching) && c.calibrated,
  );
  if (cal.length === 0) return undefined;
  return cal.reduce<() => T>((inner, c) => () => c.calibrate(inner), run)();
}

export const METHODS: readonly BenchMethod[] = [
  {
    name: 'softmax',
    note: 'reference: Q·Kᵀ, softmax, ·V',
    controllers: () => [useAttention(softmaxAttention)],
  },
  { name: 'flash', note: 'onnxruntime MultiHeadAttention (the default)', controllers: () => [] },
  { name: 'chunked', note: 'online softmax, TS ops', controllers: () => [useAttention(chunkedAttention())] },
  { name: 'sliced', note: 'slices of batch·heads', controllers: () => [useAttention(slicedAttention())] },
  {
    name: 'linear-elu',
    note: 'self-attention only',
    controllers: () => [useAttention(linearAttention({ featureMap: 'elu' }), { appliesTo: self })],
  },
  {
    name: 'linear-relu',
    note: 'self-attention only',
    controllers: () => [useAttention(linearAttention({ featureMap: 'relu' }), { appliesTo: self })],
  },
  {
    name: 'agent',
    note: 'agentRatio 0.95, self-attention',
    controllers: () => [useAttention(agentAttention())],
  },
  {
    name: 'window',
    note: '8×8 windows, self-attention',
    controllers: () => [useAttention(windowAttention())],
  },
  { name: 'tome', note: 'ratio 0.5 (+ flash)', controllers: () => [new TokenMerging({ ratio: 0.5 })] },
  {
    name: 'tome+softmax',
    note: 'ratio 0.5 (+ reference attention)',
    controllers: () => [new TokenMerging({ ratio: 0.5 }), useAttention(softmaxAttention)],
  },
  {
    name: 'caching',
    note: `DiTFastAttn plan, threshold ${cachingThreshold()}, calibrated on another seed`,
    controllers: () => [new AttentionCaching({ threshold: cachingThreshold() })],
  },
  {
    name: 'block-caching',
    note: `Block Caching of the attention blocks, threshold ${blockCachingThreshold()}, calibrated on another seed`,
    controllers: () => [new BlockCaching({ threshold: blockCachingThreshold() })],
  },
  {
    name: 'cfg-share',
    note: 'self-attention shared between CFG branches',
    controllers: () => [
      new AttentionCaching({ plan: (c) => (self(c) ? 'full_attn+cfg_attn_share' : undefined) }),
    ],
  },
];

export function method(name: string): BenchMethod {
  const m = METHODS.find((x) => x.name === name);
  if (!m)
    throw new Error(`bench: unknown method '${name}' (known: ${METHODS.map((x) => x.name).join(', ')})`);
  return m;
}

/** What a worker reports: seconds per call (or per step), and its memory. */
export interface Measured {
  samples: number[];
  /** RSS before the measured calls, and the high-water mark after them (bytes). */
  baseline: number;
  peak: number;
  note?: string;
}

/** The call record of a layer for a function measured on its own: SD1.5's largest self-attention. */
function soloCall(size: number, heads: number, headDim: number): AttentionCall {
  const t = size * size;
  return {
    ...{
      path: 'down_blocks.0.attentions.0.transformer_blocks.0.attn1',
      kind: 'self',
      place: 'down',
      index: 0,
    },
    ...{ step: 0, numSteps: 1, timestep: 0, batch: guidedBatch(1), size: [size, size] },
    ...{ heads, headDim, queryTokens: t, keyTokens: t },
  };
}

/** One self-attention call (2, 8, 4096, 40) with the method's function. */
export function measureAttention(name: string, runs: number, out: string): Measured {
  const [b, h, size, d] = [2, 8, 64, 40];
  const shape = [b, h, size * size, d];
  const [q, k, v] = [11, 12, 13].map((s) => new Generator(s).randn(shape)) as [Tensor, Tensor, Tensor];
  const call = soloCall(size, h, d);
  const fn =
    method(name)
      .controllers()
      .map((c) => c.fn?.(call))
      .find((f): f is AttentionFunction => f !== undefined) ?? flashAttention;
  startPeak();
  const baseline = memory().rss;
  const samples: number[] = [];
  let y: Tensor | undefined;
  for (let i = 0; i <= runs; i++) {
    const t0 = now();
    y = noGrad(() => fn.run({ q, k, v, scale: 1 / Math.sqrt(d) }));
    if (i > 0) samples.push(now() - t0); // the first call builds the op sessions
  }
  const peak = memory().hwm;
  saveF32(out, y as Tensor);
  return { samples, baseline, peak, note: fn.name };
}

function inputs(size: number, seed: number): { sample: Tensor; context: Tensor } {
  const g = new Generator(seed);
  return { sample: g.randn([2, 4, size, size]), context: g.randn([2, 77, 768]) };
}

/** UNet evaluations (batch 2 = one guided step, 77 text tokens) at timestep 981. */
export function measureUNet(name: string, size: number, runs: number, out: string): Measured {
  const unet = randomSD15UNet();
  const { sample, context } = inputs(size, 1);
  const ctx: AttentionContext = {
    controllers: method(name).controllers(),
    ...{ step: 0, numSteps: 1, timestep: 981, batch: guidedBatch(1) },
  };
  const forward = () => noGrad(() => unet.forward(sample, 981, context, { ctx }));
  forward(); // builds the op sessions
  startPeak();
  const baseline = memory().rss;
  const samples: number[] = [];
  let y: Tensor | undefined;
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    y = forward();
    samples.push(now() - t0);
  }
  const peak = memory().hwm;
  saveF32(out, y as Tensor);
  return { samples, baseline, peak };
}

/** A guided DDIM loop (guidance 7.5) of `steps` steps on the random UNet; seconds per step. */
export function measureLoop(name: string, size: number, steps: number, out: string): Measured {
  const unet = randomSD15UNet();
  const controllers = method(name).controllers();
  const batch = guidedBatch(1);
  const loop = (seed: number, n: number): Tensor => {
    const { sample, context } = inputs(size, seed);
    const scheduler = schedulerFromConfig(SD15_SCHEDULER_CONFIG);
    scheduler.setTimesteps(n);
    let latents = sample.slice(0, 0, 1);
    return noGrad(() => {
      scheduler.timesteps.forEach((t, step) => {
        const info = { step, numSteps: n, timestep: t, batch };
        for (const c of controllers) c.beforeStep?.({ ...info, latents });
        const eps = unet.forward(concat([latents, latents], 0), t, context, {
          ctx: { ...info, controllers },
        });
        const [u, c] = eps.split(2, 0) as [Tensor, Tensor];
        latents = scheduler.step(u.add(c.sub(u).mul(7.5)), t, latents).prevSample;
      });
      return latents;
    });
  };
  // warm-up (op sessions) on another seed; a calibrated cache calibrates there, on the whole loop
  if (calibrateOn(controllers, () => loop(101, steps)) === undefined) loop(101, 1);
  startPeak();
  const baseline = memory().rss;
  const t0 = now();
  const latents = loop(1, steps);
  const seconds = (now() - t0) / steps;
  const peak = memory().hwm;
  saveF32(out, latents);
  const counts = cacheCounts(controllers);
  return { samples: [seconds], baseline, peak, note: counts };
}

/** What the caches of a run reused, for the bench table's note. */
export function cacheCounts(controllers: readonly Controller[]): string | undefined {
  const notes = controllers.flatMap((c) => {
    if (c instanceof AttentionCaching) return [[...c.counts].map(([m, n]) => `${m} ${n}`).join(', ')];
    if (c instanceof BlockCaching) return [`blocks computed ${c.counts.computed}, reused ${c.counts.reused}`];
    return [];
  });
  return notes.length > 0 ? notes.join('; ') : undefined;
}
