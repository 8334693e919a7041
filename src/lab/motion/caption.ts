// Captions of Moving Shapes clips: the Shapes grammar with a motion phrase after an object's shape,
//
//   object := ( "a" | "an" ) [ size ] colour shape [ "moving" direction ]
//   direction := "left" | "right" | "up" | "down"
//
// e.g. "a small red circle moving right and a blue square on a dark background". Clip captions give no
// cells or relations (an object that moves changes cell). `parseMotionCaption` reads any caption of the
// Shapes grammar with motion phrases: it removes them, parses the rest with `parseCaption`, and gives each
// object the motion written after its shape word.

import {
  type Caption,
  captionOfSpec,
  isShapeName,
  type ObjectSpec,
  parseCaption,
  type SceneSpec,
  type WordRef,
} from '../shapes/index.js';
import { type Clip, DIRECTIONS, type Direction, isDirection } from './clip.js';

/** A clip caption: the Shapes caption's words with the motion phrases, and where each phrase is. */
export interface ClipCaption {
  text: string;
  words: string[];
  /** Per object: its motion phrase's two words ("moving", direction), when it moves. */
  motions: (WordRef[] | null)[];
  /** The caption without motion phrases, what an image model is prompted with. */
  still: Caption;
}

/** What a motion caption asks for: the scene of every frame and each object's direction (null: stays). */
export interface MotionSpec {
  spec: SceneSpec;
  motions: (Direction | null)[];
  /** The caption without its motion phrases. */
  stillText: string;
}

/** The clip's caption: colours and shapes, sizes and background as frame 0's wording says, and motions. */
export function captionOfClip(clip: Clip): ClipCaption {
  const { scene } = clip;
  const objects: ObjectSpec[] = scene.objects.map((o, i) => ({
    color: o.color,
    shape: o.shape,
    ...(scene.wording.sizes[i] ? { size: o.size } : {}),
  }));
  const spec: SceneSpec = {
    objects,
    relations: [],
    ...(scene.wording.background ? { background: scene.background.tone } : {}),
  };
  const still = captionOfSpec(spec);
  const words: string[] = [];
  const motions: (WordRef[] | null)[] = [];
  still.words.forEach((word, index) => {
    words.push(word);
    const object = still.objects.findIndex((o) => o.shape.index === index);
    if (object < 0) return;
    const motion = clip.motions[object] ?? null;
    if (motion === null) {
      motions.push(null);
      return;
    }
    words.push('moving', motion);
    motions.push([
      { word: 'moving', index: words.length - 2 },
      { word: motion, index: words.length - 1 },
    ]);
  });
  return { text: words.join(' '), words, motions, still };
}

/** Parses a caption with motion phrases; throws naming the word it could not read. */
export function parseMotionCaption(text: string): MotionSpec {
  const words = text
    .toLowerCase()
    .replace(/[.,;!]/g, ' ')
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
  const kept: string[] = [];
  // motion of each shape word kept, in order: the k-th shape word is the k-th object's
  const motions: (Direction | null)[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (word !== 'moving') {
      kept.push(word);
      if (isShapeName(word)) motions.push(null);
      continue;
    }
    const before = kept[kept.length - 1];
    if (before === undefined || !isShapeName(before) || motions[motions.length - 1] !== null) {
      throw new Error(
        `parseMotionCaption: "moving" (word ${i}) must follow an object's shape word (circle, square, …), ` +
          `found after ${before === undefined ? 'nothing' : `"${before}"`} in "${text}"`,
      );
    }
    const direction = words[i + 1];
    if (direction === undefined || !isDirection(direction)) {
      throw new Error(
        `parseMotionCaption: "moving" (word ${i}) must be followed by a direction (${DIRECTIONS.join(', ')}), ` +
          `found ${direction === undefined ? 'the end' : `"${direction}"`} in "${text}"`,
      );
    }
    motions[motions.length - 1] = direction;
    i++;
  }
  const stillText = kept.join(' ');
  const spec = parseCaption(stillText);
  if (motions.length !== spec.objects.length) {
    throw new Error(
      `parseMotionCaption: ${motions.length} shape words for ${spec.objects.length} objects in "${text}"`,
    );
  }
  return { spec, motions, stillText };
}
