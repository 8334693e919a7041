// SceneSpec: what a prompt asks for — the objects with their colour and shape, and, where the prompt says
// them, sizes, cells, relations and the background tone. ShapesEval scores an image against a spec;
// captions (caption.ts) are specs written out in the Shapes grammar.

import type { ShapeName } from './geometry.js';
import type { Cell, Relation } from './grid.js';
import type { BackgroundTone, ColorName } from './palette.js';
import type { Scene, SizeName } from './scene.js';

/** An object as a prompt states it: colour, shape, and optionally size and cell. */
export interface ObjectSpec {
  color: ColorName;
  shape: ShapeName;
  /** Absent: the prompt does not say. */
  size?: SizeName;
  /** Absent: the prompt does not say. */
  cell?: Cell;
}

/** What a prompt states: its objects, relations between them and the background tone. */
export interface SceneSpec {
  objects: ObjectSpec[];
  /** Between objects of `objects`, by index. */
  relations: Relation[];
  /** Absent: the prompt does not say. */
  background?: BackgroundTone;
}

/** Everything the scene's ground truth fixes: every object's colour, shape, size and cell; the tone. */
export function specOfScene(scene: Scene): SceneSpec {
  return {
    objects: scene.objects.map((o) => ({
      color: o.color,
      shape: o.shape,
      size: o.size,
      cell: { ...o.cell },
    })),
    relations: [],
    background: scene.background.tone,
  };
}

/** What the scene's caption says: its wording applied to the ground truth. */
export function wordingSpec(scene: Scene): SceneSpec {
  const { wording } = scene;
  const spec: SceneSpec = {
    objects: scene.objects.map((o, i) => ({
      color: o.color,
      shape: o.shape,
      ...(wording.sizes[i] ? { size: o.size } : {}),
      ...(wording.positions[i] ? { cell: { ...o.cell } } : {}),
    })),
    relations: wording.relation ? [{ ...wording.relation }] : [],
  };
  if (wording.background) spec.background = scene.background.tone;
  return spec;
}
