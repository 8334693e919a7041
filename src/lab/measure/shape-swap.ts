// Shape swap: Prompt-to-Prompt word swap of object 0's shape with LocalBlend on the two shape words, in scenes
// of 2–3 objects: do the other objects keep their masks (swap.ts scores it)?

import { type Job, runJobs } from '../jobs.js';
import { rightObject } from '../metrics.js';
import { captionOf, evaluate, SHAPES, sampleScene } from '../shapes/index.js';
import { type MeasureSettings, replaceAndBlend, scenes, swappedCaption } from './common.js';
import type { MeasureModel } from './model.js';
import { type SwapResult, type SwapRow, scoreSwap, summarizeSwap } from './swap.js';

/**
 * The shape-swap measurement: Prompt-to-Prompt word swaps of an object's shape on held-out scenes, with and
 * without LocalBlend, scored against the Shapes world's ground truth.
 */
export function measureShapeSwap(sd: MeasureModel, o: MeasureSettings): SwapResult {
  const items = scenes(o, 'shape-swap', (seed) => {
    const scene = sampleScene(seed, { objects: [2, 3] });
    const caption = captionOf(scene);
    const old = scene.objects[0]!.shape;
    if (scene.objects.filter((x) => x.shape === old).length > 1) return null; // the blend word must be unique
    const free = SHAPES.filter((s) => !scene.objects.some((x) => x.shape === s));
    const shape = free[seed % free.length]!;
    const target = swappedCaption(scene, 'shape', shape);
    return { seed, scene, caption, target, old, shape };
  });
  const jobs = items.map((it): Job => {
    const prompts = [it.caption.text, it.target];
    return {
      seed: it.seed,
      prompts,
      groups: [
        {
          prompts: [0, 1],
          controllers: replaceAndBlend(sd, prompts, [it.old, it.shape], o.blendThreshold),
        },
      ],
    };
  });
  const images = runJobs(sd, jobs, o, (d) => o.progress('shape-swap', d, jobs.length));
  const rows = items.slice(0, images.length).map((it, k): SwapRow => {
    const [src, blended] = images[k]!;
    const srcReport = evaluate(src!, it.caption.text);
    return {
      seed: it.seed,
      source: it.caption.text,
      target: it.target,
      sourceValid: rightObject(srcReport.objects[0]),
      perMethod: {
        'replace+blend': scoreSwap(src!, srcReport, blended!, it.target, 'shape'),
      },
    };
  });
  return {
    kind: 'shape',
    seeds: rows.length,
    methods: { 'replace+blend': summarizeSwap(rows, 'replace+blend', 0.8) },
    rows,
  };
}
