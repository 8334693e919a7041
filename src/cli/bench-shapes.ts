// `attnkit bench` on the built-in Shapes model: each method generates the same held-out prompts from the
// same seed; ShapesEval scores every image against its prompt, and every prompt object's detected box is
// compared with the box of the same object in the reference method's image (mean IoU).

import type { Controller } from '../attention/index.js';
import { type Box, evaluate, HELD_OUT_SEED_BASE, heldOutPrompts, type SceneReport } from '../lab/index.js';
import { StableDiffusion } from '../pipelines/stable-diffusion.js';
import { memory } from '../process/memory.js';
import { Tensor } from '../tensor/index.js';
import { cacheCounts, calibrateOn, type Measured, method } from './bench-methods.js';
import { now, saveF32, startPeak } from './bench-support.js';

/** Held-out prompts (attnkit eval's): the captions of the scenes of seeds offset, offset + 1, … (≥ 10⁹). */
export function shapesPrompts(n: number, offset = HELD_OUT_SEED_BASE): string[] {
  return heldOutPrompts(n, offset - HELD_OUT_SEED_BASE).map((p) => p.caption.text);
}

/** One batched guided generation of every prompt; seconds per denoising step. Images go to `out`. */
export function measureShapes(
  name: string,
  dir: string,
  prompts: number,
  steps: number,
  out: string,
): Measured {
  const sd = StableDiffusion.fromPretrained(dir);
  const controllers = method(name).controllers();
  const generate = (prompt: string[], n: number, seed: number) =>
    sd.generate({ prompt, steps: n, seed, controllers });
  return timeShapes(generate, controllers, prompts, steps, out);
}

/**
 * The timed part of a Shapes row, for any pipeline: a warm-up (where a calibrated cache calibrates, on other prompts
 * and another seed), then one batched generation of the held-out prompts; seconds per step, peak memory, images to
 * `out`. `tag` is added to the row's note.
 */
export function timeShapes(
  generate: (prompt: string[], steps: number, seed: number) => { images: Tensor },
  controllers: readonly Controller[],
  prompts: number,
  steps: number,
  out: string,
  tag?: string,
): Measured {
  const run = (offset: number, n: number) => generate(shapesPrompts(prompts, offset), n, offset);
  const other = HELD_OUT_SEED_BASE + 100_000_000;
  if (calibrateOn(controllers, () => run(other, steps)) === undefined) run(other, 1);
  startPeak();
  const baseline = memory().rss;
  const t0 = now();
  const { images } = run(HELD_OUT_SEED_BASE, steps);
  const seconds = (now() - t0) / steps;
  const peak = memory().hwm;
  saveF32(out, images);
  const counts = cacheCounts(controllers);
  return {
    samples: [seconds],
    baseline,
    peak,
    note: [images.shape.join('×'), tag, counts].filter(Boolean).join('; '),
  };
}

function boxIoU(a: Box, b: Box): number {
  const ix = Math.max(0, Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0));
  const iy = Math.max(0, Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0));
  const inter = ix * iy;
  const area = (x: Box) => (x.x1 - x.x0) * (x.y1 - x.y0);
  return inter / Math.max(area(a) + area(b) - inter, 1e-9);
}

export interface ShapesScore {
  /** Scenes with every object, relation and background right (ShapesEval's all-correct rate). */
  accuracy: number;
  /** Prompt objects present with the right colour and shape. */
  objectAccuracy: number;
  /** Mean over prompt objects of the IoU of their boxes here and in the reference image (0 where missing). */
  meanIoU: number;
}

/** ShapesEval of images (n, 3, H, W) in [−1, 1], and box IoU against the reference's reports. */
export function scoreShapes(
  data: Float32Array,
  shape: readonly number[],
  prompts: readonly string[],
  reference?: readonly SceneReport[],
): { score: ShapesScore; reports: SceneReport[] } {
  const [n, c, h, w] = shape as [number, number, number, number];
  const reports = prompts.slice(0, n).map((p, i) => {
    const image = new Tensor(data.slice(i * c * h * w, (i + 1) * c * h * w), [1, c, h, w]);
    return evaluate(image, p);
  });
  const objects = reports.flatMap((r) => r.objects);
  const ious = reports.flatMap((r, i) =>
    r.objects.map((o, j) => {
      const ref = (reference ?? reports)[i]?.objects[j]?.detected;
      return o.detected && ref ? boxIoU(o.detected.box, ref.box) : 0;
    }),
  );
  const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(xs.length, 1);
  return {
    score: {
      accuracy: mean(reports.map((r) => (r.allCorrect ? 1 : 0))),
      objectAccuracy: mean(objects.map((o) => (o.color && o.shape ? 1 : 0))),
      meanIoU: mean(ious),
    },
    reports,
  };
}
