// Feature: MasaCtrl (plain, and MaskAuto on the object's words) and Plug-and-Play on a layout change — the one
// object moves to a cell in another row and column — against plain regeneration: is the object drawn in the new
// cell with the source's colour, and how far do its colour and the background drift?

import { defaultPnPLayers, MASACTRL_START_STEP, MutualSelfAttention, PlugAndPlay } from '../../index.js';
import { type Job, runJobs } from '../jobs.js';
import {
  colourStats,
  dist,
  maskOf,
  mean,
  meanAbsError,
  outsideOf,
  rate,
  rightObject,
  sizeOf,
} from '../metrics.js';
import { type Cell, captionOfSpec, evaluate, type SceneSpec, sampleScene } from '../shapes/index.js';
import { type MeasureSettings, scenes } from './common.js';
import { isDiT, type MeasureModel, masaCtrlStartLayer, maskAutoOn, maskResolutionOf } from './model.js';

/**
 * The feature-edit measurement's result: per method (MasaCtrl, MasaCtrl with masks, Plug-and-Play, none),
 * whether the target keeps the source object in the new place and how far its colour moved.
 */
export interface FeatureResult {
  seeds: number;
  /** Over scenes whose source object is right. */
  scenes: number;
  methods: Record<
    string,
    {
      /** Target object present with the source's colour and shape, and in the target cell. */
      objectRight: number | null;
      position: number | null;
      /** Distance (8-bit RGB) between the mean colour of the target object and of the source object. */
      meanColourError: number | null;
      /** Mean abs error of the background colour statistics (outside both objects), 8-bit levels. */
      meanBackgroundError: number | null;
    }
  >;
  rows: {
    seed: number;
    source: string;
    target: string;
    valid: boolean;
    perMethod: Record<string, unknown>;
  }[];
}

function otherCell(cell: Cell, seed: number): Cell {
  const cells: Cell[] = [];
  for (let row = 0; row < 3; row++)
    for (let col = 0; col < 3; col++) if (row !== cell.row || col !== cell.col) cells.push({ row, col });
  // prefer a cell in another row and column, so the layout change is unambiguous
  const far = cells.filter((c) => c.row !== cell.row && c.col !== cell.col);
  const pool = far.length > 0 ? far : cells;
  return pool[seed % pool.length]!;
}

/**
 * The feature-edit measurement: MasaCtrl and Plug-and-Play edits of held-out scenes, scored against the
 * Shapes world's ground truth. On the DiT, MasaCtrl only: Plug-and-Play injects ResNet features, which an
 * MM-DiT has none of.
 */
export function measureFeature(sd: MeasureModel, o: MeasureSettings): FeatureResult {
  const methods = isDiT(sd)
    ? (['masactrl', 'masactrl-mask', 'none'] as const)
    : (['masactrl', 'masactrl-mask', 'pnp', 'none'] as const);
  const items = scenes(o, 'feature', (seed) => {
    const scene = sampleScene(seed, { objects: 1 });
    const obj = scene.objects[0]!;
    const spec = (cell: Cell): SceneSpec => ({
      objects: [{ color: obj.color, shape: obj.shape, cell }],
      relations: [],
    });
    const source = captionOfSpec(spec(obj.cell)).text;
    const target = captionOfSpec(spec(otherCell(obj.cell, seed))).text;
    return { seed, source, target, words: [obj.color, obj.shape] };
  });
  const startLayer = masaCtrlStartLayer(sd);
  // MasaCtrl from the reference's start step; a run too short for it (a quick check) starts at its last step
  const startStep = Math.min(MASACTRL_START_STEP, o.steps - 1);
  const pnpLayers = isDiT(sd) ? undefined : defaultPnPLayers(sd);
  const mask = {
    startStep,
    startLayer,
    maskResolution: o.maskResolution ?? maskResolutionOf(sd),
    thres: o.maskThreshold,
  };
  // rows: the source, then one target per method (the last, 'none', plain regeneration)
  const jobs = items.map(
    (it): Job => ({
      seed: it.seed,
      prompts: [it.source, ...methods.map(() => it.target)],
      groups: [
        { prompts: [0, 1], controllers: [new MutualSelfAttention({ startStep, startLayer })] },
        {
          prompts: [0, 2],
          controllers: [maskAutoOn(sd, [it.source, it.target], { ...mask, words: it.words })],
        },
        ...(pnpLayers ? [{ prompts: [0, 3], controllers: [new PlugAndPlay(pnpLayers)] }] : []),
      ],
    }),
  );
  const images = runJobs(sd, jobs, o, (d) => o.progress('feature', d, jobs.length));
  const rows = items.slice(0, images.length).map((it, k) => {
    const [src, ...targets] = images[k]!;
    const srcObj = evaluate(src!, it.source).objects[0];
    const srcMask = maskOf(srcObj, src!);
    const [w, h] = sizeOf(src!);
    const srcColour = srcMask ? colourStats(src!, srcMask) : null;
    const perMethod: Record<
      string,
      { right: boolean; position: boolean; colourError: number | null; backgroundError: number | null }
    > = {};
    methods.forEach((m, i) => {
      const img = targets[i]!;
      const obj = evaluate(img, it.target).objects[0];
      const mask = maskOf(obj, img);
      const c = mask ? colourStats(img, mask) : null;
      const outside = outsideOf([srcMask, mask], w, h);
      const bgSrc = colourStats(src!, outside);
      const bgTgt = colourStats(img, outside);
      perMethod[m] = {
        right: rightObject(obj) && obj!.position === true,
        position: obj?.position === true,
        colourError: c && srcColour ? dist(c.rgb, srcColour.rgb) : null,
        backgroundError: bgSrc && bgTgt ? meanAbsError(src!, img, outside) : null,
      };
    });
    return { seed: it.seed, source: it.source, target: it.target, valid: rightObject(srcObj), perMethod };
  });
  const valid = rows.filter((r) => r.valid);
  const summary: FeatureResult['methods'] = {};
  for (const m of methods) {
    const xs = valid.map((r) => r.perMethod[m]!);
    summary[m] = {
      objectRight: rate(xs.map((x) => x.right)),
      position: rate(xs.map((x) => x.position)),
      meanColourError: mean(xs.map((x) => x.colourError).filter((v): v is number => v !== null)),
      meanBackgroundError: mean(xs.map((x) => x.backgroundError).filter((v): v is number => v !== null)),
    };
  }
  return { seeds: rows.length, scenes: valid.length, methods: summary, rows };
}
