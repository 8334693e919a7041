// Layout guidance diagnosed on one development prompt (held-out index ≥ 100 000; never the reported 0–199): per
// guided step, the loss before and after the update, |∇L|, the step actually applied to the latents relative to
// |z_t|, then each object's detected box against its ground-truth box (plain generation from the same seed first).
//
//   nice -n 10 node --import tsx test/lab/guidance/layout-diagnose.ts [index] [json settings of LayoutGuidance]

import { BUILTIN_MODEL } from '../../../src/cli/models.js';
import {
  type GuidanceStep,
  type LatentGuidance,
  LayoutGuidance,
  type LayoutGuidanceOptions,
  StableDiffusion,
  type Tensor,
} from '../../../src/index.js';
import {
  boxIoU,
  evaluate,
  groundTruthLayout,
  heldOutPrompts,
  seededLatents,
} from '../../../src/lab/index.js';

const index = Number(process.argv[2] ?? 100_000);
const settings = JSON.parse(process.argv[3] ?? '{}') as Partial<LayoutGuidanceOptions>;
if (index < 100_000) throw new Error('layout-diagnose: development prompts only (index ≥ 100 000)');
const sd = StableDiffusion.fromPretrained(BUILTIN_MODEL);
const p = heldOutPrompts(1, index)[0]!;
const truth = groundTruthLayout(p.scene, p.caption);
const boxes = truth.map((x) => ({ word: x.shapeWord, box: x.box }));
const norm = (t: Tensor) => Math.sqrt(t.mul(t).sum().item());
const opts = { tokenizer: sd.tokenizer, prompts: [p.caption.text], boxes, ...settings };

/** Wraps layout guidance with one update a step and logs what it did. */
class Logged implements LatentGuidance {
  readonly name = 'Logged';
  inner = new LayoutGuidance({ ...opts, maxIter: 1 });
  guide(step: GuidanceStep): Tensor | undefined {
    const before = this.inner.losses.length;
    const x = this.inner.guide(step);
    if (!x) return undefined;
    const probe = new LayoutGuidance({ ...opts, maxIter: 1, lossThreshold: Number.POSITIVE_INFINITY });
    probe.guide(step.latents === x ? step : { ...step, latents: x });
    const d = norm(x.sub(step.latents));
    console.log(
      JSON.stringify({
        step: step.step,
        alphaCumprod: +step.alphaCumprod.toFixed(5),
        lossBefore: this.inner.losses[before]?.losses[0],
        lossAfter: probe.losses[0]?.losses[0],
        latentNorm: +norm(step.latents).toFixed(3),
        stepNorm: +d.toFixed(4),
        relativeStep: +(d / norm(step.latents)).toFixed(5),
      }),
    );
    return x;
  }
}

console.log(JSON.stringify({ index, text: p.caption.text, boxes: truth.map((t) => t.pixelBox), settings }));
for (const method of ['plain', 'layout']) {
  const { images } = sd.generate({
    prompt: [p.caption.text],
    latents: seededLatents(sd, [p.seed]),
    steps: 25,
    guidanceScale: 5,
    scheduler: 'ddim',
    ...(method === 'layout' ? { guidance: [new Logged()] } : {}),
  });
  const report = evaluate(images, p.caption.text);
  const got = truth.map((t, i) => {
    const d = report.objects[i]?.detected;
    return {
      truth: t.pixelBox,
      detected: d?.box ?? null,
      iou: d ? +boxIoU(d.box, t.pixelBox).toFixed(3) : null,
    };
  });
  console.log(JSON.stringify({ method, objects: got }));
}
