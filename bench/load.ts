// Weights-loading benchmark (issue 26 item 3): the memory and time of loading the Stable Diffusion 1.5 UNet
// architecture (random weights, src/models/random-sd15.ts; 859.5 M parameters = 3.44 GB in float32) from a
// diffusers folder whose weights are float32, float16 (diffusers' `variant: "fp16"`) or bfloat16 safetensors.
// The target: a half-precision folder loads into float32 parameters with peak memory ≤ 1.2× the float32
// weights' size, i.e. without a full second copy.
//
// The parent writes one folder (config.json + diffusion_pytorch_model[.fp16|.bf16].safetensors) to a
// temporary directory, then loads each variant in a fresh child process (this file, `--child <dir> <mode>`)
// with `UNet2DConditionModel.fromPretrained(dir, { variant })`. The child's memory baseline is its RSS after
// imports, before any weight exists; its peak is VmHWM (the resident high-water mark). It also reports the
// load's wall seconds, CPU seconds and page faults, and a digest of sampled parameter bits that the parent
// checks against its own model rounded the same way. The files were just written, so they are read from the
// page cache: the seconds are memory, copying and conversion, not disk.
//
// One reference row loads the fp16 file the way a whole-file reader would: one Buffer holding the whole file,
// parsed in memory (parseSafetensors), to show what reading in pieces saves.

import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { bfloat16ToFloat32, float16ToFloat32, float32ToBfloat16, float32ToFloat16 } from '../src/io/half.js';
import { parseSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { randomSD15UNet, SD15_UNET_CONFIG } from '../src/models/random-sd15.js';
import { UNet2DConditionModel } from '../src/models/unet2d-condition.js';
import { parseUNetConfig } from '../src/models/unet2d-config.js';
import type { Module } from '../src/nn/index.js';
import { memory } from '../src/process/memory.js';
import type { Bench, BenchResult, BenchRow, Target, Timing } from './util.js';

const THIS_FILE = fileURLToPath(import.meta.url);
const WEIGHTS = 'diffusion_pytorch_model';
/** Loads per mode (LOAD_BENCH_REPEATS), alternating between modes. */
const REPEATS = Number(process.env['LOAD_BENCH_REPEATS'] ?? 2);
const MAX_RATIO = 1.2;
/** Every SAMPLE_STRIDE-th element of each parameter goes into the digest. */
const SAMPLE_STRIDE = 4099;

type Mode = 'fp32' | 'fp16' | 'bf16' | 'fp16-whole-file';
const MODES: readonly Mode[] = ['fp32', 'fp16', 'bf16', 'fp16-whole-file'];
const VARIANT: Record<Mode, string | undefined> = {
  fp32: undefined,
  fp16: 'fp16',
  bf16: 'bf16',
  'fp16-whole-file': 'fp16',
};

interface ChildReport {
  baselineRss: number;
  peakHwm: number;
  afterRss: number;
  seconds: number;
  userSeconds: number;
  systemSeconds: number;
  minorFaults: number;
  parameterBytes: number;
  digest: number;
}

/** FNV-1a over the float32 bits of every SAMPLE_STRIDE-th element of every parameter, in order. */
function digest(model: Module, round: (bits: number) => number = (b) => b): number {
  let h = 0x811c9dc5;
  for (const p of model.parameters()) {
    const d = p.value.data as Float32Array;
    const bits = new Uint32Array(d.buffer, d.byteOffset, d.length);
    for (let i = 0; i < bits.length; i += SAMPLE_STRIDE) h = Math.imul(h ^ round(bits[i]!), 0x01000193) >>> 0;
  }
  return h;
}

function bitsOf(v: number): number {
  return new Uint32Array(Float32Array.of(v).buffer)[0]!;
}
function floatOf(bits: number): number {
  return new Float32Array(Uint32Array.of(bits).buffer)[0]!;
}
const ROUND: Record<Mode, (bits: number) => number> = {
  fp32: (b) => b,
  fp16: (b) => bitsOf(float16ToFloat32(float32ToFloat16(floatOf(b)))),
  bf16: (b) => bitsOf(bfloat16ToFloat32(float32ToBfloat16(floatOf(b)))),
  'fp16-whole-file': (b) => bitsOf(float16ToFloat32(float32ToFloat16(floatOf(b)))),
};

// ─── the child: one load, measured ───────────────────────────────────────────────────────────────────────

function child(dir: string, mode: Mode): ChildReport {
  const baseline = memory();
  const before = process.resourceUsage();
  const t0 = performance.now();
  let unet: UNet2DConditionModel;
  if (mode === 'fp16-whole-file') {
    const bytes = readFileSync(path.join(dir, `${WEIGHTS}.fp16.safetensors`));
    const config = parseUNetConfig(JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')));
    unet = new UNet2DConditionModel(config).load(parseSafetensors(bytes).tensors);
  } else {
    unet = UNet2DConditionModel.fromPretrained(dir, { variant: VARIANT[mode] });
  }
  const seconds = (performance.now() - t0) / 1000;
  const after = process.resourceUsage();
  const m = memory();
  return {
    baselineRss: baseline.rss,
    peakHwm: m.hwm,
    afterRss: m.rss,
    seconds,
    userSeconds: (after.userCPUTime - before.userCPUTime) / 1e6,
    systemSeconds: (after.systemCPUTime - before.systemCPUTime) / 1e6,
    minorFaults: after.minorPageFault - before.minorPageFault,
    parameterBytes: unet.numParameters() * 4,
    digest: digest(unet),
  };
}

async function runChild(dir: string, mode: Mode): Promise<ChildReport> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...process.execArgv, THIS_FILE, '--child', dir, mode],
    { maxBuffer: 1 << 20 },
  );
  const line = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(line) as ChildReport;
}

