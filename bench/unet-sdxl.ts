// SDXL UNet benchmark (issue 26 item 4): one evaluation of the SDXL base UNet architecture (its unet/config.json,
// seeded random weights, 2.57 G parameters = 10.3 GB in float32) at batch 2 with 77 text tokens (2048 features),
// the pooled text (1280) and 6 time ids, at 64×64 and 128×128 latents (512 and 1024 px):
//
//   (a) attnkit's eager forward, one cached onnxruntime session per op;
//   (b) the same model traced by `exportUNet` into one ONNX graph (external data), run as one session.
//
// Each variant runs in its own child process (this file, `--child <mode> <json>`), so its peak RSS (VmHWM) is its
// own; baseline = RSS after onnxruntime's initialisation. The graph's output must match the eager one (max abs
// ≤ 1e-4 of the output's largest value). Seconds: median of the timed evaluations after one warm-up.
//
// The full size needs ≈ 11 GB per child and 2 × 10.3 GB of temporary .onnx data: run it on a quiet machine,
// `npm run bench -- unet-sdxl`. SDXL_BENCH_TINY=1 runs the same code on a 16-channel SDXL-shaped UNet at 8×8 and
// 16×16 latents in seconds (how the bench itself is checked).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { initializerBytes, writeOnnx } from '../src/io/onnx.js';
import { binding, createSessionFromFile, type OrtTensor, runSession } from '../src/kernels/ort.js';
import { randomUNet } from '../src/models/random-sd15.js';
import type { UNet2DConditionModel } from '../src/models/unet2d-condition.js';
import { exportUNet } from '../src/pipelines/export.js';
import { memory } from '../src/process/memory.js';
import { noGrad, Tensor } from '../src/tensor/index.js';
import { Generator } from '../src/tensor/random.js';
import type { Bench, BenchResult, BenchRow, Target } from './util.js';

const THIS_FILE = fileURLToPath(import.meta.url);
const TINY = process.env['SDXL_BENCH_TINY'] === '1';

/** SDXL base 1.0's unet/config.json (stabilityai/stable-diffusion-xl-base-1.0), the architecture only. */
export const SDXL_UNET_CONFIG = {
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  addition_embed_type: 'text_time',
  addition_embed_type_num_heads: 64,
  addition_time_embed_dim: 256,
  attention_head_dim: [5, 10, 20],
  block_out_channels: [320, 640, 1280],
  center_input_sample: false,
  cross_attention_dim: 2048,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  projection_class_embeddings_input_dim: 2816,
  sample_size: 128,
  transformer_layers_per_block: [1, 2, 10],
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  upcast_attention: false,
  use_linear_projection: true,
};

/** The same layout at 16 channels, for checking the bench in seconds (SDXL_BENCH_TINY=1). */
const TINY_CONFIG = {
  ...SDXL_UNET_CONFIG,
  attention_head_dim: [1, 2, 2],
  block_out_channels: [16, 16, 32],
  cross_attention_dim: 24,
  addition_time_embed_dim: 8,
  projection_class_embeddings_input_dim: 16 + 6 * 8,
  norm_num_groups: 8,
  transformer_layers_per_block: [1, 1, 2],
};

const CONFIG = TINY ? TINY_CONFIG : SDXL_UNET_CONFIG;
const POOLED = TINY ? 16 : 1280;
const SIZES = TINY ? [8, 16] : [64, 128];
const RUNS: Record<number, number> = TINY ? { 8: 3, 16: 3 } : { 64: 3, 128: 2 };
const BATCH = 2;
const TOKENS = 77;
const PARITY_TOL = 1e-4;

/** SDXL's UNet with seeded random weights (the SD1.5 bench's generator: U(±0.02·√3) per parameter, norms 1 and 0). */
export function randomSDXLUNet(): UNet2DConditionModel {
  return randomUNet(CONFIG);
}

/** Batch 2 (unconditional, conditional), SDXL's 6 time ids (1024 px, no crop). */
function inputs(size: number) {
  return {
    sample: new Generator(1).randn([BATCH, 4, size, size]),
    timestep: Tensor.from([981]),
    context: new Generator(2).randn([BATCH, TOKENS, CONFIG.cross_attention_dim]),
    textEmbeds: new Generator(3).randn([BATCH, POOLED]),
    timeIds: Tensor.from(Array.from({ length: BATCH }, () => [1024, 1024, 0, 0, 1024, 1024]).flat(), [
      BATCH,
      6,
    ]),
  };
}

// ─── children: each prints one line `@@ {json}` ──────────────────────────────────────────────────────────

interface ChildResult {
  setupSeconds: number;
  seconds: number[];
  baseline: number;
  peak: number;
  extra?: Record<string, number>;
}

