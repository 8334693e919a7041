// One job on a loaded model: the pipelines `attnkit generate`, `maps`, `segment` and `edit` run, with a decoded
// preview every few steps. It returns the job's files as PNG / JSON bytes; writing them is the server's affair.

import { Attention, type Controller } from '../attention/index.js';
import { encodeGrayPng, encodePng } from '../io/png.js';
import { sideBySide } from '../io/render.js';
import { attentionMask } from '../methods/application/attention-mask.js';
import { BlockCaching } from '../methods/application/block-caching.js';
import { TokenMerging } from '../methods/application/token-merging.js';
import {
  agentAttention,
  builtInAttentionFunctions,
  useAttention,
  windowAttention,
} from '../methods/function/index.js';
import { editPrompt } from '../pipelines/edit.js';
import { editFeatures } from '../pipelines/feature-edit.js';
import { defaultHeatResolutions, generateWithHeatMaps, heatStepRange } from '../pipelines/heatmaps.js';
import type { StableDiffusion, StepEvent } from '../pipelines/stable-diffusion.js';
import type { Tensor } from '../tensor/index.js';
import { DAAM_PLACES, defaultSteps, type EfficiencyOptions, type JobSpec, type MapsSpec } from './spec.js';

/** A job's outputs: file name → bytes, and facts about the run (seconds, the words, the mask's area…). */
export interface JobOutput {
  files: Record<string, Uint8Array>;
  meta: Record<string, unknown>;
}

/** Progress after a denoising step; `preview` is a PNG of the decoded latents every few steps. */
export interface JobProgress {
  step: number;
  numSteps: number;
  preview?: Uint8Array;
}

/** The controllers of a job's efficient-attention options (as `attnkit generate --attention/--tome/--block-cache`). */
export function efficiencyControllers(o: EfficiencyOptions): Controller[] {
  const out: Controller[] = [];
  if (o.attention === 'agent') out.push(useAttention(agentAttention()));
  else if (o.attention === 'window') out.push(useAttention(windowAttention()));
  else if (o.attention) out.push(useAttention(builtInAttentionFunctions().get(o.attention)));
  if (o.tome !== undefined && o.tome > 0) out.push(new TokenMerging({ ratio: o.tome }));
  const n = o.blockCache ?? 1;
  if (n > 1) out.push(new BlockCaching({ plan: (c) => c.step % n !== 0 }));
  return out;
}

/** Steps between two previews: about five previews a run. */
export function previewEvery(numSteps: number): number {
  return Math.max(1, Math.round(numSteps / 5));
}

