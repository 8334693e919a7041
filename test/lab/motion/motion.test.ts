// Moving Shapes against its own ground truth: clips keep every object apart and inside the image, move them
// by exactly speed·k pixels, caption the motion so that it parses back, and the clip metrics score rendered
// clips as perfect — and score clips broken on purpose (frames reversed, an object recoloured) as broken.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CLIP_SPEED,
  type Clip,
  captionOfClip,
  parseMotionCaption,
  renderClip,
  sampleClip,
  sceneAt,
  scoreClip,
  summarizeClips,
} from '../../../src/lab/motion/index.js';
import { type ColorName, renderScene } from '../../../src/lab/shapes/index.js';
import type { Tensor } from '../../../src/tensor/index.js';

const SEEDS = Array.from({ length: 12 }, (_, i) => 5000 + i);

/** Centre of mass of a (H, W) coverage map. */
function centroid(coverage: Tensor): { x: number; y: number } {
  const [h, w] = coverage.shape as [number, number];
  let [m, sx, sy] = [0, 0, 0];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const a = coverage.data[y * w + x] as number;
      m += a;
      sx += a * (x + 0.5);
      sy += a * (y + 0.5);
    }
  }
  return { x: sx / m, y: sy / m };
}

test('moving shapes: a seed gives the same clip, frame 0 is the scene of the seed, motions vary', () => {
  const a = sampleClip(SEEDS[0]!);
  assert.deepEqual(sampleClip(SEEDS[0]!), a);
  assert.equal(a.frames, 8);
  assert.deepEqual(sceneAt(a, 0), a.scene);
  const motions = new Set(SEEDS.flatMap((s) => sampleClip(s).motions.map(String)));
  assert.ok(motions.size >= 4, `motions seen: ${[...motions]}`);
});

test('moving shapes: sharedDirection moves every moving object one way and leaves frame 0 alone', () => {
  let mixed = 0;
  for (const seed of SEEDS.concat(SEEDS.map((s) => s + 100))) {
    const shared = sampleClip(seed, { sharedDirection: true });
    assert.deepEqual(shared.scene, sampleClip(seed).scene);
    assert.ok(new Set(shared.motions.filter((m) => m !== null)).size <= 1, `seed ${seed}`);
    if (new Set(sampleClip(seed).motions.filter((m) => m !== null)).size > 1) mixed++;
  }
  assert.ok(mixed > 0, 'no clip with two directions to compare');
});

test('moving shapes: every frame keeps objects inside, apart, and moved by speed·k along their direction', () => {
  for (const seed of SEEDS) {
    const clip = sampleClip(seed);
    const frames = renderClip(clip);
    const start = frames[0]!.masks.map((m) => centroid(m.coverage));
    frames.forEach((f, k) => {
      f.masks.forEach((m, i) => {
        const { x0, y0, x1, y1 } = m.box;
        assert.ok(
          x0 > 0 && y0 > 0 && x1 < 64 && y1 < 64,
          `seed ${seed} frame ${k} object ${i} at the border`,
        );
        const c = centroid(m.coverage);
        const v = { left: [-1, 0], right: [1, 0], up: [0, -1], down: [0, 1] }[clip.motions[i] ?? 'left'];
        const d = clip.motions[i] ? CLIP_SPEED * k : 0;
        assert.ok(Math.abs(c.x - start[i]!.x - v![0]! * d) < 0.05, `seed ${seed} frame ${k} x`);
        assert.ok(Math.abs(c.y - start[i]!.y - v![1]! * d) < 0.05, `seed ${seed} frame ${k} y`);
      });
      // no two objects overlap (their masks share no pixel)
      for (let i = 0; i < f.masks.length; i++) {
        for (let j = i + 1; j < f.masks.length; j++) {
          const a = f.masks[i]!.coverage.data;
          const b = f.masks[j]!.coverage.data;
          assert.ok(!a.some((v, p) => (v as number) > 0 && (b[p] as number) > 0), `seed ${seed} frame ${k}`);
        }
      }
    });
  }
});

test('moving shapes: captions say each motion after its object and parse back', () => {
  for (const seed of SEEDS) {
    const clip = sampleClip(seed);
    const caption = captionOfClip(clip);
    const parsed = parseMotionCaption(caption.text);
    assert.deepEqual(parsed.motions, clip.motions);
    assert.equal(parsed.stillText, caption.still.text);
    assert.deepEqual(
      parsed.spec.objects.map((o) => [o.color, o.shape]),
      clip.scene.objects.map((o) => [o.color, o.shape]),
    );
    caption.motions.forEach((m, i) => {
      if (m)
        assert.deepEqual(
          [caption.words[m[0]!.index], caption.words[m[1]!.index]],
          ['moving', clip.motions[i]],
        );
    });
  }
  assert.deepEqual(parseMotionCaption('a red circle moving right and a blue square').motions, [
    'right',
    null,
  ]);
});

test('moving shapes: motion phrases that name no object or no direction are errors naming the word', () => {
  assert.throws(() => parseMotionCaption('a red circle moving sideways'), /direction.*"sideways"/);
  assert.throws(() => parseMotionCaption('moving right a red circle'), /must follow an object's shape word/);
  assert.throws(() => parseMotionCaption('a red blob moving right'), /"blob"/);
  assert.throws(() => parseMotionCaption('a red circle moving right moving left'), /must follow/);
});

function frameImages(clip: Clip): Tensor[] {
  return renderClip(clip).map((r) => r.image);
}

test('clip metrics: rendered clips keep identity, move the asked way in straight lines, background still', () => {
  const reports = SEEDS.map((seed) => {
    const clip = sampleClip(seed);
    return scoreClip(frameImages(clip), captionOfClip(clip).text);
  });
  const s = summarizeClips(reports);
  assert.equal(s.identity.rate, 1);
  assert.ok(s.direction.total >= 8);
  assert.equal(s.direction.rate, 1);
  assert.ok((s.straightness ?? 0) > 0.97, `straightness ${s.straightness}`);
  assert.ok((s.background ?? 1) < 0.5, `background ${s.background}`);
  assert.equal(s.colorShapeOneObject.rate, 1);
});

test('clip metrics: reversed frames go the wrong way; a recoloured frame breaks identity; a moving background counts', () => {
  const clip = sampleClip(SEEDS.find((s) => sampleClip(s).motions.some((m) => m !== null))!);
  const caption = captionOfClip(clip).text;
  const frames = frameImages(clip);
  const reversed = scoreClip([...frames].reverse(), caption);
  for (const o of reversed.objects) if (o.trajectory) assert.equal(o.trajectory.correct, false);

  const k = 4;
  const scene = sceneAt(clip, k);
  const other: ColorName = scene.objects[0]!.color === 'red' ? 'green' : 'red';
  const recoloured = {
    ...scene,
    objects: scene.objects.map((o, i) => (i === 0 ? { ...o, color: other } : o)),
  };
  const broken = frames.map((f, i) => (i === k ? renderScene(recoloured).image : f));
  const r = scoreClip(broken, caption);
  assert.equal(r.identity, false);
  assert.equal(r.objects[0]!.identity, false);

  // a frame of another background colour
  const shifted = {
    ...scene,
    background: {
      ...scene.background,
      rgb: scene.background.rgb.map((v) => Math.min(255, v + 30)) as [number, number, number],
    },
  };
  const moved = frames.map((f, i) => (i === k ? renderScene(shifted).image : f));
  assert.ok(scoreClip(moved, caption).background > 5);
});
