// `npm run bench [-- name …]`: runs every registered bench, or the ones named, prints a table per bench and
// writes bench/results/<name>.json (rows, targets, notes, machine info and date).
//
// To add a bench: write bench/<name>.ts whose default export is a `Bench` ({ name, description, run }) and
// add it to `BENCHES` below.

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { relaunchWithMallocTuning } from '../src/process/malloc-tuning.js';
import engine from './engine.js';
import load from './load.js';
import lora from './lora.js';
import unet from './unet.js';
import unetSDXL from './unet-sdxl.js';
import { type Bench, type BenchResult, formatSeconds, machineInfo, textTable } from './util.js';

await relaunchWithMallocTuning(); // in the launcher this never returns: it exits with the child's status

const BENCHES: readonly Bench[] = [engine, unet, unetSDXL, load, lora];

const RESULTS_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');

function usage(): string {
  const list = BENCHES.map((b) => `  ${b.name.padEnd(12)} ${b.description}`).join('\n');
  return `usage: npm run bench [-- [--list] [--no-write] [name …]]\n\nbenches:\n${list}`;
}

function printResult(r: BenchResult): void {
  const rows: string[][] = [
    ['case', 'implementation', 'median', 'min', 'GFLOP/s', 'vs baseline', '(min)', 'note'],
  ];
  let last = '';
  for (const x of r.rows) {
    rows.push([
      x.case === last ? '' : x.case,
      x.impl,
      formatSeconds(x.timing.median),
      formatSeconds(x.timing.min),
      x.gflops === undefined ? '' : x.gflops.toFixed(1),
      x.baseline ? 'baseline' : x.speedVsBaseline === undefined ? '' : `${x.speedVsBaseline.toFixed(2)}×`,
      x.baseline || x.speedVsBaselineMin === undefined ? '' : `${x.speedVsBaselineMin.toFixed(2)}×`,
      x.note ?? '',
    ]);
    last = x.case;
  }
  console.log(`\n${r.name}\n`);
  console.log(textTable(rows, [false, false, true, true, true, true, true, false]));
  if (r.targets.length > 0) {
    const t: string[][] = [['target', 'requirement', 'measured', 'result']];
    for (const x of r.targets) {
      const v = x.unit === '×' ? `${x.value.toFixed(2)}×` : `${x.value.toFixed(2)} ${x.unit}`;
      t.push([x.name, x.requirement, v, x.pass ? 'PASS' : 'FAIL']);
    }
    console.log(`\n${textTable(t, [false, false, true, false])}`);
  }
  if (r.notes.length > 0) console.log(`\n${r.notes.map((n) => `- ${n}`).join('\n')}`);
}

async function main(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h') || argv.includes('--list')) {
    console.log(usage());
    return 0;
  }
  const write = !argv.includes('--no-write');
  const names = argv.filter((a) => !a.startsWith('--'));
  const unknown = names.filter((n) => !BENCHES.some((b) => b.name === n));
  if (unknown.length > 0) {
    console.error(`unknown bench: ${unknown.join(', ')}\n\n${usage()}`);
    return 2;
  }
  const selected = names.length > 0 ? BENCHES.filter((b) => names.includes(b.name)) : BENCHES;
  const machine = machineInfo();
  console.log(
    `${machine.cpu}, ${machine.cores} cores, ${machine.totalMemGiB} GiB; node ${machine.node}; ` +
      `onnxruntime-node ${machine.onnxruntime}; load average ${machine.loadAverage1m}`,
  );
  if (machine.loadAverage1m > 0.5) {
    console.log(
      `note: the machine is busy (load average ${machine.loadAverage1m} on ${machine.cores} cores): absolute ` +
        "times run slow and noisy; the ratios against each case's baseline are what to read.",
    );
  }
  let failed = 0;
  for (const b of selected) {
    const t0 = performance.now();
    const result = await b.run();
    const seconds = (performance.now() - t0) / 1000;
    printResult(result);
    console.log(`\n(${b.name}: ${seconds.toFixed(1)} s)`);
    failed += result.targets.filter((t) => !t.pass).length;
    if (write) {
      mkdirSync(RESULTS_DIR, { recursive: true });
      const file = path.join(RESULTS_DIR, `${b.name}.json`);
      const loadAverage1mAfter = machineInfo().loadAverage1m;
      const json = {
        bench: b.name,
        date: new Date().toISOString(),
        seconds,
        machine,
        loadAverage1mAfter,
        ...result,
      };
      writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
      console.log(`wrote ${path.relative(process.cwd(), file)}`);
    }
  }
  if (failed > 0) console.log(`\n${failed} target(s) not met`);
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
