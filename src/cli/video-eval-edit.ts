// attnkit video-eval --edit: Video-P2P's word swap on held-out Moving Shapes clips — object 0's colour swapped,
// per method (t2v-zero: with cross-frame attention; motion-only: per-frame Prompt-to-Prompt without it) the
// clips with the new colour in ≥ 80 % of their frames, the frames with it, the object's IoU with the source
// frame, and the identity of the source and edited clips.

import { writeOutput } from '../io/output.js';
import type { VideoEditMeasurement, VideoEditSummary } from '../lab/motion/edit.js';

const pct = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
const num = (x: number | null | undefined) => (x == null ? '—' : x.toFixed(3));

/** One markdown row of a method's video word-swap summary. */
export function editSummaryRow(name: string, s: VideoEditSummary): string {
  return (
    `| ${name} | ${pct(s.clipsChangedRate)} (${s.clipsChanged}/${s.clips}) | ${pct(s.framesChangedRate)} | ` +
    `${num(s.meanIoU)} (${s.validFrames} frames) | ${num(s.meanIoUSamePlace)} | ${pct(s.sourceIdentityRate)} | ` +
    `${pct(s.editedIdentityRate)} |`
  );
}

/** The measurement's table (stdout) and, with `json`, its settings, summaries and per-clip rows. */
export function reportVideoEdit(m: VideoEditMeasurement, seconds: number, json?: string): void {
  const s = m.settings;
  const lines = [
    `${s.clips} clips from held-out index ${s.start}, ${s.steps} steps, guidance ${s.guidanceScale}, t0 ${s.t0}, ` +
      `cross-replace ${s.crossReplaceSteps}, self-replace ${s.selfReplaceSteps}, ${seconds.toFixed(0)} s`,
    `| method | clips with the new colour in ≥ ${100 * s.frameShare}% of frames | frames with the new colour | object IoU with the source frame | IoU, copy in the source's place | source identity | edited identity |`,
    '|---|---|---|---|---|---|---|',
    ...s.methods.map((name) => editSummaryRow(name, m.summary[name]!)),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (json) {
    const rows = m.rows.map(({ frames: _, ...r }) => r);
    writeOutput(json, `${JSON.stringify({ settings: s, seconds, summary: m.summary, rows }, null, 1)}\n`);
  }
}