function child(mode: string, a: { size: number; dir: string }): ChildResult | Record<string, number> {
  const now = () => performance.now() / 1000;
  const x = inputs(a.size);
  const file = path.join(a.dir, `unet-${a.size}.onnx`);
  if (mode === 'export') {
    const unet = randomSDXLUNet();
    const g = exportUNet(unet, { batch: BATCH, height: a.size, width: a.size, textLength: TOKENS });
    writeOnnx(file, g);
    return { nodes: g.nodes.length, bytes: initializerBytes(g), parameters: unet.numParameters() };
  }
  binding();
  const baseline = memory().rss;
  const t0 = now();
  let step: () => Float32Array;
  if (mode === 'eager') {
    const unet = randomSDXLUNet();
    const added = { textEmbeds: x.textEmbeds, timeIds: x.timeIds };
    step = () => noGrad(() => unet.forward(x.sample, x.timestep, x.context, { added })).data as Float32Array;
  } else {
    const session = createSessionFromFile(file);
    const feeds: Record<string, OrtTensor> = {
      sample: x.sample.ort(),
      timestep: x.timestep.ort(),
      encoder_hidden_states: x.context.ort(),
      text_embeds: x.textEmbeds.ort(),
      time_ids: x.timeIds.ort(),
    };
    step = () => (runSession(session, feeds, ['noise_pred'])[0] as OrtTensor).data as Float32Array;
  }
  const setupSeconds = now() - t0;
  let out = step(); // warm-up
  const seconds: number[] = [];
  for (let i = 0; i < (RUNS[a.size] ?? 1); i++) {
    const r0 = now();
    out = step();
    seconds.push(now() - r0);
  }
  writeFileSync(
    path.join(a.dir, `${mode}-${a.size}.f32`),
    new Uint8Array(out.buffer, out.byteOffset, out.byteLength),
  );
  return { setupSeconds, seconds, baseline, peak: memory().hwm };
}

function runChild<T>(mode: string, args: object): T {
  const r = spawnSync(
    process.execPath,
    [...process.execArgv, THIS_FILE, '--child', mode, JSON.stringify(args)],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 1 << 24,
    },
  );
  const line = r.stdout.split('\n').find((l) => l.startsWith('@@ '));
  if (r.status !== 0 || !line)
    throw new Error(`unet-sdxl bench: child '${mode}' failed (${r.status ?? r.signal})`);
  return JSON.parse(line.slice(3)) as T;
}

// ─── parent ──────────────────────────────────────────────────────────────────────────────────────────────

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1] as number;
const gb = (bytes: number) => `${(bytes / 1e9).toFixed(2)} GB`;

function readF32(file: string): Float32Array {
  const b = readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

async function run(): Promise<BenchResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'attnkit-sdxl-bench-'));
  const rows: BenchRow[] = [];
  const targets: Target[] = [];
  const notes: string[] = [];
  try {
    for (const size of SIZES) {
      const ex = runChild<Record<string, number>>('export', { size, dir });
      const [graph, eager] = (['graph', 'eager'] as const).map((m) =>
        runChild<ChildResult>(m, { size, dir }),
      );
      const a = readF32(path.join(dir, `eager-${size}.f32`));
      const b = readF32(path.join(dir, `graph-${size}.f32`));
      let diff = 0;
      let top = 0;
      for (let i = 0; i < a.length; i++) {
        diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
        top = Math.max(top, Math.abs(a[i]!));
      }
      const what = `SDXL UNet${TINY ? ' (tiny)' : ''} ${size}×${size} latents, batch ${BATCH}`;
      for (const [impl, r, base] of [
        ['onnxruntime session on the exported graph', graph!, true],
        ['attnkit eager', eager!, false],
      ] as const) {
        const t = median(r.seconds);
        rows.push({
          case: what,
          impl,
          timing: { median: t, min: Math.min(...r.seconds), repeats: r.seconds.length, inner: 1 },
          ...(base ? { baseline: true } : { speedVsBaseline: median(graph!.seconds) / t }),
          note: `peak RSS ${gb(r.peak)} (over baseline ${gb(r.peak - r.baseline)}), setup ${r.setupSeconds.toFixed(1)} s`,
        });
      }
      targets.push({
        name: `graph = eager at ${size}×${size}`,
        requirement: `max |Δ| ≤ ${PARITY_TOL} × max |output|`,
        value: diff / top,
        unit: 'relative',
        pass: diff <= PARITY_TOL * top,
      });
      notes.push(
        `${size}×${size}: ${ex['parameters']} parameters (${gb(ex['bytes'] ?? 0)} of initializers), ${ex['nodes']} nodes; ` +
          `graph vs eager max |Δ| ${diff.toExponential(2)} (outputs up to ${top.toFixed(3)})`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { name: 'unet-sdxl', rows, targets, notes };
}

const bench: Bench = {
  name: 'unet-sdxl',
  description:
    'SDXL base UNet (random weights, 10.3 GB): eager vs exported graph at 64² and 128² latents, peak RSS',
  run,
};
export default bench;

const i = process.argv.indexOf('--child');
if (i >= 0) {
  const r = child(process.argv[i + 1] as string, JSON.parse(process.argv[i + 2] as string));
  process.stdout.write(`\n@@ ${JSON.stringify(r)}\n`);
}
