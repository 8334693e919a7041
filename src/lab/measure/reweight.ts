// Reweight: Prompt-to-Prompt attention re-weighting of one word of a 1-object scene over several weights (one
// target prompt per weight, all the source caption): does the object's area or saturation grow with the weight?

import { AttentionEdit, type AttentionEditOptions, Tensor } from '../../index.js';
import { type Job, runJobs } from '../jobs.js';
import { colourStats, maskOf, mean, rate, rightObject } from '../metrics.js';
import { captionOf, evaluate, sampleScene } from '../shapes/index.js';
import { editOptions, type MeasureSettings, scenes } from './common.js';
import type { MeasureModel } from './model.js';

/**
 * The reweight measurement's result: per weight, the edited object's area and saturation against the
 * source's.
 */
export interface ReweightResult {
  seeds: number;
  word: 'color' | 'shape';
  weights: number[];
  /** Over scenes whose source object is right. */
  scenes: number;
  monotoneArea: number | null;
  monotoneSaturation: number | null;
  monotoneEither: number | null;
  meanArea: (number | null)[];
  meanSaturation: (number | null)[];
  rows: {
    seed: number;
    prompt: string;
    word: string;
    area: (number | null)[];
    saturation: (number | null)[];
  }[];
}

/**
 * A weight sweep in one batch: target `k`'s cross-attention maps are the source's times its own equalizer (the
 * reference's single-target `get_equalizer`, one per row). The library's AttentionReweight gives every target
 * the same word → weight equalizer, so it cannot sweep weights over copies of one prompt.
 */
export class EqualizerSweep extends AttentionEdit {
  readonly name = 'EqualizerSweep';
  /** Per target: (Tk,) weight of each token position. */
  readonly equalizers: Tensor[];
  constructor(opts: AttentionEditOptions, equalizers: Float32Array[]) {
    super(opts);
    this.equalizers = equalizers.map((e) => new Tensor(e, [e.length]));
  }
  replaceCrossAttention(base: Tensor, _target: Tensor, k: number): Tensor {
    return base.mul(this.equalizers[k]!);
  }
}

/** Equalizer: weight `w` on the tokens of word `index` of the prompt, 1 elsewhere. */
function wordEqualizer(sd: MeasureModel, prompt: string, index: number, w: number): Float32Array {
  const eq = new Float32Array(sd.tokenizer.modelMaxLength).fill(1);
  for (const t of sd.tokenizer.tokenIndices(prompt, index)) eq[t] = w;
  return eq;
}

const increasing = (xs: readonly (number | null)[]) =>
  xs.every((v) => v !== null) && xs.every((v, i) => i === 0 || v! > xs[i - 1]!);

/**
 * The reweight measurement: Prompt-to-Prompt attention re-weighting of one word of 1-object scenes over
 * several weights.
 */
export function measureReweight(sd: MeasureModel, o: MeasureSettings): ReweightResult {
  const weights = [...o.weights];
  const items = scenes(o, 'reweight', (seed) => {
    const scene = sampleScene(seed, { objects: 1 });
    return { seed, scene, caption: captionOf(scene) };
  });
  const jobs = items.map((it): Job => {
    const text = it.caption.text;
    const word = it.caption.objects[0]![o.reweightWord === 'shape' ? 'shape' : 'color'];
    const targets = weights.filter((w) => w !== 1);
    const eqs = targets.map((w) => wordEqualizer(sd, text, word.index, w));
    const prompts = [text, ...targets.map(() => text)];
    return {
      seed: it.seed,
      prompts,
      groups: [
        {
          prompts: prompts.map((_, i) => i),
          controllers: [new EqualizerSweep(editOptions(sd, prompts), eqs)],
        },
      ],
    };
  });
  const images = runJobs(sd, jobs, o, (d) => o.progress('reweight', d, jobs.length));
  const rows = items.slice(0, images.length).map((it, k) => {
    const [src, ...edited] = images[k]!;
    let t = 0;
    const byWeight = weights.map((w) => (w === 1 ? src! : edited[t++]!));
    const stats = byWeight.map((img) => {
      const obj = evaluate(img, it.caption.text).objects[0];
      const mask = maskOf(obj, img);
      const c = mask ? colourStats(img, mask) : null;
      return {
        area: obj?.detected ? obj.detected.area : null,
        saturation: c?.saturation ?? null,
        right: rightObject(obj),
      };
    });
    return {
      seed: it.seed,
      prompt: it.caption.text,
      word: it.caption.objects[0]![o.reweightWord === 'shape' ? 'shape' : 'color'].word,
      valid: stats[weights.indexOf(1)]?.right ?? stats[0]!.right,
      area: stats.map((s) => s.area),
      saturation: stats.map((s) => s.saturation),
    };
  });
  const valid = rows.filter((r) => r.valid);
  const column = (key: 'area' | 'saturation', i: number) =>
    mean(valid.map((r) => r[key][i]).filter((v): v is number => v !== null));
  return {
    seeds: rows.length,
    word: o.reweightWord,
    weights,
    scenes: valid.length,
    monotoneArea: rate(valid.map((r) => increasing(r.area))),
    monotoneSaturation: rate(valid.map((r) => increasing(r.saturation))),
    monotoneEither: rate(valid.map((r) => increasing(r.area) || increasing(r.saturation))),
    meanArea: weights.map((_, i) => column('area', i)),
    meanSaturation: weights.map((_, i) => column('saturation', i)),
    rows: rows.map(({ valid: _, ...r }) => r),
  };
}
