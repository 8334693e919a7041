// Inversion: DDIM inversion + regeneration of rendered scenes (PSNR at guidance 1 and at the edit guidance, and
// the VAE's round trip as the ceiling), null-text inversion on a few, and a colour swap on the
// null-text-inverted scene, alone and with LocalBlend (does only the named object change?).

import {
  AttentionReplace,
  concat,
  type DDIMInversion,
  groupControllers,
  invertBatch,
  nullTextInversionBatch,
  type StableDiffusion,
  type Tensor,
} from '../../index.js';
import { chunks, Pace } from '../jobs.js';
import { maskOf, mean, meanAbsError, outsideOf, psnr, rate } from '../metrics.js';
import {
  COLORS,
  type ColorName,
  captionOf,
  evaluate,
  maskIoU,
  renderScene,
  sampleScene,
} from '../shapes/index.js';
import { editOptions, type MeasureSettings, replaceAndBlend, scenes, swappedCaption } from './common.js';

/**
 * Scores of real-image colour swaps after null-text inversion: how often the object changed, and how much the
 * rest did.
 */
export interface RealEditSummary {
  changedRate: number | null;
  /** Other objects of the edited image against their ground-truth masks. */
  othersMeanIoU: number | null;
  /** The same for the reconstruction (the source row): what "unchanged" scores through inversion. */
  othersMeanIoUReconstruction?: number | null;
  /** Mean abs error to the rendered scene outside the edited object, and that of the reconstruction. */
  maeOutside: number | null;
  maeOutsideReconstruction: number | null;
}

/** One real-image edit: object 0 changed right, the others' IoU with the truth, errors outside object 0. */
interface RealEdit {
  changed: boolean;
  others: number[];
  othersRec: number[];
  mae: number;
  maeRec: number;
}

/**
 * The inversion measurement's result: PSNR of DDIM and null-text reconstructions of rendered scenes (the VAE
 * round trip as ceiling) and the real-image edits' scores.
 */
export interface InversionResult {
  seeds: number;
  /** VAE encode → decode (the ceiling of any latent inversion). */
  vaePSNR: number | null;
  /** DDIM inversion (guidance 1) and regeneration at guidance 1 and at the edit guidance. */
  ddimPSNR: number | null;
  ddimGuidedPSNR: number | null;
  guidanceScale: number;
  nullText: {
    seeds: number;
    innerSteps: number;
    /** Adam's learning rate at the first step. */
    learningRate: number;
    /** Time of the null-text part (inversion and edit). */
    seconds: number;
    psnr: number | null;
    /** Colour swap of object 0 on the null-text-inverted scene (P2P replace). */
    edit: RealEditSummary;
    /** The same swap with LocalBlend on the two colour words. */
    editBlend: RealEditSummary;
    /** With LocalBlend, ∅_t on the source row only; the target samples with the plain '' embedding. */
    editBlendSourceOnly?: RealEditSummary;
  };
  rows: { seed: number; prompt: string; vae: number; ddim: number; ddimGuided: number; nullText?: number }[];
}

/**
 * The inversion measurement: DDIM and null-text inversion of rendered scenes, their reconstructions, and
 * colour swaps of the inverted scenes.
 */