/** Runs `spec` on `sd`; `onProgress` is called after every step (with a preview every few). */
export function runJob(sd: StableDiffusion, spec: JobSpec, onProgress: (p: JobProgress) => void): JobOutput {
  const steps = spec.steps ?? defaultSteps(spec.kind);
  const sampling = {
    seed: spec.seed ?? 0,
    steps,
    guidanceScale: spec.guidance ?? 7.5,
    controllers: efficiencyControllers(spec),
    onStep: (e: StepEvent) => {
      const last = e.step + 1 === e.numSteps;
      const preview = !last && (e.step + 1) % previewEvery(e.numSteps) === 0;
      onProgress({
        step: e.step + 1,
        numSteps: e.numSteps,
        preview: preview ? previewPng(sd, e.latents) : undefined,
      });
    },
  };
  const t0 = performance.now();
  const seconds = () => (performance.now() - t0) / 1000;
  switch (spec.kind) {
    case 'generate': {
      const { images } = sd.generate({
        ...sampling,
        prompt: spec.prompt,
        negativePrompt: spec.negative,
        width: spec.width,
        height: spec.height,
      });
      const s = seconds();
      return { files: { 'image.png': encodePng(images) }, meta: { seconds: s } };
    }
    case 'maps': {
      const places = spec.places ?? DAAM_PLACES;
      checkMapChoice(sd, spec);
      const run = generateWithHeatMaps(sd, {
        ...sampling,
        prompt: spec.prompt,
        stepRange: spec.mapSteps,
        resolutions: spec.resolutions,
        midBlock: places.includes('mid'),
        layers: (m) => places.includes(m.place) && (!spec.layers || spec.layers.includes(m.path)),
        heads: spec.head === undefined ? undefined : [spec.head],
      });
      const s = seconds();
      const [h, w] = run.heatMap.heatMaps.shape.slice(1) as [number, number];
      const words = run.heatMap.wordHeatMaps().map((m) => ({ word: m.word, map: [...m.map.toArray()] }));
      // every recorded layer (the choices a client has), in forward order
      const layers = run.store.maps().map((m) => ({
        path: m.path,
        place: m.place,
        size: m.size,
        heads: m.map.shape[1],
      }));
      const maps = { size: [h, w], steps: run.store.numSteps, places, head: spec.head, layers, words };
      return {
        files: {
          'image.png': encodePng(run.image),
          'maps.json': new TextEncoder().encode(JSON.stringify(maps)),
        },
        meta: { seconds: s, words: words.map((x) => x.word) },
      };
    }
    case 'segment': {
      const run = generateWithHeatMaps(sd, {
        ...sampling,
        prompt: spec.prompt,
        stepRange: heatStepRange(steps, undefined, 'segment'),
        resolutions: defaultHeatResolutions(sd),
      });
      const [, , h, w] = run.image.shape as [number, number, number, number];
      const mask = attentionMask(run.heatMap.wordHeatMap(spec.word), {
        size: [h, w],
        threshold: spec.threshold ?? 0.4,
      });
      const area = mask.toArray().reduce((a, b) => a + b, 0) / (h * w);
      return {
        files: { 'image.png': encodePng(run.image), 'mask.png': encodeGrayPng(mask) },
        meta: { seconds: seconds(), word: spec.word, area },
      };
    }
    case 'edit': {
      const method = spec.method ?? 'p2p';
      const pair =
        method === 'p2p'
          ? editPrompt(sd, {
              ...sampling,
              source: spec.source,
              target: spec.target,
              method: spec.p2p ?? 'auto',
              reweight: spec.reweight,
              blend: spec.blend,
            })
          : editFeatures(sd, {
              ...sampling,
              method,
              source: spec.source,
              target: spec.target ?? spec.source,
            });
      return {
        files: {
          'source.png': encodePng(pair.source),
          'target.png': encodePng(pair.target),
          'edit.png': encodePng(sideBySide([pair.source, pair.target])),
        },
        meta: { seconds: seconds(), method },
      };
    }
  }
}

/**
 * A maps job's layers and head against the model, before it runs: each named layer is one of its cross-attention
 * layers, and the head is one every chosen layer has. Throws naming the field.
 */
function checkMapChoice(sd: StableDiffusion, spec: MapsSpec): void {
  const cross = [...sd.unet.namedModules()].flatMap(([path, m]) =>
    m instanceof Attention && m.info.kind === 'cross' ? [{ path, place: m.info.place, heads: m.heads }] : [],
  );
  const names = cross.map((l) => l.path);
  for (const path of spec.layers ?? [])
    if (!names.includes(path))
      throw new Error(
        `body/layers: '${path}' is not a cross-attention layer of this model; pick from: ${names.slice(0, 8).join(', ')}` +
          (names.length > 8 ? ` … (${names.length} in all; a maps job's maps.json lists them)` : ''),
      );
  const places: readonly string[] = spec.places ?? DAAM_PLACES;
  const chosen = cross.filter(
    (l) => places.includes(l.place) && (!spec.layers || spec.layers.includes(l.path)),
  );
  const heads = Math.min(...chosen.map((l) => l.heads));
  if (spec.head !== undefined && chosen.length > 0 && spec.head >= heads)
    throw new Error(
      `body/head ${spec.head}: the chosen layers have ${heads} heads; pick 0–${heads - 1}, or leave head out for their mean`,
    );
}

/** The latents (B, C, h, w) decoded, the batch side by side, as a PNG. */
function previewPng(sd: StableDiffusion, latents: Tensor): Uint8Array {
  const images = sd.decodeLatents(latents);
  const n = images.shape[0] as number;
  if (n === 1) return encodePng(images);
  return encodePng(sideBySide(Array.from({ length: n }, (_, i) => images.slice(0, i, i + 1))));
}
