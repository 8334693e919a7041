// LoRA bench (issue 27): what a LoRA costs per denoising step on the Stable Diffusion 1.5 UNet architecture
// (random weights, src/models/random-sd15.ts), one guided step = one evaluation at batch 2 with 77 text tokens.
//
//   base       the UNet as it is
//   unmerged   a rank-4 LoRA on every attention projection (q, k, v, out of all 32 attention layers: 128
//              deltas) through the weights hook: each call projects with W + s·B·A (issue target ≤ 1.10× base)
//   merged     the same LoRA merged into the weights (mergeLora): the base model's work, so ≈ 1.00×
//
// The three run interleaved in one process (base, unmerged, merged, base, …) so that load from other
// processes falls on each alike; medians and minima of the samples. Latent side LORA_BENCH_SIZE (default 64,
// 512-pixel images; 32 is 4× quicker). Run alone: `npx tsx bench/lora.ts`, or `npm run bench -- lora` once
// bench/run.ts lists it.

import type { AttentionContext } from '../src/attention/hooks.js';
import { Attention, guidedBatch } from '../src/attention/index.js';
import { type LoraDelta, loraController } from '../src/methods/weight/lora.js';
import { mergeLora } from '../src/methods/weight/lora-merge.js';
import { randomSD15UNet } from '../src/models/random-sd15.js';
import { noGrad, type Tensor } from '../src/tensor/index.js';
import { Generator } from '../src/tensor/random.js';
import type { Bench, BenchResult, BenchRow, Timing } from './util.js';

const RANK = 4;

/** A rank-4 LoRA with small random factors on every attention projection of `unet`. */
function randomLora(unet: ReturnType<typeof randomSD15UNet>): LoraDelta[] {
  const gen = new Generator(27);
  const deltas: LoraDelta[] = [];
  for (const [path, m] of unet.namedModules()) {
    if (!(m instanceof Attention)) continue;
    const w = m.projectionWeights();
    for (const [proj, p] of [
      ['to_q', w.q],
      ['to_k', w.k],
      ['to_v', w.v],
      ['to_out.0', w.out],
    ] as const) {
      const [out, inp] = p.weight.shape as [number, number];
      deltas.push({
        module: `${path}.${proj}`,
        down: gen.randn([RANK, inp]).mul(0.01),
        up: gen.randn([out, RANK]).mul(0.01),
        alphaScale: 1,
      });
    }
  }
  return deltas;
}

function summary(samples: number[]): Timing {
  const s = [...samples].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)] as number, min: s[0] as number, repeats: s.length, inner: 1 };
}

const bench: Bench = {
  name: 'lora',
  description: 'SD1.5 UNet step: base vs a rank-4 LoRA unmerged (weights hook) vs merged',
  async run(): Promise<BenchResult> {
    const size = Number(process.env['LORA_BENCH_SIZE'] ?? 64);
    const repeats = Number(process.env['LORA_BENCH_REPEATS'] ?? 3);
    const unet = randomSD15UNet();
    const deltas = randomLora(unet);
    const gen = new Generator(1);
    const sample = gen.randn([2, 4, size, size]);
    const context = gen.randn([2, 77, 768]);
    const ctxOf = (controllers: AttentionContext['controllers']): AttentionContext => ({
      controllers,
      step: 0,
      numSteps: 1,
      timestep: 981,
      batch: guidedBatch(1),
    });
    const hooked = ctxOf([loraController([{ deltas, scale: 1 }])]);
    const plain = ctxOf([]);
    const forward = (ctx: AttentionContext): Tensor =>
      noGrad(() => unet.forward(sample, 981, context, { ctx }));
    const variants: Record<string, () => Tensor> = {
      base: () => forward(plain),
      unmerged: () => forward(hooked),
      merged: () => forward(plain),
    };
    variants.base?.(); // builds the op sessions
    variants.unmerged?.();
    const samples: Record<string, number[]> = { base: [], unmerged: [], merged: [], merge: [] };
    for (let r = 0; r < repeats; r++) {
      for (const [name, run] of Object.entries(variants)) {
        let t0 = performance.now();
        // merged: the merge (timed on its own) before the step, the unmerge after it
        const m = name === 'merged' ? mergeLora(unet, [{ deltas, scale: 1 }]) : undefined;
        if (m) samples.merge?.push((performance.now() - t0) / 1000);
        t0 = performance.now();
        run();
        samples[name]?.push((performance.now() - t0) / 1000);
        m?.unmerge();
      }
    }
    const base = summary(samples.base as number[]);
    const rows: BenchRow[] = Object.entries(samples).map(([name, s]) => {
      const timing = summary(s);
      return {
        case: `SD1.5 UNet ${size}×${size} latents, batch 2`,
        impl: name,
        timing,
        speedVsBaseline: base.median / timing.median,
        speedVsBaselineMin: base.min / timing.min,
        ...(name === 'base' ? { baseline: true } : {}),
        ...(name === 'merge' ? { note: 'mergeLora itself, once per generation' } : {}),
      };
    });
    const unmerged = summary(samples.unmerged as number[]);
    const cost = unmerged.min / base.min;
    const mergedCost = summary(samples.merged as number[]).min / base.min;
    return {
      name: 'lora',
      rows,
      targets: [
        {
          name: 'unmerged LoRA per step',
          requirement: '≤ 1.10× the base model (fastest samples)',
          value: cost,
          unit: '×',
          pass: cost <= 1.1,
        },
        {
          name: 'merged LoRA per step',
          requirement: '≈ 1.00× the base model: the same work (≤ 1.05× of fastest samples, timing noise)',
          value: mergedCost,
          unit: '×',
          pass: mergedCost <= 1.05,
        },
      ],
      notes: [`${deltas.length} rank-${RANK} deltas on the attention projections`],
    };
  },
};

export default bench;

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await bench.run();
  for (const row of r.rows) {
    const t = row.timing;
    process.stdout.write(
      `${row.impl.padEnd(9)} median ${t.median.toFixed(2)} s  min ${t.min.toFixed(2)} s  ` +
        `base/this ${row.speedVsBaseline?.toFixed(3)} (min ${row.speedVsBaselineMin?.toFixed(3)})\n`,
    );
  }
  for (const t of r.targets)
    process.stdout.write(
      `${t.name}: ${t.value.toFixed(3)}${t.unit} (${t.requirement}) ${t.pass ? 'pass' : 'FAIL'}\n`,
    );
}
