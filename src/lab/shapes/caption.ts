// The caption grammar of the Shapes world, both ways: a SceneSpec written out as text with the position of
// every object's words, and text parsed back into a SceneSpec.
//
//   caption   := objects [ "on a" tone "background" ]
//   objects   := object [ relation object ] { "and" object }         (1–3 objects)
//   object    := ( "a" | "an" ) [ size ] colour shape [ location ]
//   relation  := "above" | "below" | "to the left of" | "to the right of"
//   location  := "in the top left" | "at the top" | "in the top right" | "on the left" | "in the center"
//              | "on the right" | "in the bottom left" | "at the bottom" | "in the bottom right"
//   size      := "small" | "large";  tone := "dark" | "light"
//
// e.g. "a small red circle on the left and a blue square", "a yellow star above a green ring on a dark
// background". Words are separated by single spaces with no punctuation, so a word's index in the text is
// also its index for CLIPTokenizer.tokenIndices(text, index).

import { isShapeName } from './geometry.js';
import {
  CELL_PHRASES,
  cellOfPhrase,
  cellPhrase,
  RELATIONS,
  type Relation,
  type RelationName,
} from './grid.js';
import { isBackgroundTone, isColorName } from './palette.js';
import { isSizeName, type Scene } from './scene.js';
import { type ObjectSpec, type SceneSpec, wordingSpec } from './spec.js';

/** A word of the caption and its index among the caption's space-separated words. */
export interface WordRef {
  word: string;
  index: number;
}

/** The words of one object's phrase ("a small red circle on the left"). */
export interface ObjectPhrase {
  /** Index of the object in the spec (and the scene). */
  object: number;
  /** Word span of the whole phrase, [start, end). */
  start: number;
  end: number;
  size?: WordRef;
  color: WordRef;
  shape: WordRef;
  /** The location phrase's words, when it has one. */
  position?: WordRef[];
}

/**
 * A scene's caption: the text, its words, and which words name each object, the relation and the background.
 */
export interface Caption {
  text: string;
  words: string[];
  /** In spec order. */
  objects: ObjectPhrase[];
  relation?: WordRef[];
  background?: WordRef;
}

const article = (word: string) => (/^[aeiou]/.test(word) ? 'an' : 'a');

/** Writes a spec in the grammar. At most one relation, between objects 0 (subject) and 1 (object). */
export function captionOfSpec(spec: SceneSpec): Caption {
  const n = spec.objects.length;
  if (n < 1 || n > 3) throw new Error(`captionOfSpec: the grammar writes 1–3 objects, got ${n}`);
  const relation = spec.relations[0];
  if (spec.relations.length > 1 || (relation && (relation.subject !== 0 || relation.object !== 1))) {
    throw new Error(
      'captionOfSpec: the grammar writes one relation, with object 0 as subject and object 1 as object; ' +
        `got ${JSON.stringify(spec.relations)}`,
    );
  }
  const words: string[] = [];
  const push = (text: string): WordRef[] =>
    text.split(' ').map((word) => {
      words.push(word);
      return { word, index: words.length - 1 };
    });
  const caption: Caption = { text: '', words, objects: [] };
  spec.objects.forEach((o, i) => {
    if (i > 0) {
      if (i === 1 && relation) caption.relation = push(relation.relation);
      else push('and');
    }
    const start = words.length;
    push(article(o.size ?? o.color));
    const size = o.size ? push(o.size)[0] : undefined;
    const color = push(o.color)[0]!;
    const shape = push(o.shape)[0]!;
    const position = o.cell ? push(cellPhrase(o.cell)) : undefined;
    caption.objects.push({
      object: i,
      start,
      end: words.length,
      color,
      shape,
      ...(size ? { size } : {}),
      ...(position ? { position } : {}),
    });
  });
  if (spec.background) {
    push('on a');
    caption.background = push(spec.background)[0]!;
    push('background');
  }
  caption.text = words.join(' ');
  return caption;
}

/** The scene's caption, as its wording says. */
export function captionOf(scene: Scene): Caption {
  return captionOfSpec(wordingSpec(scene));
}

const LOCATIONS = CELL_PHRASES.flat().map((p) => p.split(' '));
const RELATION_WORDS = RELATIONS.map((r) => r.split(' '));

/** Parses a caption of the grammar into a SceneSpec; throws naming the word it could not read. */
export function parseCaption(text: string): SceneSpec {
  const words = text
    .toLowerCase()
    .replace(/[.,;!]/g, ' ')
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '');
  let at = 0;
  const fail = (expected: string): never => {
    const found = at < words.length ? `"${words[at]}" (word ${at})` : 'the end';
    throw new Error(`parseCaption: expected ${expected} but found ${found} in "${text}"`);
  };
  const startsWith = (phrase: readonly string[]) => phrase.every((w, k) => words[at + k] === w);
  const accept = (phrase: readonly string[]): boolean => {
    if (!startsWith(phrase)) return false;
    at += phrase.length;
    return true;
  };

  const object = (): ObjectSpec => {
    if (!accept(['a']) && !accept(['an'])) fail('"a" or "an"');
    const spec: Partial<ObjectSpec> = {};
    const size = words[at];
    if (size !== undefined && isSizeName(size)) {
      spec.size = size;
      at++;
    }
    const color = words[at];
    if (color === undefined || !isColorName(color)) return fail('a colour (red, orange, yellow, …)');
    at++;
    const shape = words[at];
    if (shape === undefined || !isShapeName(shape)) return fail('a shape (circle, square, triangle, …)');
    at++;
    const location = LOCATIONS.find(startsWith);
    if (location) {
      at += location.length;
      spec.cell = cellOfPhrase(location.join(' '))!;
    }
    return { color, shape, ...spec };
  };

  const spec: SceneSpec = { objects: [object()], relations: [] };
  const relation = RELATION_WORDS.find(startsWith);
  if (relation) {
    at += relation.length;
    spec.objects.push(object());
    const rel: Relation = { subject: 0, relation: relation.join(' ') as RelationName, object: 1 };
    spec.relations.push(rel);
  }
  while (accept(['and'])) spec.objects.push(object());
  if (accept(['on', 'a'])) {
    const tone = words[at];
    if (tone === undefined || !isBackgroundTone(tone)) fail('a background tone (dark, light)');
    else spec.background = tone;
    at++;
    if (!accept(['background'])) fail('"background"');
  }
  if (at < words.length) fail('"and", a relation or "on a … background"');
  if (spec.objects.length > 3)
    throw new Error(`parseCaption: at most 3 objects, "${text}" has ${spec.objects.length}`);
  return spec;
}
