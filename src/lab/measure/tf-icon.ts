// TF-ICON composition (issue 33): a rendered one-object scene's object pasted into a rendered scene of one or two
// objects at a free box. Scored with ShapesEval against the composite scene's caption: the pasted object detected
// in the box with its colour and shape; the scene's objects kept (right colour and shape, detected-mask IoU
// ≥ 0.9 with their detection in the rendered background); the error to the rendered background outside the box
// against the inversion's own reconstruction error there (the pasted image, DDIM-inverted with the exceptional
// prompt, regenerated from its noise). Beside it the naive baseline: cut-and-paste, then SDEdit (the pasted
// image noised to half the schedule and denoised with the caption).

import {
  type ComposeOptions,
  type Controller,
  composeImage,
  ddimInvert,
  exceptionalPromptEmbeds,
  type PixelBox,
  randn,
  type StableDiffusion,
  type Tensor,
} from '../../index.js';
import { maskOf, mean, meanAbsError, rate, rightObject } from '../metrics.js';
import { heldOutSeed } from '../seeds.js';
import {
  captionOf,
  cellAt,
  evaluate,
  maskIoU,
  renderScene,
  type Scene,
  sampleScene,
} from '../shapes/index.js';

/** Settings of the TF-ICON measurement. */
export interface TFIconMeasureOptions {
  /** Held-out indices of the background scenes from here; the object scenes from here + 50 000. */
  start: number;
  cases: number;
  steps: number;
  /** Guidance of the composite (the reference's same-domain 2.5) and of the SDEdit baseline. */
  guidanceScale: number;
  /** SDEdit's strength: the fraction of the schedule re-run (default 0.5). */
  strength?: number;
  method?: Pick<ComposeOptions, 'tauA' | 'tauB' | 'exceptionalToken'>;
  /** Called after each finished case with the count done and the count asked for (a progress bar). */
  progress?: (done: number, total: number) => void;
  /** Called with the totals so far after each case (a long run writes them as it goes). */
  partial?: (m: TFIconMeasurement) => void;
}

/** One composite's scores. */
export interface CompositeScore {
  /** The pasted object detected with its colour and shape, its centre inside the box. */
  placed: boolean;
  othersKept: boolean[];
  othersIoU: number[];
  /** Mean abs error (8-bit levels) to the rendered background outside the box (grown by 2 px). */
  outsideError: number;
}

/** One case: its prompt, box, the reconstruction's error outside the box, TF-ICON's and the baseline's scores. */
export interface TFIconRow {
  seed: number;
  caption: string;
  box: PixelBox;
  /** Error outside the box of the exceptional-prompt inversion's reconstruction of the pasted image. */
  reconstructionError: number;
  /** The same with the composite's caption (DDIM inversion and regeneration at guidance 1, the project's 28 dB). */
  captionReconstructionError: number;
  tfIcon: CompositeScore;
  sdedit: CompositeScore;
}

/** Totals of one way of compositing. */
export interface CompositeSummary {
  placedRate: number | null;
  othersKeptRate: number | null;
  othersCount: number;
  meanOutsideError: number | null;
  /** Mean outside error over the mean reconstruction error (exceptional prompt; and with the caption). */
  outsideRatio: number | null;
  outsideRatioCaption: number | null;
}

/** The measurement's result. */
export interface TFIconMeasurement {
  cases: number;
  meanReconstructionError: number | null;
  meanCaptionReconstructionError: number | null;
  tfIcon: CompositeSummary;
  sdedit: CompositeSummary;
  rows: TFIconRow[];
}

/** A free box for an object of `w`×`h` in `scene`: the first (row-major, 4 px steps) clear of its objects by 3 px. */
function freeBox(scene: Scene, boxes: readonly PixelBox[], w: number, h: number): PixelBox | null {
  const pad = 3;
  for (let y = 2; y + h <= scene.height - 2; y += 4) {
    for (let x = 2; x + w <= scene.width - 2; x += 4) {
      const clear = boxes.every(
        ([a, b, c, d]) => x + w + pad <= a || c + pad <= x || y + h + pad <= b || d + pad <= y,
      );
      if (clear) return [x, y, x + w, y + h];
    }
  }
  return null;
}

