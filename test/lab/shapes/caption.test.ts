import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { captionOf, captionOfSpec, parseCaption } from '../../../src/lab/shapes/caption.js';
import { sampleScene } from '../../../src/lab/shapes/scene.js';
import { specOfScene, wordingSpec } from '../../../src/lab/shapes/spec.js';
import { CLIPTokenizer } from '../../../src/models/clip-tokenizer.js';

const tokenizerDir = fileURLToPath(new URL('../../fixtures/tiny-sd-a/tokenizer', import.meta.url));

test('parseCaption reads the examples of the grammar', () => {
  assert.deepEqual(parseCaption('a small red circle on the left and a blue square'), {
    objects: [
      { color: 'red', shape: 'circle', size: 'small', cell: { row: 1, col: 0 } },
      { color: 'blue', shape: 'square' },
    ],
    relations: [],
  });
  assert.deepEqual(parseCaption('a yellow star above a green ring on a dark background'), {
    objects: [
      { color: 'yellow', shape: 'star' },
      { color: 'green', shape: 'ring' },
    ],
    relations: [{ subject: 0, relation: 'above', object: 1 }],
    background: 'dark',
  });
  assert.deepEqual(
    parseCaption(
      'An orange heart to the right of a large white cross and a purple triangle in the bottom right.',
    ),
    {
      objects: [
        { color: 'orange', shape: 'heart' },
        { color: 'white', shape: 'cross', size: 'large' },
        { color: 'purple', shape: 'triangle', cell: { row: 2, col: 2 } },
      ],
      relations: [{ subject: 0, relation: 'to the right of', object: 1 }],
    },
  );
});

test('parseCaption names what it could not read', () => {
  assert.throws(() => parseCaption('a circle'), /expected a colour .* but found "circle" \(word 1\)/);
  assert.throws(() => parseCaption('a red blob'), /expected a shape .* "blob"/);
  assert.throws(() => parseCaption('a red circle on a grey background'), /background tone .* "grey"/);
  assert.throws(() => parseCaption('a red circle near a blue square'), /"and", a relation .* "near"/);
  assert.throws(
    () => parseCaption('a red circle and a blue square and a green star and a white ring'),
    /at most 3 objects/,
  );
});

test('captions of 500 scenes parse back to what their wording says, and write back to the same text', () => {
  const styles = new Set<string>();
  for (let seed = 0; seed < 500; seed++) {
    const scene = sampleScene(seed);
    const caption = captionOf(scene);
    const spec = parseCaption(caption.text);
    assert.deepEqual(spec, wordingSpec(scene), `seed ${seed}: "${caption.text}"`);
    assert.equal(captionOfSpec(spec).text, caption.text);
    styles.add(spec.relations.length > 0 ? 'relation' : spec.objects.some((o) => o.cell) ? 'cells' : 'plain');
    if (spec.background) styles.add('background');
    if (spec.objects.some((o) => o.size)) styles.add('size');
  }
  assert.deepEqual([...styles].sort(), ['background', 'cells', 'plain', 'relation', 'size']);
});

test('word positions: each phrase records the index of its colour, shape, size and location words', () => {
  const spec = specOfScene(sampleScene(11));
  spec.background = 'light';
  const caption = captionOfSpec(spec);
  const words = caption.text.split(' ');
  assert.deepEqual(caption.words, words);
  caption.objects.forEach((phrase, i) => {
    const o = spec.objects[i]!;
    assert.equal(phrase.object, i);
    assert.equal(words[phrase.color.index], o.color);
    assert.equal(words[phrase.shape.index], o.shape);
    assert.equal(words[phrase.size!.index], o.size);
    assert.ok(phrase.position!.every((w) => words[w.index] === w.word));
    assert.ok(phrase.start <= phrase.color.index && phrase.shape.index < phrase.end);
  });
  assert.equal(words[caption.background!.index], 'light');
});

test('word positions map to token positions with CLIPTokenizer.tokenIndices', () => {
  // the fixture's tokenizer keeps 16 tokens; Shapes captions have up to 30 words (32 tokens with bos, eos)
  const tokenizer = CLIPTokenizer.fromDirectorySync(tokenizerDir);
  const maxLength = 32;
  let longest = 0;
  for (let seed = 0; seed < 200; seed++) {
    const caption = captionOf(sampleScene(seed));
    longest = Math.max(longest, caption.words.length);
    const ids = tokenizer.call(caption.text, { maxLength }).ids[0]!;
    for (const phrase of caption.objects) {
      for (const ref of [phrase.color, phrase.shape]) {
        const positions = tokenizer.tokenIndices(caption.text, ref.index, { maxLength });
        assert.equal(tokenizer.decode(positions.map((p) => ids[p]!)).trim(), ref.word);
      }
    }
  }
  assert.ok(longest <= 30, `longest caption: ${longest} words`);
});

test('captionOfSpec: articles, and the relation it can write', () => {
  assert.equal(
    captionOfSpec({
      objects: [
        { color: 'orange', shape: 'star' },
        { color: 'red', shape: 'ring', size: 'large' },
      ],
      relations: [],
    }).text,
    'an orange star and a large red ring',
  );
  assert.throws(
    () =>
      captionOfSpec({
        objects: [
          { color: 'orange', shape: 'star' },
          { color: 'red', shape: 'ring' },
        ],
        relations: [{ subject: 1, relation: 'above', object: 0 }],
      }),
    /one relation, with object 0 as subject/,
  );
});