// ─── the parent ──────────────────────────────────────────────────────────────────────────────────────────

const GB = 1e9;
const gb = (bytes: number) => `${(bytes / GB).toFixed(2)} GB`;

function timing(samples: readonly number[]): Timing {
  const s = [...samples].sort((a, b) => a - b);
  const m = s.length >> 1;
  return { median: s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2, min: s[0]!, repeats: s.length, inner: 1 };
}

/** Writes the folder; returns the expected digest per mode and the float32 weights' size. */
function writeFolder(dir: string): {
  expected: Record<Mode, number>;
  weightBytes: number;
  files: Record<string, number>;
} {
  const unet = randomSD15UNet();
  const weights = unet.stateDict();
  writeFileSync(path.join(dir, 'config.json'), `${JSON.stringify(SD15_UNET_CONFIG, null, 2)}\n`);
  writeSafetensors(path.join(dir, `${WEIGHTS}.safetensors`), weights);
  writeSafetensors(path.join(dir, `${WEIGHTS}.fp16.safetensors`), weights, { dtype: 'float16' });
  writeSafetensors(path.join(dir, `${WEIGHTS}.bf16.safetensors`), weights, { dtype: 'bfloat16' });
  const expected = Object.fromEntries(MODES.map((m) => [m, digest(unet, ROUND[m])])) as Record<Mode, number>;
  const files = Object.fromEntries(
    ['', '.fp16', '.bf16'].map((v) => [
      `${WEIGHTS}${v}.safetensors`,
      statSync(path.join(dir, `${WEIGHTS}${v}.safetensors`)).size,
    ]),
  );
  return { expected, weightBytes: unet.numParameters() * 4, files };
}

