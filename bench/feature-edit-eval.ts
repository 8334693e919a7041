// Issue 5's measurements for real-image inversion, MasaCtrl and Plug-and-Play on the Shapes world:
//
//   node --import tsx bench/feature-edit-eval.ts --model models/shapes [--seeds 50] [--steps 50]
//        [--nt-seeds 10] [--inner 10] [--json bench/results/feature-edit.json]
//
// inversion  rendered scene → DDIM inversion with its caption → regeneration; PSNR (peak 2, images in [-1, 1])
//            for the VAE alone (the ceiling), guidance 1, guidance 7.5, and guidance 7.5 with null-text.
// layout     one object, source "… on the left" → target "… on the right" (another cell): the target should
//            follow the target's cell and keep the source's colour (MasaCtrl's task).
// colour     one object, source colour → another colour: the target should take the new colour and keep the
//            object's mask (PnP's task).
// Each task runs with no control (plain regeneration from the same latents), MasaCtrl and PnP, with ShapesEval
// (detectObjects) on source and target: colour error = distance of the objects' mean RGB (8-bit levels),
// IoU of the object pixels, position / colour correct per ShapesEval.

import { writeFileSync } from 'node:fs';
import {
  COLORS,
  captionOf,
  captionOfSpec,
  type Detection,
  detectObjects,
  evaluate,
  renderScene,
  type SceneSpec,
  sampleScene,
} from '../src/lab/shapes/index.js';
import { editFeatures } from '../src/pipelines/feature-edit.js';
import { ddimInvert, nullTextInversion } from '../src/pipelines/inversion.js';
import { initialNoise, StableDiffusion } from '../src/pipelines/stable-diffusion.js';
import { concat, type Tensor } from '../src/tensor/index.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] as string) : fallback;
};
const sd = StableDiffusion.fromPretrained(arg('model', 'models/shapes'));
const [seeds, steps, ntSeeds, inner] = ['seeds', 'steps', 'nt-seeds', 'inner'].map((k, i) =>
  Number(arg(k, ['50', '50', '10', '10'][i] as string)),
) as [number, number, number, number];
const size = sd.defaultSize;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
const psnr = (a: Tensor, b: Tensor) => 10 * Math.log10(4 / a.sub(b).pow(2).mean().item());

// inversion
const inv: Record<string, number[]> = { vae: [], ddim1: [], ddim75: [], nullText75: [] };
for (let seed = 0; seed < seeds; seed++) {
  const scene = sampleScene(seed, { size });
  const image = renderScene(scene).image;
  const prompt = captionOf(scene).text;
  const trajectory = ddimInvert(sd, { image, prompt, steps });
  const zT = trajectory.trajectory[steps] as Tensor;
  const regen = (guidanceScale: number, negativePromptEmbeds?: Tensor[]) =>
    sd.decodeLatents(
      sd.generate({ latents: zT, prompt, negativePromptEmbeds, steps, guidanceScale, scheduler: 'ddim' })
        .latents,
    );
  inv['vae']?.push(psnr(sd.decodeLatents(trajectory.trajectory[0] as Tensor), image));
  inv['ddim1']?.push(psnr(regen(1), image));
  inv['ddim75']?.push(psnr(regen(7.5), image));
  if (seed < ntSeeds) {
    const nt = nullTextInversion(sd, trajectory, { numInnerSteps: inner });
    inv['nullText75']?.push(psnr(regen(7.5, nt.nullEmbeds), image));
  }
  process.stderr.write(`inversion ${seed + 1}/${seeds}\r`);
}

/** Object pixels of the largest detected object: box pixels away from the background colour. */
function objectPixels(image: Tensor, d: Detection): { mask: Uint8Array; rgb: number[] } {
  const o = d.objects[0];
  const plane = size * size;
  const mask = new Uint8Array(plane);
  const sum = [0, 0, 0];
  let n = 0;
  if (!o) return { mask, rgb: [Number.NaN, Number.NaN, Number.NaN] };
  for (let y = o.box.y0; y < o.box.y1; y++) {
    for (let x = o.box.x0; x < o.box.x1; x++) {
      const p = y * size + x;
      const rgb = [0, 1, 2].map((c) => ((image.data[c * plane + p] as number) + 1) * 127.5);
      if (Math.hypot(...rgb.map((v, c) => v - (d.background.rgb[c] as number))) < 60) continue;
      mask[p] = 1;
      rgb.forEach((v, c) => {
        sum[c] = (sum[c] as number) + v;
      });
      n++;
    }
  }
  return { mask, rgb: sum.map((s) => s / Math.max(n, 1)) };
}

