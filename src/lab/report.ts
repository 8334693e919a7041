// The lab's reports: a ShapesEval run as text, markdown and JSON (the issue-4 targets, then ShapesEval's
// summary), and the edit measurements as markdown sections (docs/results.md is written from both).

import type {
  EditMeasurements,
  MeasurementName,
  RealEditSummary,
  SwapMethodSummary,
} from './measure/index.js';
import { formatSummary, type Rate, type SceneReport } from './shapes/index.js';
import type { ShapesEvalRun } from './shapes-eval.js';

/** A fraction as a percentage with one decimal, '—' when there is none. */
const pc = (v: number | null | undefined) =>
  v === null || v === undefined ? '—' : `${(100 * v).toFixed(1)}%`;
const f2 = (v: number | null | undefined, d = 2) => (v === null || v === undefined ? '—' : v.toFixed(d));
const ok = (v: number | null | undefined, pass: (x: number) => boolean) =>
  v === null || v === undefined ? 'n/a' : pass(v) ? 'pass' : 'FAIL';

/** A markdown table. */
function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

// ----------------------------------------------------------------------------------------------------------
// ShapesEval runs

/** A rate as "percentage (correct/total)". */
const counted = (r: Rate) => `${pc(r.rate)} (${r.correct}/${r.total})`;

/** The issue-4 targets as rows: name, measured, target, verdict. */
export function headlineRows(run: ShapesEvalRun): [string, string, string, string][] {
  const h = run.headline;
  const rows: [string, string, string, string][] = [
    [
      '1-object prompts: colour + shape',
      counted(h.singleColorShape),
      '≥ 90%',
      ok(h.singleColorShape.rate, (x) => x >= 0.9),
    ],
    [
      '2-object prompts: both colour + shape',
      counted(h.twoColorShape),
      '≥ 70%',
      ok(h.twoColorShape.rate, (x) => x >= 0.7),
    ],
    ['2-object prompts: both fully correct', counted(h.twoAllCorrect), '—', ''],
    [
      'position (where the prompt gives one)',
      counted(h.position),
      '≥ 70%',
      ok(h.position.rate, (x) => x >= 0.7),
    ],
  ];
  const m = run.heatMaps;
  if (m) {
    rows.push([
      `heat-map IoU, shape word (th ${m.threshold}, steps ${m.steps?.join(':') ?? 'all'}${m.resolutions ? `, maps ${m.resolutions.join('/')}` : ''}), ` +
        `${m.matched}/${m.objects - m.truncated} objects matched`,
      f2(m.meanIoU, 3),
      '≥ 0.5',
      ok(m.meanIoU, (x) => x >= 0.5),
    ]);
    rows.push(['  same, Otsu threshold', f2(m.meanIoUOtsu, 3), '', '']);
    rows.push(['  same, unmatched objects as 0', f2(m.meanIoUWithMissing, 3), '', '']);
    if (m.meanIoUCopies !== undefined)
      rows.push(['  same, mask of every detected copy of the object', f2(m.meanIoUCopies, 3), '', '']);
  }
  return rows;
}

function alignRows(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) =>
    r
      .map((v, c) => v.padEnd(widths[c]!))
      .join('  ')
      .trimEnd(),
  );
}

/** The run as text: the issue-4 targets, then ShapesEval's full summary. */
export function formatEvalRun(run: ShapesEvalRun): string {
  const c = run.config;
  const lines = [
    `${c.mode === 'reconstruct' ? 'VAE round trips of the rendered scenes of ' : ''}` +
      `held-out prompts ${c.start}..${c.start + c.prompts - 1} (scene seeds ${c.seeds[0]}..${c.seeds[1]})` +
      `${c.prompts < c.asked ? ` — ${c.prompts} of the ${c.asked} asked, the time budget ran out` : ''}, ` +
      `${c.scheduler} ${c.steps} steps, guidance ${c.guidanceScale}` +
      `${c.guidanceRescale ? ` rescaled by ${c.guidanceRescale}` : ''}, ${run.seconds.toFixed(1)} s`,
    '',
    ...alignRows([['target', 'measured', 'goal', ''], ...headlineRows(run)]),
  ];
  if (run.heatMaps) lines.push(`note: ${run.heatMaps.maskSource}`);
  lines.push('', formatSummary(run.summary));
  return lines.join('\n');
}