const load: Bench = {
  name: 'load',
  description:
    'SD1.5 UNet folder load from fp32 / fp16 / bf16 safetensors: peak RSS over baseline vs fp32 size',
  async run(): Promise<BenchResult> {
    const loadAtStart = os.loadavg()[0]!;
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'attnkit-bench-load-'));
    const cleanup = () => rmSync(tmp, { recursive: true, force: true });
    const onSignal = (sig: NodeJS.Signals) => {
      cleanup();
      process.kill(process.pid, sig);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const dir = path.join(tmp, 'unet');
      mkdirSync(dir);
      const t0 = performance.now();
      const { expected, weightBytes, files } = writeFolder(dir);
      const writeSeconds = (performance.now() - t0) / 1000;
      const reports: Record<Mode, ChildReport[]> = { fp32: [], fp16: [], bf16: [], 'fp16-whole-file': [] };
      for (let r = 0; r < REPEATS; r++) {
        for (const mode of MODES) {
          const rep = await runChild(dir, mode);
          if (rep.digest !== expected[mode]) {
            throw new Error(
              `load bench: ${mode}: parameter digest ${rep.digest} != expected ${expected[mode]} (wrong values loaded)`,
            );
          }
          reports[mode].push(rep);
          console.error(
            `[load] ${mode}: peak +${gb(rep.peakHwm - rep.baselineRss)} (${((rep.peakHwm - rep.baselineRss) / weightBytes).toFixed(3)}× fp32 weights), ` +
              `${rep.seconds.toFixed(1)} s (user ${rep.userSeconds.toFixed(1)} s, sys ${rep.systemSeconds.toFixed(1)} s, ${rep.minorFaults} minor faults)`,
          );
        }
      }
      const rows: BenchRow[] = [];
      const targets: Target[] = [];
      const caseName = `SD1.5 UNet folder load (${(weightBytes / 4 / 1e6).toFixed(1)} M params, ${gb(weightBytes)} in float32)`;
      const fileOf: Record<Mode, string> = {
        fp32: `${WEIGHTS}.safetensors`,
        fp16: `${WEIGHTS}.fp16.safetensors`,
        bf16: `${WEIGHTS}.bf16.safetensors`,
        'fp16-whole-file': `${WEIGHTS}.fp16.safetensors`,
      };
      const summary: Record<string, unknown> = {};
      for (const mode of MODES) {
        const reps = reports[mode];
        const over = Math.max(...reps.map((x) => x.peakHwm - x.baselineRss));
        const ratio = over / weightBytes;
        const impl =
          mode === 'fp16-whole-file'
            ? 'fp16, whole file in one Buffer + parseSafetensors (reference)'
            : `fromPretrained variant ${VARIANT[mode] ?? '(none)'}`;
        rows.push({
          case: caseName,
          impl,
          timing: timing(reps.map((x) => x.seconds)),
          baseline: mode === 'fp32',
          note: `peak RSS +${gb(over)} over baseline = ${ratio.toFixed(3)}× fp32 weights; file ${gb(files[fileOf[mode]]!)}`,
        });
        summary[mode] = {
          peakOverBaselineBytes: over,
          ratioToFloat32Weights: ratio,
          file: fileOf[mode],
          fileBytes: files[fileOf[mode]],
          loads: reps,
        };
        if (mode !== 'fp16-whole-file') {
          targets.push({
            name: `${mode} load peak memory`,
            requirement: `peak RSS − baseline ≤ ${MAX_RATIO}× float32 weights (${gb(MAX_RATIO * weightBytes)})`,
            value: ratio,
            unit: '×',
            pass: ratio <= MAX_RATIO,
          });
        }
      }
      for (const r of rows) {
        const base = rows.find((x) => x.baseline)!;
        r.speedVsBaseline = base.timing.median / r.timing.median;
        r.speedVsBaselineMin = base.timing.min / r.timing.min;
      }
      const notes = [
        `peak = VmHWM of a fresh child process per load, minus its RSS after imports (max over ${REPEATS} loads per mode); ` +
          'seconds are the load alone (config, file read, conversion, loadStateDict), median and min',
        'files read from the page cache (just written); GLIBC_TUNABLES in the children: ' +
          `${process.env['GLIBC_TUNABLES'] ?? '(none)'}`,
        `writing the three files took ${writeSeconds.toFixed(0)} s`,
        `load average (1 min) at start ${loadAtStart.toFixed(2)}, after the loads ${os.loadavg()[0]!.toFixed(2)}`,
        'every load checked: a digest of sampled parameter bits equals the parent model rounded to the file format',
      ];
      const result = { name: 'load', rows, targets, notes, details: { weightBytes, files, ...summary } };
      return result;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      cleanup();
    }
  },
};

export default load;

if (process.argv[1] && path.resolve(process.argv[1]) === THIS_FILE && process.argv[2] === '--child') {
  const report = child(process.argv[3] ?? '', process.argv[4] as Mode);
  process.stdout.write(`${JSON.stringify(report)}\n`);
}
