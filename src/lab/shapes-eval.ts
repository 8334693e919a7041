// ShapesEval of a text-to-image model on held-out prompts of the Shapes world (issue 4's "Done when"), and the
// first attention metric: each object's shape-word heat-map against that object's mask.
//
// The held-out prompts and their seeds are seeds.ts's; the initial noise of each prompt is seeded by its scene
// seed alone, so a prompt's image does not depend on the batch it was generated in. report.ts writes the runs.
//
// Heat-maps: the cross-attention of the conditional rows is stored over the last third of the steps (16 × 16
// maps by default), aggregated as DAAM (per head upsampled bicubically to the latent size, clamped, averaged),
// the shape word's map upsampled to the image, min–max normalised and thresholded (HEAT_MAP_THRESHOLD, and
// Otsu's), then compared with the mask of the detected object that ShapesEval matched to the prompt object: the
// template (shape, centre, scale) the detector fitted, rasterised, coverage ≥ 0.5. Generated images have no
// ground truth, so the detector's mask stands in for it.

import {
  type AttentionMaskOptions,
  AttentionStore,
  aggregateCrossAttention,
  attentionMask,
  concat,
  defaultHeatResolutions,
  type GenerateOptions,
  type GenerateResult,
  GlobalHeatMap,
  HEAT_MAP_THRESHOLD,
  heatStepRange,
  initialNoise,
  type SchedulerName,
  type StableDiffusion,
  StableDiffusion3,
  type Tensor,
} from '../index.js';
import { Pace } from './jobs.js';
import { copiesMask, detectedMask, mean } from './metrics.js';
import { type HeldOutPrompt, heldOutPrompts, heldOutSeed } from './seeds.js';
import {
  type EvalSummary,
  evaluate,
  maskIoU,
  type Rate,
  renderScene,
  type SceneReport,
  summarize,
} from './shapes/index.js';

/** A model ShapesEval runs: a UNet Stable Diffusion, or an SD3-style MM-DiT (pipelines/sd3.ts). */
export type EvalModel = StableDiffusion | StableDiffusion3;

/** Initial noise N(0, I) (n, C, h, w): one row per seed, each seeded alone (as `initialNoise`). */
export function seededLatents(sd: EvalModel, seeds: readonly number[]): Tensor {
  return concat(
    seeds.map((s) => (sd instanceof StableDiffusion3 ? sd.initialNoise(s) : initialNoise(sd, s))),
    0,
  );
}

/** Options of a ShapesEval run: held-out prompts, sampling, batching, heat-maps, time budget. */
export interface ShapesEvalOptions {
  /** Number of held-out prompts (default 200). */
  prompts?: number;
  /** First held-out prompt (default 0). */
  start?: number;
  /** Denoising steps (default 25). */
  steps?: number;
  /** Classifier-free guidance (default 5). */
  guidanceScale?: number;
  /** Guidance rescaling φ (generate's `guidanceRescale`; default 0: off). */
  guidanceRescale?: number;
  /** Default 'ddim'. */
  scheduler?: SchedulerName;
  /** Prompts per generate call (default 16). */
  batchSize?: number;
  /** Heat-map IoU on the first this many prompts (default 0: none). */
  heatMaps?: number;
  /**
   * Threshold of the normalised heat-map (default HEAT_MAP_THRESHOLD, chosen on validation prompts:
   * docs/training.md "Heat-map settings"); Otsu's is always reported beside it.
   */
  threshold?: number;
  /** Heat-maps from denoising steps [a, b) (default the last third, the cleanest: 17–25 of 25). */
  heatSteps?: readonly [number, number];
  /** Heat-maps from cross-attention maps of these sides only, e.g. [16, 8] (default `defaultHeatResolutions`). */
  resolutions?: readonly number[];
  /** Called after each batch with the number of prompts done. */
  onProgress?: (done: number, total: number) => void;
  /** Called after each denoising step of a batch. */
  onStep?: (step: number, steps: number) => void;
  /** Keep the generated images in the result (default false). */
  keepImages?: boolean;
  /**
   * Time budget: no batch is started that would end past it (judged by the batches so far; the first always
   * runs). The result counts only the prompts generated, and says how many were asked.
   */
  minutes?: number;
  /**
   * Score the VAE's round trip decode(encode(x)) of each held-out prompt's rendered scene instead of a
   * generated image: the ceiling that the autoencoder puts on any generation (no heat-maps in this mode).
   */
  reconstruct?: boolean;
}