function iou(a: Uint8Array, b: Uint8Array): number {
  let [i, u] = [0, 0];
  a.forEach((v, p) => {
    i += v & (b[p] as number);
    u += v | (b[p] as number);
  });
  return u === 0 ? 0 : i / u;
}

/** Both prompts from the same latents with no control (the baseline), as editFeatures starts them. */
function plain(source: string, target: string, seed: number): { source: Tensor; target: Tensor } {
  const z = initialNoise(sd, seed);
  const { images } = sd.generate({
    prompt: [source, target],
    latents: concat([z, z], 0),
    steps,
    scheduler: 'ddim',
  });
  const [s, t] = images.split(2, 0) as [Tensor, Tensor];
  return { source: s, target: t };
}

type Task = 'layout' | 'colour';
const rows: Record<string, Record<string, number[]>> = {};
for (let seed = 0; seed < seeds; seed++) {
  const o = sampleScene(1000 + seed, { size, objects: 1 }).objects[0];
  if (!o) continue;
  const source: SceneSpec = { objects: [{ color: o.color, shape: o.shape, cell: o.cell }], relations: [] };
  const moved = { row: o.cell.row, col: o.cell.col === 1 ? 0 : 2 - o.cell.col };
  const recolour = COLORS[(COLORS.indexOf(o.color) + 3) % COLORS.length] as (typeof COLORS)[number];
  const targets: Record<Task, SceneSpec> = {
    layout: { objects: [{ color: o.color, shape: o.shape, cell: moved }], relations: [] },
    colour: { objects: [{ color: recolour, shape: o.shape, cell: o.cell }], relations: [] },
  };
  for (const task of ['layout', 'colour'] as Task[]) {
    const [sText, tText] = [source, targets[task]].map((s) => captionOfSpec(s).text) as [string, string];
    for (const method of ['none', 'masactrl', 'pnp'] as const) {
      const pair =
        method === 'none'
          ? plain(sText, tText, seed)
          : editFeatures(sd, { method, source: sText, target: tText, steps, seed });
      const [ds, dt] = [detectObjects(pair.source), detectObjects(pair.target)];
      const [ps, pt] = [objectPixels(pair.source, ds), objectPixels(pair.target, dt)];
      const report = evaluate(pair.target, targets[task]).objects[0];
      const key = `${task} ${method}`;
      rows[key] ??= { colourError: [], iou: [], position: [], colour: [] };
      const r = rows[key] as Record<string, number[]>;
      r['colourError']?.push(Math.hypot(...ps.rgb.map((v, c) => v - (pt.rgb[c] as number))));
      r['iou']?.push(iou(ps.mask, pt.mask));
      r['position']?.push(report?.position ? 1 : 0);
      r['colour']?.push(report?.color ? 1 : 0);
    }
  }
  process.stderr.write(`editing ${seed + 1}/${seeds}\r`);
}

const summary = {
  model: arg('model', 'models/shapes'),
  seeds,
  steps,
  inversionPsnr: Object.fromEntries(Object.entries(inv).map(([k, v]) => [k, mean(v)])),
  editing: Object.fromEntries(
    Object.entries(rows).map(([k, r]) => [
      k,
      Object.fromEntries(Object.entries(r).map(([m, v]) => [m, mean(v.filter(Number.isFinite))])),
    ]),
  ),
};
console.log('| inversion | PSNR dB |\n|---|---|');
for (const [k, v] of Object.entries(summary.inversionPsnr)) console.log(`| ${k} | ${v.toFixed(2)} |`);
console.log(
  '\n| task, method | colour error | object IoU | target position ok | target colour ok |\n|---|---|---|---|---|',
);
for (const [k, r] of Object.entries(summary.editing)) {
  const f = (m: string, d = 3) => (r[m] as number).toFixed(d);
  console.log(`| ${k} | ${f('colourError', 1)} | ${f('iou')} | ${f('position', 2)} | ${f('colour', 2)} |`);
}
const out = arg('json', '');
if (out) writeFileSync(out, `${JSON.stringify(summary, null, 2)}\n`);
