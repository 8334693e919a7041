// The new-concept experiment of the weight level (issue 27): teach the built-in model the diamond
// (shapes/new-concept.ts) from a few rendered images, with LoRA, Custom Diffusion or full fine-tuning, and
// measure (a) how often "a <colour> diamond …" prompts draw a diamond in the asked colour and (b) what the
// model forgot: ShapesEval on the standard held-out prompts, against the base model's.

import { join } from 'node:path';
import {
  loadStateDict,
  mergeLoraAdapters,
  readCustomDiffusion,
  readLora,
  readSafetensors,
  type StableDiffusion,
  writeFileAtomic,
  writeFolderAtomic,
  writePng,
} from '../../index.js';
import { type HeldOutPrompt, heldOutPrompts } from '../seeds.js';
import {
  type ColorName,
  type DetectedObject,
  detectObjects,
  evaluate,
  type Rate,
  type SceneReport,
  summarize,
} from '../shapes/index.js';
import {
  DIAMOND_TEMPLATE,
  NEW_CONCEPT_SEEDS,
  NEW_SHAPE,
  newConceptScene,
  renderNewConcept,
} from '../shapes/new-concept.js';
import { type EvalHeadline, headlineOf, seededLatents } from '../shapes-eval.js';

/** At most this many training images (the "≤ 50 rendered images"). */
export const MAX_NEW_CONCEPT_IMAGES = 50;

/**
 * Writes `n` rendered new-concept scenes (training seeds) to `dir` as name.png + name.txt, the folder layout
 * `attnkit train … --data` reads; the folder is written as one unit.
 */
export function writeNewConceptFolder(dir: string, n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > MAX_NEW_CONCEPT_IMAGES)
    throw new Error(`new concept: the training folder holds 1–${MAX_NEW_CONCEPT_IMAGES} images, got ${n}`);
  writeFolderAtomic(dir, (tmp) => {
    for (let k = 0; k < n; k++) {
      const scene = newConceptScene(NEW_CONCEPT_SEEDS.training + k);
      const name = `diamond-${String(k).padStart(3, '0')}`;
      writePng(join(tmp, `${name}.png`), renderNewConcept(scene));
      writeFileAtomic(join(tmp, `${name}.txt`), `${scene.caption}\n`);
    }
  });
}

/** Options of the new-concept measurement: prompts, seeds, sampling, batching and progress. */
export interface NewConceptOptions {
  /** "a <colour> diamond …" prompts (default 100). */
  prompts?: number;
  /** First scene seed of those prompts (default NEW_CONCEPT_SEEDS.heldOut; development: .development). */
  seedBase?: number;
  /**
   * ShapesEval prompts of the standard held-out set whose 1- and 2-object ones are scored (default 200; 0:
   * skip the forgetting check).
   */
  evalPrompts?: number;
  /** First ShapesEval held-out prompt (default 0; development: e.g. 100 000). */
  evalStart?: number;
  /** DDIM steps and guidance (defaults 25 and 5, as ShapesEval). */
  steps?: number;
  guidanceScale?: number;
  /** Prompts per generate call (default 16). */
  batchSize?: number;
  /** Called as images are made: which part, done and total. */
  onProgress?: (part: 'concept' | 'shapes-eval', done: number, total: number) => void;
}

/** One new-concept prompt's outcome. */
export interface NewConceptRow {
  seed: number;
  caption: string;
  color: ColorName;
  /** A detected object of the asked colour fits the diamond best. */
  correct: boolean;
  /** Some detected object (any colour) fits the diamond best. */
  diamond: boolean;
  /** Some object of the asked colour was detected (any shape). */
  colour: boolean;
}

/** The new-concept measurement of one model: the concept's rate and ShapesEval's headline (forgetting). */
export interface NewConceptResult {
  concept: { prompts: number; correct: Rate; diamond: Rate; colour: Rate; rows: NewConceptRow[] };
  shapesEval?: EvalHeadline;
  seconds: number;
}

const rate = (correct: number, total: number): Rate => ({
  correct,
  total,
  rate: total > 0 ? correct / total : null,
});

/**
 * Generates "a <colour> diamond …" prompts with `sd` as it stands (an adapter merged into it or not) and
 * scores each image with ShapesEval's detector, opted into the diamond; then ShapesEval on the standard
 * held-out prompts, whose detector is the default one (the diamond never enters it).
 */
