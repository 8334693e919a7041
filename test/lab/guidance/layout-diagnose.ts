// Layout guidance or Attend-and-Excite diagnosed on one development prompt (held-out index ≥ 100 000; never the
// reported 0–199): per guided step, the loss before and after the update, the step actually applied to the
// latents relative to |z_t|, then each object's detected box against its ground-truth box (plain generation from
// the same seed first). Layout guidance runs one update a step here, so its step is lossScale · (1 − ᾱ_t) · ∇L.
//
//   nice -n 10 node --import tsx test/lab/guidance/layout-diagnose.ts [index] [json settings] [layout|excite]

import { BUILTIN_MODEL } from '../../../src/cli/models.js';
import {
  AttendAndExcite,
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
const method = process.argv[4] ?? 'layout';
if (index < 100_000) throw new Error('layout-diagnose: development prompts only (index ≥ 100 000)');
const sd = StableDiffusion.fromPretrained(BUILTIN_MODEL);
const p = heldOutPrompts(1, index)[0]!;
const truth = groundTruthLayout(p.scene, p.caption);
const boxes = truth.map((x) => ({ word: x.shapeWord, box: x.box }));
const norm = (t: Tensor) => Math.sqrt(t.mul(t).sum().item());
const opts = { tokenizer: sd.tokenizer, prompts: [p.caption.text], boxes, ...settings };
const subjects = [truth.map((t) => t.shapeWord)];
const excite = { tokenizer: sd.tokenizer, prompts: [p.caption.text], subjects };

/** Wraps layout guidance with one update a step and logs what it did. */
class Logged implements LatentGuidance {
  readonly name = 'Logged';
  inner =
    method === 'excite'
      ? new AttendAndExcite({ ...excite, ...settings })
      : new LayoutGuidance({ ...opts, maxIter: 1 });
  guide(step: GuidanceStep): Tensor | undefined {
    const before = this.inner.losses.length;
    const x = this.inner.guide(step);
    if (!x) return undefined;
    // the loss at the new latents, by the same method without a step
    const probe =
      method === 'excite'
        ? new AttendAndExcite({ ...excite, ...settings, scaleFactor: 0, thresholds: new Map() })
        : new LayoutGuidance({ ...opts, maxIter: 1, lossThreshold: Number.POSITIVE_INFINITY });
    probe.guide({ ...step, latents: x });
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
for (const run of ['plain', method]) {
  const { images } = sd.generate({
    prompt: [p.caption.text],
    latents: seededLatents(sd, [p.seed]),
    steps: 25,
    guidanceScale: 5,
    scheduler: 'ddim',
    ...(run === 'plain' ? {} : { guidance: [new Logged()] }),
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
  console.log(JSON.stringify({ method: run, objects: got }));
}