/** The case of index i: background scene, object scene, box and the composite scene (its caption); null to skip. */
export function tfIconCase(i: number) {
  const seed = heldOutSeed(i);
  const bg = sampleScene(seed, { objects: [1, 2] });
  const objScene = sampleScene(heldOutSeed(i + 50_000), { objects: 1 });
  const o = objScene.objects[0]!;
  if (bg.objects.some((b) => b.shape === o.shape || b.color === o.color)) return null; // keep detection unambiguous
  const bgRender = renderScene(bg);
  const objRender = renderScene(objScene);
  const ob = objRender.masks[0]!.box;
  const boxes = bgRender.masks.map((m): PixelBox => [m.box.x0, m.box.y0, m.box.x1, m.box.y1]);
  const box = freeBox(bg, boxes, ob.x1 - ob.x0, ob.y1 - ob.y0);
  if (!box) return null;
  const [cx, cy] = [o.cx + box[0] - ob.x0, o.cy + box[1] - ob.y0];
  const moved = { ...o, cx, cy, cell: cellAt(cx, cy, bg.width, bg.height) };
  const composite: Scene = { ...bg, objects: [...bg.objects, moved] };
  return {
    seed,
    bg,
    bgRender,
    objRender,
    box,
    composite,
    caption: captionOf(composite).text,
    bgCaption: captionOf(bg).text,
  };
}

/** Pixels outside the box grown by 2 (1 = outside). */
function outsideBox(box: PixelBox, w: number, h: number): Float32Array {
  const [x0, y0, x1, y1] = box;
  return Float32Array.from({ length: w * h }, (_, p) => {
    const [x, y] = [p % w, Math.floor(p / w)];
    return x >= x0 - 2 && x < x1 + 2 && y >= y0 - 2 && y < y1 + 2 ? 0 : 1;
  });
}

/** Scores a composite against the case's caption and rendered background. */
export function scoreComposite(c: NonNullable<ReturnType<typeof tfIconCase>>, image: Tensor): CompositeScore {
  const { width: w, height: h } = c.bg;
  const rep = evaluate(image, c.caption);
  const added = rep.objects[rep.objects.length - 1];
  const d = added?.detected;
  const [x0, y0, x1, y1] = c.box;
  const inBox = !!d && d.cx >= x0 - 1 && d.cx <= x1 + 1 && d.cy >= y0 - 1 && d.cy <= y1 + 1;
  const bgRep = evaluate(c.bgRender.image, c.bgCaption);
  const othersIoU = bgRep.objects.map((s, j) => {
    const a = maskOf(s, c.bgRender.image);
    const b = maskOf(rep.objects[j], image);
    return a && b ? maskIoU(a, b) : 0;
  });
  return {
    placed: rightObject(added) && inBox,
    othersKept: othersIoU.map((iou, j) => rightObject(rep.objects[j]) && iou >= 0.9),
    othersIoU,
    outsideError: meanAbsError(image, c.bgRender.image, outsideBox(c.box, w, h)),
  };
}

/** SDEdit (Meng et al. 2022) of an image: noised to step ⌊n·(1 − strength)⌋ of DDIM, denoised with the prompt. */
function sdedit(
  sd: StableDiffusion,
  image: Tensor,
  prompt: string,
  o: TFIconMeasureOptions,
  seed: number,
): Tensor {
  const z0 = sd.encodeImage(image);
  const s = sd.scheduler('ddim');
  s.setTimesteps(o.steps);
  const ts = s.timesteps;
  const k = Math.floor(o.steps * (1 - (o.strength ?? 0.5)));
  const e = randn(z0.shape, seed);
  // the steps before k only run the schedule: after step k − 1 the latents become the image noised to t_k
  const start: Controller = {
    name: 'SDEditStart',
    afterStep: (st) => (st.step === k - 1 ? s.addNoise(z0, e, ts[k]!) : undefined),
  };
  return sd.generate({
    prompt: [prompt],
    latents: k === 0 ? s.addNoise(z0, e, ts[0]!) : e,
    steps: o.steps,
    guidanceScale: o.guidanceScale,
    scheduler: 'ddim',
    controllers: [start],
  }).images;
}

