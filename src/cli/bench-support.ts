// Support for `attnkit bench`: the Stable Diffusion 1.5 UNet architecture with seeded random weights,
// process memory (peak RSS), timing, and running one measurement in a child process of its own.
//
// The model and its initialisation are those of bench/unet.ts (same config, same per-parameter LCG), here
// under src/ so that the installed command has them; bench/unet.ts can import them from here.

import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { parseUNetConfig, UNet2DConditionModel } from '../models/unet2d-condition.js';
import { GroupNorm, LayerNorm } from '../nn/index.js';
import { Tensor } from '../tensor/index.js';
import { untunedEnvironment } from './malloc-tuning.js';

/** Stable Diffusion 1.5's unet/config.json (the architecture; the weights here are random). */
export const SD15_UNET_CONFIG = {
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
};

/** SD 1.x's scheduler_config.json, as DDIM. */
export const SD15_SCHEDULER_CONFIG = {
  _class_name: 'DDIMScheduler',
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  num_train_timesteps: 1000,
  steps_offset: 1,
  clip_sample: false,
  set_alpha_to_one: false,
};

/**
 * The SD1.5 UNet with seeded random weights: conv / linear weights and biases ~ U(±0.02·√3) from a fast LCG
 * per parameter (seeded by its index), norm scales 1 and shifts 0 — deterministic, so every process builds
 * the same model in ~2 s.
 */
export function randomSD15UNet(): UNet2DConditionModel {
  const unet = new UNet2DConditionModel(parseUNetConfig(SD15_UNET_CONFIG));
  const norms = new Set<unknown>();
  for (const [, m] of unet.namedModules()) {
    if (m instanceof GroupNorm || m instanceof LayerNorm) {
      m.weight.value = Tensor.ones(m.weight.shape);
      m.bias.value = Tensor.zeros(m.bias.shape);
      norms.add(m.weight);
      norms.add(m.bias);
    }
  }
  const a = 0.02 * Math.sqrt(3);
  let index = 0;
  for (const [, p] of unet.namedParameters()) {
    index++;
    if (norms.has(p)) continue;
    const data = new Float32Array(p.shape.reduce((x, y) => x * y, 1));
    let s = (Math.imul(index, 0x9e3779b1) ^ 0x5bd1e995) >>> 0;
    for (let i = 0; i < data.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      data[i] = (s * 2 ** -31 - 1) * a;
    }
    p.value = new Tensor(data, p.shape);
  }
  return unet;
}

/** Resident set and its high-water mark, bytes (Linux /proc; elsewhere maxRSS of the process). */
export function memory(): { rss: number; hwm: number } {
  try {
    const s = readFileSync('/proc/self/status', 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? Number.NaN);
    return { rss: kb('VmRSS') * 1024, hwm: kb('VmHWM') * 1024 };
  } catch {
    return { rss: process.memoryUsage().rss, hwm: process.resourceUsage().maxRSS * 1024 };
  }
}

let collect: (() => void) | undefined;

/**
 * Collects garbage and restarts the peak-RSS counter (Linux: clear_refs 5), so that the next `memory().hwm`
 * is the peak of what runs from here on, not of the warm-up before.
 */
export function startPeak(): void {
  if (!collect) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  collect();
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // not Linux: the high-water mark stays that of the whole process
  }
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export const now = (): number => performance.now() / 1000;

export function saveF32(file: string, a: Tensor): void {
  const d = a.data as Float32Array;
  writeFileSync(file, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
}

export function loadF32(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Mean squared difference, and the same relative to the reference's mean square. */
export function mse(a: Float32Array, ref: Float32Array): { mse: number; relative: number; maxAbs: number } {
  if (a.length !== ref.length) return { mse: Number.NaN, relative: Number.NaN, maxAbs: Number.NaN };
  let se = 0;
  let ss = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    const d = (a[i] as number) - (ref[i] as number);
    se += d * d;
    ss += (ref[i] as number) ** 2;
    if (!(Math.abs(d) <= maxAbs)) maxAbs = Math.abs(d); // NaN propagates
  }
  return { mse: se / a.length, relative: se / Math.max(ss, 1e-30), maxAbs };
}

/**
 * Runs `attnkit bench --worker <json>` in a child process (so that its peak memory is its own) and returns
 * the object it prints on its last `RESULT ` line; its stderr passes through.
 */
export function runWorker<T>(job: object, threads?: number): Promise<T> {
  const script = process.argv[1] as string;
  const threadFlags = threads ? ['--threads', String(threads)] : [];
  return new Promise((resolve, reject) => {
    const p = spawn(
      process.execPath,
      [...process.execArgv, script, 'bench', ...threadFlags, '--worker', JSON.stringify(job)],
      // the default allocator: a tuned one keeps the warm-up's freed memory resident (malloc-tuning.ts), and
      // the peak over the RSS before the timed calls would then miss what those calls allocate
      { stdio: ['ignore', 'pipe', 'inherit'], env: untunedEnvironment(process.env) },
    );
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.on('error', reject);
    p.on('close', (code, signal) => {
      const line = out
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) {
        reject(
          new Error(
            `bench worker ${JSON.stringify(job)} failed (exit ${code ?? signal}):\n${out.slice(-2000)}`,
          ),
        );
        return;
      }
      resolve(JSON.parse(line.slice('RESULT '.length)) as T);
    });
  });
}
