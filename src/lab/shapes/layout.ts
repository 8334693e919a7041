// The ground-truth layout of a Shapes scene as the layout methods take it: for each object of the caption, its
// shape word (by word index: a caption may name one shape twice), its box as fractions of the image, and its
// mask — read from the rendering (renderScene's per-object masks), so the scene sampling is unchanged.

import { type Caption, captionOf } from './caption.js';
import { type Box, renderScene } from './render.js';
import type { Scene } from './scene.js';

/** One caption object's ground truth. */
export interface ObjectLayout {
  /** Index of the object in the scene. */
  object: number;
  /** The shape word's index among the caption's words (the noun a method steers). */
  shapeWord: number;
  /** Its box as fractions of the image, [x0, y0, x1, y1] (x1, y1 exclusive). */
  box: [number, number, number, number];
  /** Its box in pixels. */
  pixelBox: Box;
  /** Its mask (height × width, row-major), 1 where the object covers at least half a pixel. */
  mask: Float32Array;
}

/** The layout of every object of the scene's caption, in caption order. */
export function groundTruthLayout(scene: Scene, caption: Caption = captionOf(scene)): ObjectLayout[] {
  const { masks } = renderScene(scene);
  const [w, h] = [scene.width, scene.height];
  return caption.objects.map((phrase) => {
    const m = masks[phrase.object];
    if (!m)
      throw new Error(
        `groundTruthLayout: the caption names object ${phrase.object}, the scene has ${masks.length}`,
      );
    const b = m.box;
    return {
      object: phrase.object,
      shapeWord: phrase.shape.index,
      box: [b.x0 / w, b.y0 / h, b.x1 / w, b.y1 / h],
      pixelBox: b,
      mask: Float32Array.from(m.mask.toArray()),
    };
  });
}

/** Intersection over union of two pixel boxes [x0, x1) × [y0, y1). */
export function boxIoU(a: Box, b: Box): number {
  const iw = Math.max(0, Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0));
  const ih = Math.max(0, Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0));
  const inter = iw * ih;
  const area = (r: Box) => (r.x1 - r.x0) * (r.y1 - r.y0);
  const union = area(a) + area(b) - inter;
  return union > 0 ? inter / union : 0;
}