/** One object's shape-word heat-map against its detected mask: IoU at the threshold and at Otsu's, area. */
export interface HeatMapObjectScore {
  /** Held-out prompt index and object index in its caption. */
  prompt: number;
  object: number;
  /** The shape word, and its word index in the caption. */
  word: string;
  wordIndex: number;
  /** Whether ShapesEval matched a detected object to it (else no mask, IoU null). */
  matched: boolean;
  iou: number | null;
  iouOtsu: number | null;
  /** IoU (at `threshold`) with every detected copy of the object (its colour and shape), matched or not. */
  iouCopies?: number | null;
  /** Fraction of the image the thresholded map covers. */
  area: number | null;
}

/**
 * The heat-map metric of a ShapesEval run: the objects' shape-word heat-maps against their masks, averaged.
 */
export interface HeatMapEval {
  scenes: number;
  objects: number;
  /** Objects ShapesEval matched to a detected object, of those whose word is within the tokenizer's length. */
  matched: number;
  /** Objects whose shape word was cut by the tokenizer's length (left out). */
  truncated: number;
  threshold: number;
  /** Denoising steps [a, b) aggregated (absent in results written before it was an option: all). */
  steps?: [number, number];
  /** Map sides aggregated (null: all). */
  resolutions: number[] | null;
  /** Mean IoU over matched objects, at `threshold` and at Otsu's threshold. */
  meanIoU: number | null;
  meanIoUOtsu: number | null;
  /** Mean IoU counting unmatched objects as 0. */
  meanIoUWithMissing: number | null;
  /** Mean IoU with every copy of the object (`copiesMask`), over the matched objects. */
  meanIoUCopies?: number | null;
  maskSource: string;
  perObject: HeatMapObjectScore[];
}

/**
 * ShapesEval's headline rates: 1-object colour and shape, 2-object colour and shape, 2-object all correct,
 * position.
 */
export interface EvalHeadline {
  /** 1-object prompts with the object's colour and shape right (target ≥ 90%). */
  singleColorShape: Rate;
  /** 2-object prompts with both objects' colour and shape right (target ≥ 70%). */
  twoColorShape: Rate;
  /** 2-object prompts with both objects fully correct (colour, shape, and size and cell where given). */
  twoAllCorrect: Rate;
  /** Objects whose prompt gives a cell, in that cell (target ≥ 70%). */
  position: Rate;
}

/**
 * A ShapesEval run of a model: its settings, each prompt's report, the summary and headline, heat-maps, time.
 */
export interface ShapesEvalRun {
  config: {
    /** Prompts generated and scored, of `asked` (fewer when a time budget ran out). */
    prompts: number;
    asked: number;
    start: number;
    seeds: [number, number];
    steps: number;
    guidanceScale: number;
    /** Present when guidance was rescaled. */
    guidanceRescale?: number;
    /** The sampler; 'flow-match-euler' for an SD3-style model. */
    scheduler: SchedulerName | 'flow-match-euler';
    batchSize: number;
    /** 'generate' (the default) or 'reconstruct' (VAE round trips of the rendered scenes). */
    mode: 'generate' | 'reconstruct';
  };
  rows: { index: number; seed: number; caption: string; report: SceneReport }[];
  summary: EvalSummary;
  headline: EvalHeadline;
  heatMaps?: HeatMapEval;
  seconds: number;
  /** (1, 3, H, W) per prompt, when `keepImages`. */
  images?: Tensor[];
}

const EMPTY: Rate = { correct: 0, total: 0, rate: null };