export function measureInversion(sd: StableDiffusion, o: MeasureSettings): InversionResult {
  const items = scenes(o, 'inversion', (seed) => {
    const scene = sampleScene(seed);
    return { seed, scene, caption: captionOf(scene), rendering: renderScene(scene) };
  });
  const rows: InversionResult['rows'] = [];
  const total = items.length + Math.min(o.nullTextSeeds, items.length);
  const inversions: DDIMInversion[] = [];
  let done = 0;
  // with a deadline, the batched part takes half the time and null-text inversion the rest
  const start = performance.now();
  const pace = new Pace(o.nullTextSeeds > 0 ? start + (o.deadline - start) / 2 : o.deadline);
  for (const chunk of chunks(items, o.batchPrompts)) {
    if (!pace.fits()) break;
    const images = concat(
      chunk.map((c) => c.rendering.image),
      0,
    );
    const latents = sd.encodeImage(images);
    const vae = sd.decodeLatents(latents);
    const prompts = chunk.map((c) => c.caption.text);
    const embeds = sd.encodePrompt(prompts);
    const { trajectory, timesteps } = invertBatch(sd, latents, embeds, o.steps);
    const zT = trajectory[o.steps]!;
    chunk.forEach((_, k) => {
      if (inversions.length >= o.nullTextSeeds) return;
      const row = (x: Tensor) => x.slice(0, k, k + 1);
      inversions.push({
        trajectory: trajectory.map(row),
        timesteps,
        promptEmbeds: row(embeds),
        steps: o.steps,
      });
    });
    const regen = (w: number) =>
      sd.generate({ promptEmbeds: embeds, latents: zT, steps: o.steps, guidanceScale: w, scheduler: 'ddim' })
        .images;
    const plain = regen(1);
    const guided = regen(o.guidanceScale);
    chunk.forEach((it, k) => {
      const row = (x: Tensor) => x.slice(0, k, k + 1);
      rows.push({
        seed: it.seed,
        prompt: it.caption.text,
        vae: psnr(row(vae), it.rendering.image),
        ddim: psnr(row(plain), it.rendering.image),
        ddimGuided: psnr(row(guided), it.rendering.image),
      });
    });
    done += chunk.length;
    pace.tick();
    o.progress('inversion', done, total);
  }
  // null-text inversion of the first scenes (their DDIM trajectories from above), then a colour swap there
  const ntStart = performance.now();
  const ntPace = new Pace(o.deadline);
  const nt: typeof items = [];
  const edits: RealEdit[] = [];
  const blendEdits: RealEdit[] = [];
  const sourceOnlyEdits: RealEdit[] = [];
  const plainUncond = sd.encodePrompt(['']);
  // null-text inversion runs a batch of scenes at once (each as if alone: nullTextInversionBatch)
  for (const [ci, chunk] of chunks(inversions, o.batchPrompts).entries()) {
    if (!ntPace.fits()) break;
    const ntis = nullTextInversionBatch(sd, chunk, {
      guidanceScale: o.guidanceScale,
      numInnerSteps: o.nullTextInnerSteps,
      learningRate: o.nullTextLr,
    });
    chunk.forEach((inv, r) => {
      const k = ci * o.batchPrompts + r;
      const it = items[k]!;
      nt.push(it);
      const nti = ntis[r]!;
      const zT = inv.trajectory[o.steps]!;
      const free = COLORS.filter((c) => !it.scene.objects.some((x) => x.color === c));
      const colour: ColorName = free[it.seed % free.length]!;
      const target = swappedCaption(it.scene, 'color', colour);
      const pair = [it.caption.text, target];
      const colours = [it.caption.objects[0]!.color.word, colour];
      // rows: reconstruction + swap, the same pair with LocalBlend on the two colour words, and again with the
      // target (row 5) sampling with the plain unconditional embedding instead of ∅_t (editPrompt's
      // nullTextSourceOnly)
      const { images } = sd.generate({
        prompt: [...pair, ...pair, ...pair],
        latents: concat([zT, zT, zT, zT, zT, zT], 0),
        negativePromptEmbeds: nti.nullEmbeds.map((n) => concat([n, n, n, n, n, plainUncond], 0)),
        steps: o.steps,
        guidanceScale: o.guidanceScale,
        scheduler: 'ddim',
        controllers: [
          groupControllers([
            { prompts: [0, 1], controllers: [new AttentionReplace(editOptions(sd, pair))] },
            { prompts: [2, 3], controllers: replaceAndBlend(sd, pair, colours, o.blendThreshold) },
            { prompts: [4, 5], controllers: replaceAndBlend(sd, pair, colours, o.blendThreshold) },
          ]),
        ],
      });
      const rec = images.slice(0, 0, 1);
      rows[k]!.nullText = psnr(rec, it.rendering.image);
      const [w, h] = [it.scene.width, it.scene.height];
      const truth = it.rendering.masks.map((m) => m.mask.data as Float32Array);
      const othersIoU = (image: Tensor, caption: string) => {
        const report = evaluate(image, caption);
        return truth.slice(1).map((t, j) => {
          const m = maskOf(report.objects[j + 1], image);
          return m ? maskIoU(m, t) : 0;
        });
      };
      const othersRec = othersIoU(rec, it.caption.text);
      const score = (edited: Tensor): RealEdit => {
        const report = evaluate(edited, target);
        const outside = outsideOf([truth[0]!, maskOf(report.objects[0], edited)], w, h);
        return {
          changed: report.objects[0]!.present && report.objects[0]!.color && report.objects[0]!.shape,
          others: othersIoU(edited, target),
          othersRec,
          mae: meanAbsError(edited, it.rendering.image, outside),
          maeRec: meanAbsError(rec, it.rendering.image, outside),
        };
      };
      edits.push(score(images.slice(0, 1, 2)));
      blendEdits.push(score(images.slice(0, 3, 4)));
      sourceOnlyEdits.push(score(images.slice(0, 5, 6)));
      o.progress('inversion', items.length + k + 1, total);
    });
    ntPace.tick();
  }
  const ntSeconds = (performance.now() - ntStart) / 1000;
  const col = (f: (r: InversionResult['rows'][number]) => number | undefined) =>
    mean(rows.map(f).filter((v): v is number => v !== undefined && Number.isFinite(v)));
  return {
    seeds: rows.length,
    vaePSNR: col((r) => r.vae),
    ddimPSNR: col((r) => r.ddim),
    ddimGuidedPSNR: col((r) => r.ddimGuided),
    guidanceScale: o.guidanceScale,
    nullText: {
      seeds: nt.length,
      innerSteps: o.nullTextInnerSteps,
      learningRate: o.nullTextLr,
      seconds: ntSeconds,
      psnr: col((r) => r.nullText),
      edit: summarizeRealEdits(edits),
      editBlend: summarizeRealEdits(blendEdits),
      editBlendSourceOnly: summarizeRealEdits(sourceOnlyEdits),
    },
    rows,
  };
}

function summarizeRealEdits(edits: readonly RealEdit[]): RealEditSummary {
  return {
    changedRate: rate(edits.map((e) => e.changed)),
    othersMeanIoU: mean(edits.flatMap((e) => e.others)),
    othersMeanIoUReconstruction: mean(edits.flatMap((e) => e.othersRec)),
    maeOutside: mean(edits.map((e) => e.mae)),
    maeOutsideReconstruction: mean(edits.map((e) => e.maeRec)),
  };
}