/** The issue-4 targets as a markdown table. */
export function evalMarkdown(run: ShapesEvalRun): string {
  return table(['metric', 'measured', 'target', ''], headlineRows(run));
}

/** JSON of the run (config, headline, summary, heat-maps, then per-prompt rows; images left out). */
export function evalRunJSON(run: ShapesEvalRun): string {
  const { images: _, rows, ...rest } = run;
  return JSON.stringify(
    {
      ...rest,
      rows: rows.map((r) => ({
        index: r.index,
        seed: r.seed,
        caption: r.caption,
        report: stripDetection(r.report),
      })),
    },
    null,
    2,
  );
}

/** A report without the detector's full object list (kept: the matched objects, the background). */
function stripDetection(report: SceneReport): Omit<SceneReport, 'detection'> & { detected: number } {
  const { detection, ...rest } = report;
  return { ...rest, detected: detection.objects.length };
}

// ----------------------------------------------------------------------------------------------------------
// edit measurements

function realEditRow(name: string, x: RealEditSummary): string[] {
  return [
    name,
    pc(x.changedRate),
    f2(x.othersMeanIoU, 3),
    f2(x.othersMeanIoUReconstruction, 3),
    f2(x.maeOutside),
    f2(x.maeOutsideReconstruction),
  ];
}

