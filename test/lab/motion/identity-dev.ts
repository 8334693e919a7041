// Text2Video-Zero identity on development clips (docs/video.md, "Identity on development clips"): each warp
// sampling × method on the same clips, with or without re-noising to t1; every clip's frame strip and a JSON of
// the summaries and per-clip results written to <outDir>.
//   node --import tsx test/lab/motion/identity-dev.ts <outDir>
//   env: WARPS (nearest-reflection,bilinear-border), METHODS (motion-only,t2v-zero), CLIPS (8), START (100000),
//        T0 (150), T1 (none), TAG (dev)

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { frameStrip, StableDiffusion, type VideoMethod } from '../../../src/index.js';
import { writePng } from '../../../src/io/png.js';
import { measureVideo } from '../../../src/lab/motion/measure.js';
import type { WarpSampling } from '../../../src/methods/feature/cross-frame-attention.js';

const out = process.argv[2] ?? 'identity-dev';
const env = process.env;
const warps = (env.WARPS ?? 'nearest-reflection,bilinear-border').split(',') as WarpSampling[];
const methods = (env.METHODS ?? 'motion-only,t2v-zero').split(',') as VideoMethod[];
const clips = Number(env.CLIPS ?? 8);
const start = Number(env.START ?? 100_000);
const t0 = Number(env.T0 ?? 150);
const t1 = env.T1 ? Number(env.T1) : undefined;
const tag = env.TAG ?? 'dev';
const sd = StableDiffusion.fromPretrained();
mkdirSync(join(out, 'strips'), { recursive: true });
const result: Record<string, unknown> = {};
for (const warp of warps) {
  const t = performance.now();
  const m = measureVideo(
    sd,
    {
      clips,
      start,
      t0,
      methods,
      sharedDirection: true,
      warp,
      ...(t1 ? { t1 } : {}),
      onClip: (d, n) => process.stderr.write(`${warp} ${d}/${n}\n`),
    },
    clips,
  );
  result[warp] = {
    summary: m.summary,
    seconds: (performance.now() - t) / 1000,
    rows: m.rows.map((r) => ({
      seed: r.seed,
      caption: r.caption,
      method: r.method,
      identity: r.report.identity,
      dirs: r.report.objects.map((o) => o.trajectory?.detected ?? null),
      cs: r.report.objects.map((o) => o.colorShape.map(Number).join('')),
    })),
  };
  for (const r of m.rows)
    if (r.frames)
      writePng(join(out, 'strips', `${tag}-${warp}-${r.method}-${r.seed}.png`), frameStrip(r.frames));
  console.log(warp, JSON.stringify(m.summary));
  writeFileSync(join(out, `${tag}.json`), JSON.stringify(result, null, 1));
}
