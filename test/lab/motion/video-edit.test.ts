// The video word-swap measurement against the Moving Shapes ground truth: the recoloured clip changes object 0's
// colour word and nothing else of the caption or the motion; scored as an edit of the rendered source clip, the
// rendered recoloured clip has the new colour in every frame with the object's mask in place (IoU 1), while the
// source clip itself (no edit) has it in none; the summary counts clips by their share of changed frames.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  captionOfClip,
  parseMotionCaption,
  recolouredClip,
  renderClip,
  sampleClip,
  scoreVideoEdit,
  summarizeVideoEdit,
  type VideoEditRow,
} from '../../../src/lab/motion/index.js';
import { COLORS } from '../../../src/lab/shapes/index.js';
import type { Tensor } from '../../../src/tensor/index.js';

const frames = (c: ReturnType<typeof sampleClip>): Tensor[] => renderClip(c).map((r) => r.image);

test('recolouredClip: object 0 in the new colour, the same motion and wording otherwise', () => {
  for (let seed = 7000; seed < 7006; seed++) {
    const clip = sampleClip(seed, { frames: 4, sharedDirection: true });
    const colour = COLORS.find((c) => !clip.scene.objects.some((o) => o.color === c))!;
    const re = recolouredClip(clip, colour);
    assert.deepEqual(re.motions, clip.motions);
    const [a, b] = [captionOfClip(clip), captionOfClip(re)];
    const differ = a.words.flatMap((w, i) => (w === b.words[i] ? [] : [i]));
    assert.equal(a.words.length, b.words.length, `${a.text} → ${b.text}`);
    // the colour word, and the article where it follows the colour ("a red" → "an orange")
    const changed = differ.map((i) => b.words[i]);
    assert.ok(changed.includes(colour), `${a.text} → ${b.text}`);
    assert.ok(
      changed.every((w) => w === colour || w === 'a' || w === 'an'),
      `${a.text} → ${b.text}`,
    );
    assert.equal(parseMotionCaption(a.text).stillText, a.still.text);
  }
});

test('scoreVideoEdit on rendered clips: the true recolouring is a perfect edit, no edit changes nothing', () => {
  const clip = sampleClip(7100, { frames: 4, sharedDirection: true });
  const colour = COLORS.find((c) => !clip.scene.objects.some((o) => o.color === c))!;
  const re = recolouredClip(clip, colour);
  const [src, tgt] = [captionOfClip(clip).text, captionOfClip(re).text];
  const perfect = scoreVideoEdit(frames(clip), frames(re), src, tgt);
  assert.deepEqual(perfect.changed, [true, true, true, true]);
  assert.deepEqual(perfect.sourceValid, [true, true, true, true]);
  for (const v of [...perfect.iou, ...perfect.iouSamePlace]) assert.ok(v > 0.99, `IoU ${v}`);
  assert.equal(perfect.sourceIdentity, true);
  assert.equal(perfect.editedIdentity, true);
  const none = scoreVideoEdit(frames(clip), frames(clip), src, tgt);
  assert.deepEqual(none.changed, [false, false, false, false]);
  for (const v of none.iou) assert.ok(v > 0.99, `IoU ${v}`); // the object, matched in its old colour, in place
  assert.throws(() => scoreVideoEdit(frames(clip), frames(clip).slice(1), src, tgt), /4 source frames but 3/);
});

test('summarizeVideoEdit: clips with the new colour in ≥ 80 % of frames, IoU over valid source frames', () => {
  const row = (changed: boolean[], iou: number[], valid: boolean[]): VideoEditRow => ({
    seed: 0,
    source: '',
    target: '',
    method: 't2v-zero',
    changed,
    iou,
    iouSamePlace: iou.map((v) => v / 2),
    sourceValid: valid,
    sourceIdentity: true,
    editedIdentity: false,
  });
  const t = true;
  const f = false;
  const s = summarizeVideoEdit(
    [
      row([t, t, t, t, f], [1, 1, 1, 1, 1], [t, t, t, t, t]), // 4/5 = 80 %: counts
      row([t, t, t, f, f], [0.5, 0.5, 0, 0, 0], [t, t, f, f, f]), // 60 %: does not
    ],
    0.8,
  );
  assert.equal(s.clipsChanged, 1);
  assert.equal(s.clipsChangedRate, 0.5);
  assert.equal(s.framesChangedRate, 0.7);
  assert.equal(s.validFrames, 7);
  assert.equal(s.meanIoU, 6 / 7);
  assert.equal(s.meanIoUSamePlace, 3 / 7);
  assert.deepEqual(s.meanIoUByFrame, [0.75, 0.75, 1, 1, 1]);
  assert.equal(s.sourceIdentityRate, 1);
  assert.equal(s.editedIdentityRate, 0);
});