/** The measurements as markdown sections. */
export function editsMarkdown(r: EditMeasurements): string {
  const c = r.config;
  const out: string[] = [
    `Settings: ${c.sampler === 'flow-euler' ? 'flow-matching Euler (the DiT)' : 'DDIM'} ${c.steps} steps, guidance ${c.guidanceScale}, up to ${c.seeds} held-out scenes per measurement ` +
      `(scene seeds ≥ 10⁹; each measurement's own range${c.sceneOffset ? `, shifted by ${c.sceneOffset}: a validation run` : ''}), ` +
      `${c.batchPrompts} prompts per batch. Object masks of ` +
      "generated images are ShapesEval's detected templates; rendered scenes use their ground truth. Errors are " +
      '8-bit levels (0–255).',
    '',
  ];
  const secs = (m: MeasurementName) => (r.seconds[m] !== undefined ? `, ${r.seconds[m]!.toFixed(0)} s` : '');
  // results written before the threshold was an option: 0.6 in the shape swap, the reference's 0.3 elsewhere
  const blendTh = (m: 'colour' | 'shape') => c.blendThreshold ?? (m === 'shape' ? 0.6 : 0.3);
  if (r.colourSwap) {
    const s = r.colourSwap;
    const rep = s.methods.replace!;
    const none = s.methods.none!;
    const row = (name: string, x: SwapMethodSummary) => [
      name,
      pc(x.changedRate),
      f2(x.meanIoU, 3),
      pc(x.iouAtLeast),
      f2(x.meanMaeOutside),
      f2(x.meanIoUCopies, 3),
      f2(x.meanMaeOutsideCopies),
      f2(x.meanIoUSamePlace, 3),
    ];
    const blend = s.methods['replace+blend'];
    out.push(
      `### Colour word swap (AttentionReplace) — ${s.seeds} seeds, ${rep.scenes} with the source object right${secs('colour-swap')}`,
      '',
      table(
        [
          'method',
          'new colour',
          'object IoU with source (mean)',
          'IoU ≥ 0.8',
          'mean abs error outside object',
          'IoU, every copy of the object',
          'error outside every copy',
          "IoU, the copy in the source object's place",
        ],
        [
          row('AttentionReplace', rep),
          ...(blend
            ? [
                row(
                  `AttentionReplace + LocalBlend (the two colour words, threshold ${blendTh('colour')})`,
                  blend,
                ),
              ]
            : []),
          row('plain regeneration, same seed', none),
        ],
      ),
      '',
      `Targets: new colour ≥ 80% (${ok(rep.changedRate, (x) => x >= 0.8)}), object IoU ≥ 0.8 (${ok(rep.meanIoU, (x) => x >= 0.8)}), ` +
        `regeneration worse on layout (${ok(rep.meanIoU !== null && none.meanIoU !== null ? rep.meanIoU - none.meanIoU : null, (x) => x > 0)}).`,
      '',
      '"Every copy": the masks of all detected objects with the object\'s colour and shape (source: old colour, ' +
        'edited: new colour), because the model often draws an object twice and ShapesEval then matches either copy. ' +
        "\"The copy in the source object's place\": of the edited image's detected objects with the matched one's " +
        "colour and shape, the one that overlaps the source object's mask most.",
      '',
    );
  }
  if (r.shapeSwap) {
    const s = r.shapeSwap;
    const b = s.methods['replace+blend']!;
    out.push(
      `### Shape word swap with LocalBlend — ${s.seeds} seeds (2–3 objects), ${b.scenes} with the source object right${secs('shape-swap')}`,
      '',
      table(
        [
          'method',
          'new shape',
          'other objects: IoU (mean)',
          'others IoU ≥ 0.9',
          'edited object IoU',
          'error outside object',
          'others IoU, every copy',
          'others IoU ≥ 0.9, every copy',
          "others IoU, the copy in the source object's place",
          'others ≥ 0.9, same place',
        ],
        [
          [
            `AttentionReplace + LocalBlend (threshold ${blendTh('shape')})`,
            pc(b.changedRate),
            f2(b.othersMeanIoU, 3),
            pc(b.othersAtLeast),
            f2(b.meanIoU, 3),
            f2(b.meanMaeOutside),
            f2(b.othersMeanIoUCopies, 3),
            pc(b.othersCopiesAtLeast),
            f2(b.othersMeanIoUSamePlace, 3),
            pc(b.othersSamePlaceAtLeast),
          ],
        ],
      ),
      '',
      `Target: other objects unchanged, IoU ≥ 0.9 (${ok(b.othersMeanIoU, (x) => x >= 0.9)}; ${b.othersCount} other objects; ` +
        `every copy ${ok(b.othersMeanIoUCopies, (x) => x >= 0.9)}, the copy in the source object's place ` +
        `${ok(b.othersMeanIoUSamePlace, (x) => x >= 0.9)}).`,
      '',
    );
  }
  if (r.reweight) {
    const s = r.reweight;
    out.push(
      `### Reweight (the object's ${s.word} word) — ${s.seeds} seeds (1 object), ${s.scenes} with the object right${secs('reweight')}`,
      '',
      table(
        ['weight', ...s.weights.map(String)],
        [
          ['mean object area (px)', ...s.meanArea.map((v) => f2(v, 1))],
          ['mean saturation', ...s.meanSaturation.map((v) => f2(v, 3))],
        ],
      ),
      '',
      `Monotone increase over the ${s.weights.length} weights: area ${pc(s.monotoneArea)}, saturation ` +
        `${pc(s.monotoneSaturation)}, either ${pc(s.monotoneEither)} of scenes (weight 1 is the source image).`,
      '',
    );
  }
  if (r.heatMaps) {
    const s = r.heatMaps;
    out.push(
      `### Heat-maps per object word — ${s.seeds} rendered scenes, ${s.objects} objects${secs('heatmaps')}`,
      '',
      table(
        ['word', `mean IoU (threshold ${s.threshold})`, 'mean IoU (Otsu)'],
        [
          ['shape word', f2(s.meanIoU.shape, 3), f2(s.meanIoUOtsu.shape, 3)],
          ['colour word', f2(s.meanIoU.color, 3), f2(s.meanIoUOtsu.color, 3)],
          ['colour + shape (mean map)', f2(s.meanIoU.object, 3), f2(s.meanIoUOtsu.object, 3)],
        ],
      ),
      '',
      `Target: IoU ≥ 0.5 on average (${ok(s.meanIoU.shape, (x) => x >= 0.5)} for the shape word). Maps: ${s.source}.`,
      '',
    );
  }
  if (r.feature) {
    const s = r.feature;
    const rowOf = (name: string, m: string) => {
      const x = s.methods[m]!;
      return [
        name,
        pc(x.position),
        pc(x.objectRight),
        f2(x.meanColourError, 1),
        f2(x.meanBackgroundError, 1),
      ];
    };
    out.push(
      `### MasaCtrl and Plug-and-Play on a layout change — ${s.seeds} seeds, ${s.scenes} with the source object right${secs('feature')}`,
      '',
      'Source "a red star in the top left" → target "a red star in the bottom right" (the object moves to a cell in another row and column).',
      '',
      table(
        [
          'method',
          'target position right',
          'object right (colour, shape, cell)',
          'colour error vs source (RGB distance)',
          'background error',
        ],
        [
          rowOf('MasaCtrl', 'masactrl'),
          ...(s.methods['masactrl-mask']
            ? [rowOf('MasaCtrl, MaskAuto on the object’s words', 'masactrl-mask')]
            : []),
          // a DiT has no ResNet features for Plug-and-Play to inject
          ...(s.methods['pnp'] ? [rowOf('Plug-and-Play', 'pnp')] : []),
          rowOf('plain regeneration', 'none'),
        ],
      ),
      '',
    );
  }
  if (r.inversion) {
    const s = r.inversion;
    const e = s.nullText.edit;
    out.push(
      `### Inversion of rendered scenes — ${s.seeds} scenes, null-text on ${s.nullText.seeds}${secs('inversion')}`,
      '',
      table(
        ['reconstruction', 'mean PSNR (dB)', 'target'],
        [
          ['VAE encode → decode (ceiling)', f2(s.vaePSNR), ''],
          [
            'DDIM inversion → regeneration, guidance 1',
            f2(s.ddimPSNR),
            `≥ 25 (${ok(s.ddimPSNR, (x) => x >= 25)})`,
          ],
          [`DDIM inversion → regeneration, guidance ${s.guidanceScale}`, f2(s.ddimGuidedPSNR), ''],
          [
            `null-text inversion (${s.nullText.innerSteps} inner steps, lr ${s.nullText.learningRate ?? 0.01}), guidance ${s.guidanceScale}`,
            f2(s.nullText.psnr),
            `≥ 30 (${ok(s.nullText.psnr, (x) => x >= 30)})`,
          ],
        ],
      ),
      '',
      'Colour swap on the null-text-inverted scenes (does only the named object change?):',
      '',
      table(
        [
          'method',
          'new colour',
          'other objects: IoU with ground truth',
          'reconstruction: other objects IoU',
          'error outside the object',
          'reconstruction: error outside the object',
        ],
        [
          realEditRow('AttentionReplace', e),
          // absent from results written before it was measured
          ...(s.nullText.editBlend
            ? [
                realEditRow(
                  `AttentionReplace + LocalBlend (the two colour words, threshold ${blendTh('colour')})`,
                  s.nullText.editBlend,
                ),
              ]
            : []),
          ...(s.nullText.editBlendSourceOnly
            ? [
                realEditRow(
                  `… and null-text for the source only (the target with the plain unconditional embedding)`,
                  s.nullText.editBlendSourceOnly,
                ),
              ]
            : []),
        ],
      ),
      '',
    );
  }
  return out.join('\n');
}
