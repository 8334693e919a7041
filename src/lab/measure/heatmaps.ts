// Heat-maps: DAAM heat-maps of each object's words on rendered scenes (true masks), read from the
// cross-attention of the UNet passes of DDIM inversion with the caption; IoU with each object's mask at the
// threshold and at Otsu's.

import {
  AttentionStore,
  aggregateCrossAttention,
  attentionMask,
  concat,
  GlobalHeatMap,
  inversionStepRange,
  type Tensor,
} from '../../index.js';
import { chunks, Pace } from '../jobs.js';
import { mean } from '../metrics.js';
import { captionOf, maskIoU, renderScene, sampleScene } from '../shapes/index.js';
import { type MeasureSettings, scenes } from './common.js';
import { invertWithCaptions, isDiT, type MeasureModel } from './model.js';

/**
 * The heat-map measurement's result: mean IoU of DAAM heat-maps with the objects' true masks, per word kind,
 * at the threshold and at Otsu's.
 */
export interface HeatMapsResult {
  seeds: number;
  objects: number;
  threshold: number;
  /** Denoising steps [a, b) the maps come from, in sampling order. */
  steps: [number, number];
  source: string;
  /** Mean IoU with the ground-truth mask per word kind, at the threshold and at Otsu's. */
  meanIoU: { shape: number | null; color: number | null; object: number | null };
  meanIoUOtsu: { shape: number | null; color: number | null; object: number | null };
  rows: { seed: number; prompt: string; object: number; shape: number; color: number; object_: number }[];
}

/**
 * The heat-map measurement: DAAM heat-maps of each object's words on rendered scenes, from the
 * cross-attention of DDIM inversion with the caption, against the true masks.
 */
export function measureHeatMaps(sd: MeasureModel, o: MeasureSettings): HeatMapsResult {
  const items = scenes(o, 'heatmaps', (seed) => {
    const scene = sampleScene(seed);
    return { seed, scene, caption: captionOf(scene), rendering: renderScene(scene) };
  });
  const rows: HeatMapsResult['rows'] = [];
  const otsu = { shape: [] as number[], color: [] as number[], object: [] as number[] };
  let done = 0;
  const pace = new Pace(o.deadline);
  for (const chunk of chunks(items, o.batchPrompts)) {
    if (!pace.fits()) break;
    const store = new AttentionStore({
      kinds: ['cross'],
      maxTokens: Number.POSITIVE_INFINITY,
      steps: inversionStepRange(o.heatSteps, o.steps),
    });
    const latents = sd.encodeImage(
      concat(
        chunk.map((c) => c.rendering.image),
        0,
      ),
    );
    invertWithCaptions(
      sd,
      latents,
      chunk.map((c) => c.caption.text),
      o.steps,
      [store],
    );
    const maps = store.maps();
    const [, , lh, lw] = latents.shape as [number, number, number, number];
    chunk.forEach((it, k) => {
      const heat = new GlobalHeatMap(
        sd.tokenizer,
        it.caption.text,
        aggregateCrossAttention(maps, {
          latentSize: [lh, lw],
          prompt: k,
          resolutions: o.resolutions,
          // a DiT's joint layers all have place 'mid': DAAM's rule of leaving out the bottleneck does not apply
          midBlock: isDiT(sd),
        }),
      );
      const [h, w] = [it.scene.height, it.scene.width];
      it.caption.objects.forEach((phrase, j) => {
        const truth = it.rendering.masks[j]!.mask;
        const inRange = (i: number) => sd.tokenizer.tokenIndices(it.caption.text, i).length > 0;
        if (!inRange(phrase.shape.index) || !inRange(phrase.color.index)) return;
        const shapeMap = heat.wordHeatMap(phrase.shape.index);
        const colorMap = heat.wordHeatMap(phrase.color.index);
        const objectMap = shapeMap.add(colorMap).div(2);
        const score = (m: Tensor, th: number | 'otsu') =>
          maskIoU(attentionMask(m, { size: [h, w], threshold: th }), truth);
        rows.push({
          seed: it.seed,
          prompt: it.caption.text,
          object: j,
          shape: score(shapeMap, o.threshold),
          color: score(colorMap, o.threshold),
          object_: score(objectMap, o.threshold),
        });
        otsu.shape.push(score(shapeMap, 'otsu'));
        otsu.color.push(score(colorMap, 'otsu'));
        otsu.object.push(score(objectMap, 'otsu'));
      });
    });
    done += chunk.length;
    pace.tick();
    o.progress('heatmaps', done, items.length);
  }
  return {
    seeds: done,
    objects: rows.length,
    threshold: o.threshold,
    steps: [...o.heatSteps],
    source:
      'rendered scenes with their ground-truth masks; cross-attention of the ' +
      (isDiT(sd)
        ? 'MM-DiT passes of flow inversion (image→text blocks of the joint attention) with '
        : 'UNet passes of DDIM inversion with ') +
      `the caption (sampling steps ${o.heatSteps[0]}–${o.heatSteps[1]} of ${o.steps}, ` +
      `${o.resolutions ? `${o.resolutions.map((r) => `${r} × ${r}`).join(', ')} maps` : 'all layers'}), aggregated ` +
      'as DAAM; word maps min–max normalised',
    meanIoU: {
      shape: mean(rows.map((r) => r.shape)),
      color: mean(rows.map((r) => r.color)),
      object: mean(rows.map((r) => r.object_)),
    },
    meanIoUOtsu: { shape: mean(otsu.shape), color: mean(otsu.color), object: mean(otsu.object) },
    rows,
  };
}