/** The headline rates of an evaluation summary. */
export function headlineOf(summary: EvalSummary): EvalHeadline {
  return {
    singleColorShape: summary.byObjectCount['1']?.colorShape ?? EMPTY,
    twoColorShape: summary.byObjectCount['2']?.colorShape ?? EMPTY,
    twoAllCorrect: summary.byObjectCount['2']?.allCorrect ?? EMPTY,
    position: summary.position,
  };
}

/** Generates the held-out prompts in batches and scores every image with ShapesEval. */
export function runShapesEval(sd: EvalModel, opts: ShapesEvalOptions = {}): ShapesEvalRun {
  const n = opts.prompts ?? 200;
  const start = opts.start ?? 0;
  const steps = opts.steps ?? 25;
  const guidanceScale = opts.guidanceScale ?? 5;
  const dit = sd instanceof StableDiffusion3;
  if (dit && (opts.scheduler || opts.guidanceRescale))
    throw new Error(
      'runShapesEval: an SD3-style model samples with its flow-matching scheduler; drop scheduler and guidanceRescale',
    );
  const scheduler = dit ? 'flow-match-euler' : (opts.scheduler ?? 'ddim');
  const batchSize = opts.batchSize ?? 16;
  const heatN = Math.min(opts.heatMaps ?? 0, n);
  const threshold = opts.threshold ?? HEAT_MAP_THRESHOLD;
  const resolutions = opts.resolutions ?? (dit ? undefined : defaultHeatResolutions(sd));
  const heatSteps = heatStepRange(steps, opts.heatSteps, 'runShapesEval');
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`runShapesEval: prompts must be a positive integer, got ${n}`);
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new Error(`runShapesEval: batchSize must be a positive integer, got ${batchSize}`);
  if (opts.reconstruct && heatN > 0)
    throw new Error('runShapesEval: heat-maps need generated images; drop heatMaps or reconstruct');
  const prompts = heldOutPrompts(n, start);
  const t0 = performance.now();
  const rows: ShapesEvalRun['rows'] = [];
  const heat: HeatMapObjectScore[] = [];
  let truncated = 0;
  const images: Tensor[] = [];
  const pace = new Pace(t0 + (opts.minutes ?? Number.POSITIVE_INFINITY) * 60_000);
  let generated = 0;
  for (let b = 0; b < n; b += batchSize) {
    if (!pace.fits()) break;
    const batch = prompts.slice(b, b + batchSize);
    const store =
      b < heatN
        ? new AttentionStore({ kinds: ['cross'], maxTokens: Number.POSITIVE_INFINITY, steps: heatSteps })
        : undefined;
    const { images: out, latents } = opts.reconstruct
      ? roundTrip(sd, batch)
      : generateBatch(sd, {
          prompt: batch.map((p) => p.caption.text),
          latents: seededLatents(
            sd,
            batch.map((p) => p.seed),
          ),
          steps,
          guidanceScale,
          ...(opts.guidanceRescale ? { guidanceRescale: opts.guidanceRescale } : {}),
          scheduler: scheduler as SchedulerName,
          controllers: store ? [store] : [],
          onStep: (e) => opts.onStep?.(e.step + 1, e.numSteps),
        });
    const [, , height, width] = out.shape as [number, number, number, number];
    const maps = store?.maps();
    batch.forEach((p, k) => {
      const index = b + k;
      const image = out.slice(0, k, k + 1);
      if (opts.keepImages) images.push(image);
      const report = evaluate(image, p.caption.text);
      rows.push({ index: start + index, seed: p.seed, caption: p.caption.text, report });
      if (!maps || index >= heatN) return;
      const [, , lh, lw] = latents.shape as [number, number, number, number];
      const heatMap = new GlobalHeatMap(
        sd.tokenizer,
        p.caption.text,
        // a DiT's joint layers all sit at place 'mid' (one resolution): none is left out as DAAM leaves the UNet's mid block
        aggregateCrossAttention(maps, { latentSize: [lh, lw], prompt: k, resolutions, midBlock: dit }),
      );
      p.caption.objects.forEach((phrase, o) => {
        const word = phrase.shape;
        if (sd.tokenizer.tokenIndices(p.caption.text, word.index).length === 0) {
          truncated++;
          return;
        }
        const detected = report.objects[o]?.detected ?? null;
        const score: HeatMapObjectScore = {
          prompt: start + index,
          object: o,
          word: word.word,
          wordIndex: word.index,
          matched: detected !== null,
          iou: null,
          iouOtsu: null,
          area: null,
        };
        if (detected) {
          const map = heatMap.wordHeatMap(word.index);
          const maskOpts: AttentionMaskOptions = { size: [height, width] };
          const fixed = attentionMask(map, { ...maskOpts, threshold });
          const otsu = attentionMask(map, { ...maskOpts, threshold: 'otsu' });
          const truth = detectedMask(detected, width, height);
          score.iou = maskIoU(fixed, truth);
          score.iouOtsu = maskIoU(otsu, truth);
          const copies = copiesMask(report.detection, detected, width, height);
          score.iouCopies = copies ? maskIoU(fixed, copies) : null;
          score.area = (fixed.data as Float32Array).reduce((a, v) => a + v, 0) / (width * height);
        }
        heat.push(score);
      });
    });
    generated = Math.min(b + batchSize, n);
    pace.tick();
    opts.onProgress?.(generated, n);
  }
  const summary = summarize(rows.map((r) => r.report));
  const run: ShapesEvalRun = {
    config: {
      prompts: generated,
      asked: n,
      start,
      seeds: [heldOutSeed(start), heldOutSeed(start + generated - 1)],
      steps,
      guidanceScale,
      ...(opts.guidanceRescale ? { guidanceRescale: opts.guidanceRescale } : {}),
      scheduler,
      batchSize,
      mode: opts.reconstruct ? 'reconstruct' : 'generate',
    },
    rows,
    summary,
    headline: headlineOf(summary),
    seconds: (performance.now() - t0) / 1000,
  };
  if (heatN > 0) {
    const matched = heat.filter((h) => h.matched);
    run.heatMaps = {
      scenes: Math.min(heatN, generated),
      objects: heat.length + truncated,
      matched: matched.length,
      truncated,
      threshold,
      steps: heatSteps,
      resolutions: resolutions ? [...resolutions] : null,
      meanIoU: mean(matched.map((h) => h.iou!)),
      meanIoUOtsu: mean(matched.map((h) => h.iouOtsu!)),
      meanIoUWithMissing: mean(heat.map((h) => h.iou ?? 0)),
      meanIoUCopies: mean(matched.map((h) => h.iouCopies ?? 0)),
      maskSource:
        'generated images have no ground truth: each object mask is the template (shape, centre, scale) that ' +
        "ShapesEval's detector fitted to the detected object matched to the prompt object, rasterised at " +
        'coverage ≥ 0.5; unmatched objects have no mask',
      perObject: heat,
    };
  }
  if (opts.keepImages) run.images = images;
  return run;
}

/** One batch through either model's generate (the DiT takes no scheduler name or rescaling). */
function generateBatch(sd: EvalModel, o: GenerateOptions & { prompt: string[] }): GenerateResult {
  if (!(sd instanceof StableDiffusion3)) return sd.generate(o);
  return sd.generate({
    prompt: o.prompt,
    ...(o.latents ? { latents: o.latents } : {}),
    ...(o.steps ? { steps: o.steps } : {}),
    ...(o.guidanceScale !== undefined ? { guidanceScale: o.guidanceScale } : {}),
    ...(o.controllers ? { controllers: o.controllers } : {}),
    ...(o.onStep ? { onStep: o.onStep } : {}),
  });
}

/** The VAE round trip of the prompts' rendered scenes, as generate() returns images and latents. */
function roundTrip(sd: EvalModel, batch: readonly HeldOutPrompt[]): { images: Tensor; latents: Tensor } {
  const latents = sd.encodeImage(
    concat(
      batch.map((p) => renderScene(p.scene).image),
      0,
    ),
  );
  return { images: sd.decodeLatents(latents), latents };
}