export function measureNewConcept(sd: StableDiffusion, o: NewConceptOptions = {}): NewConceptResult {
  const n = o.prompts ?? 100;
  const seedBase = o.seedBase ?? NEW_CONCEPT_SEEDS.heldOut;
  const batchSize = o.batchSize ?? 16;
  if (!Number.isInteger(n) || n < 1 || n > 100_000)
    throw new Error(`measure new-concept: prompts must be an integer in 1–100000, got ${n}`);
  const t0 = performance.now();
  const scenes = Array.from({ length: n }, (_, i) => newConceptScene(seedBase + i));
  const rows: NewConceptRow[] = [];
  for (let b = 0; b < n; b += batchSize) {
    const batch = scenes.slice(b, b + batchSize);
    const { images } = sd.generate({
      prompt: batch.map((s) => s.caption),
      latents: seededLatents(
        sd,
        batch.map((s) => s.seed),
      ),
      steps: o.steps ?? 25,
      guidanceScale: o.guidanceScale ?? 5,
      scheduler: 'ddim',
    });
    batch.forEach((s, k) => {
      const found = detectObjects(images.slice(0, k, k + 1), { extraShapes: [DIAMOND_TEMPLATE] }).objects;
      const isDiamond = (d: DetectedObject) => d.extraShape?.name === NEW_SHAPE;
      rows.push({
        seed: s.seed,
        caption: s.caption,
        color: s.color,
        correct: found.some((d) => d.color === s.color && isDiamond(d)),
        diamond: found.some(isDiamond),
        colour: found.some((d) => d.color === s.color),
      });
    });
    o.onProgress?.('concept', rows.length, n);
  }
  const count = (f: (r: NewConceptRow) => boolean) => rate(rows.filter(f).length, n);
  const concept = {
    prompts: n,
    correct: count((r) => r.correct),
    diamond: count((r) => r.diamond),
    colour: count((r) => r.colour),
    rows,
  };
  const evalN = o.evalPrompts ?? 200;
  const shapesEval =
    evalN > 0 ? forgetting(sd, heldOutPrompts(evalN, o.evalStart ?? 0), { ...o, batchSize }) : undefined;
  return { concept, ...(shapesEval ? { shapesEval } : {}), seconds: (performance.now() - t0) / 1000 };
}

/**
 * ShapesEval's 1- and 2-object rates on the 1- and 2-object prompts among `prompts` (the rates the issue
 * holds within 3 points of the base model; 3-object prompts are skipped to save their time): each prompt
 * generated from its scene seed's noise with DDIM as `runShapesEval` does, so a prompt's image is the one
 * ShapesEval makes, and scored by the default detector.
 */
function forgetting(
  sd: StableDiffusion,
  prompts: readonly HeldOutPrompt[],
  o: NewConceptOptions & { batchSize: number },
): EvalHeadline {
  const kept = prompts.filter((p) => p.scene.objects.length <= 2);
  const reports: SceneReport[] = [];
  for (let b = 0; b < kept.length; b += o.batchSize) {
    const batch = kept.slice(b, b + o.batchSize);
    const { images } = sd.generate({
      prompt: batch.map((p) => p.caption.text),
      latents: seededLatents(
        sd,
        batch.map((p) => p.seed),
      ),
      steps: o.steps ?? 25,
      guidanceScale: o.guidanceScale ?? 5,
      scheduler: 'ddim',
    });
    batch.forEach((p, k) => {
      reports.push(evaluate(images.slice(0, k, k + 1), p.caption.text));
    });
    o.onProgress?.('shapes-eval', reports.length, kept.length);
  }
  return headlineOf(summarize(reports));
}

/** A way the model was taught the concept, as `applyConcept` puts it into the model. */
export type ConceptMethod = 'lora' | 'custom-diffusion' | 'full';

/**
 * Puts a taught concept into `sd`'s weights and returns the function that takes it out again: a LoRA merged
 * (scale 1), Custom Diffusion's cross-attention K and V in place of the model's (at inference the same as
 * its controller), or a fully fine-tuned UNet's weights (loaded strictly).
 */
export function applyConcept(sd: StableDiffusion, method: ConceptMethod, file: string): () => void {
  if (method === 'lora') {
    const targets = {
      unet: sd.unet,
      textEncoder: sd.textEncoder,
      unetLayersPerBlock: sd.unet.config.layersPerBlock,
    };
    return mergeLoraAdapters(targets, [{ adapter: readLora(file, targets), scale: 1 }]).unmerge;
  }
  const params = new Map(sd.unet.namedParameters());
  const before = new Map([...params].map(([k, p]) => [k, p.value]));
  const restore = () => {
    for (const [k, p] of params) p.value = before.get(k)!;
  };
  if (method === 'full') {
    loadStateDict(sd.unet, readSafetensors(file).tensors, { what: `fine-tuned UNet ${file}` });
    return restore;
  }
  for (const [layer, w] of readCustomDiffusion(file, sd.unet)) {
    for (const [proj, name] of [
      ['q', 'to_q'],
      ['k', 'to_k'],
      ['v', 'to_v'],
      ['out', 'to_out.0'],
    ] as const) {
      const weight = w[proj]?.weight;
      if (weight) params.get(`${layer}.${name}.weight`)!.value = weight;
    }
  }
  return restore;
}

/** The results side by side: the concept's rate and ShapesEval's 1- and 2-object rates, per model. */
export function newConceptMarkdown(results: Readonly<Record<string, NewConceptResult>>): string {
  const pct = (r: Rate | undefined) =>
    r?.rate === null || r === undefined ? '–' : `${(100 * r.rate).toFixed(1)}% (${r.correct}/${r.total})`;
  const lines = [
    '| model | diamond in the asked colour | any diamond | asked colour | ShapesEval 1-object | ShapesEval 2-object |',
    '|---|---|---|---|---|---|',
  ];
  for (const [name, r] of Object.entries(results)) {
    lines.push(
      `| ${name} | ${pct(r.concept.correct)} | ${pct(r.concept.diamond)} | ${pct(r.concept.colour)} | ` +
        `${pct(r.shapesEval?.singleColorShape)} | ${pct(r.shapesEval?.twoColorShape)} |`,
    );
  }
  return lines.join('\n');
}