/** Totals of TF-ICON's or the baseline's scores. */
function summarize(rows: readonly TFIconRow[], which: 'tfIcon' | 'sdedit'): CompositeSummary {
  const all = rows.map((r) => r[which]);
  const kept = all.flatMap((v) => v.othersKept);
  const err = mean(all.map((v) => v.outsideError));
  const rec = mean(rows.map((r) => r.reconstructionError));
  const recCaption = mean(rows.map((r) => r.captionReconstructionError));
  return {
    placedRate: rate(all.map((v) => v.placed)),
    othersKeptRate: rate(kept),
    othersCount: kept.length,
    meanOutsideError: err,
    outsideRatio: err !== null && rec ? err / rec : null,
    outsideRatioCaption: err !== null && recCaption ? err / recCaption : null,
  };
}

/**
 * The TF-ICON measurement (Lu et al. 2023) on held-out rendered scenes, with cut-and-paste + SDEdit beside it.
 */
export function measureTFIcon(sd: StableDiffusion, o: TFIconMeasureOptions): TFIconMeasurement {
  const rows: TFIconRow[] = [];
  const e = exceptionalPromptEmbeds(sd, o.method?.exceptionalToken);
  for (let i = o.start; rows.length < o.cases && i < o.start + 50 * o.cases + 100; i++) {
    const c = tfIconCase(i);
    if (!c) continue;
    const r = composeImage(sd, {
      ...o.method,
      background: c.bgRender.image,
      object: c.objRender.image,
      objectMask: c.objRender.masks[0]!.mask.data as Float32Array,
      box: c.box,
      prompt: c.caption,
      steps: o.steps,
      guidanceScale: o.guidanceScale,
      seed: c.seed,
    });
    // the inversion's own reconstruction: the pasted image inverted and regenerated with the exceptional prompt
    const inv = ddimInvert(sd, { image: r.pasted, promptEmbeds: e, steps: o.steps });
    const rec = sd.generate({
      promptEmbeds: e,
      negativePromptEmbeds: e,
      latents: inv.trajectory[o.steps]!,
      steps: o.steps,
      scheduler: 'ddim',
    }).images;
    const byCaption = ddimInvert(sd, { image: r.pasted, prompt: c.caption, steps: o.steps });
    const recCaption = sd.generate({
      prompt: [c.caption],
      latents: byCaption.trajectory[o.steps]!,
      steps: o.steps,
      guidanceScale: 1,
      scheduler: 'ddim',
    }).images;
    const { width: w, height: h } = c.bg;
    rows.push({
      seed: c.seed,
      caption: c.caption,
      box: c.box,
      reconstructionError: meanAbsError(rec, c.bgRender.image, outsideBox(c.box, w, h)),
      captionReconstructionError: meanAbsError(recCaption, c.bgRender.image, outsideBox(c.box, w, h)),
      tfIcon: scoreComposite(c, r.image),
      sdedit: scoreComposite(c, sdedit(sd, r.pasted, c.caption, o, c.seed)),
    });
    o.progress?.(rows.length, o.cases);
    o.partial?.(totals(rows));
  }
  return totals(rows);
}

/** The measurement's totals over the rows so far. */
function totals(rows: TFIconRow[]): TFIconMeasurement {
  return {
    cases: rows.length,
    meanReconstructionError: mean(rows.map((r) => r.reconstructionError)),
    meanCaptionReconstructionError: mean(rows.map((r) => r.captionReconstructionError)),
    tfIcon: summarize(rows, 'tfIcon'),
    sdedit: summarize(rows, 'sdedit'),
    rows,
  };
}
