// Colour swap: Prompt-to-Prompt word swap of object 0's colour (AttentionReplace, alone and with LocalBlend on
// the two colour words) against plain regeneration of the target prompt from the same noise: new colour rate,
// object mask IoU with the source, mean abs error outside the object (swap.ts scores them).

import { AttentionReplace } from '../../index.js';
import { type Job, runJobs } from '../jobs.js';
import { rightObject } from '../metrics.js';
import { COLORS, captionOf, evaluate, sampleScene } from '../shapes/index.js';
import { editOptions, type MeasureSettings, replaceAndBlend, scenes, swappedCaption } from './common.js';
import type { MeasureModel } from './model.js';
import { type SwapResult, type SwapRow, scoreSwap, summarizeSwap } from './swap.js';

/**
 * The colour-swap measurement: Prompt-to-Prompt word swaps of an object's colour on held-out scenes, with and
 * without LocalBlend, scored against the Shapes world's ground truth.
 */
export function measureColourSwap(sd: MeasureModel, o: MeasureSettings): SwapResult {
  const items = scenes(o, 'colour-swap', (seed) => {
    const scene = sampleScene(seed, { objects: [1, 2] });
    const caption = captionOf(scene);
    const free = COLORS.filter((c) => !scene.objects.some((x) => x.color === c));
    const colour = free[seed % free.length]!;
    const target = swappedCaption(scene, 'color', colour);
    return { seed, scene, caption, target, colour };
  });
  const jobs = items.map((it): Job => {
    const pair = [it.caption.text, it.target];
    const colours = [it.caption.objects[0]!.color.word, it.colour];
    // rows: source, replaced, plain regeneration, and a second source + target pair edited with LocalBlend on
    // the two colour words (all from the same noise)
    return {
      seed: it.seed,
      prompts: [...pair, it.target, ...pair],
      groups: [
        { prompts: [0, 1], controllers: [new AttentionReplace(editOptions(sd, pair))] },
        { prompts: [3, 4], controllers: replaceAndBlend(sd, pair, colours, o.blendThreshold) },
      ],
    };
  });
  const images = runJobs(sd, jobs, o, (d) => o.progress('colour-swap', d, jobs.length));
  const rows = items.slice(0, images.length).map((it, k): SwapRow => {
    const [src, replaced, plain, , blended] = images[k]!;
    const srcReport = evaluate(src!, it.caption.text);
    return {
      seed: it.seed,
      source: it.caption.text,
      target: it.target,
      sourceValid: rightObject(srcReport.objects[0]),
      perMethod: {
        replace: scoreSwap(src!, srcReport, replaced!, it.target, 'color'),
        'replace+blend': scoreSwap(src!, srcReport, blended!, it.target, 'color'),
        none: scoreSwap(src!, srcReport, plain!, it.target, 'color'),
      },
    };
  });
  return {
    kind: 'colour',
    seeds: rows.length,
    methods: {
      replace: summarizeSwap(rows, 'replace', 0.8),
      'replace+blend': summarizeSwap(rows, 'replace+blend', 0.8),
      none: summarizeSwap(rows, 'none', 0.8),
    },
    rows,
  };
}
