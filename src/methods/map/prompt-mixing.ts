// Object-Shape Variations (Patashnik et al. 2023, "Localizing Object-level Shape Variations with Text-to-Image
// Diffusion Models"; reference orpatashnik/local-prompt-mixing): prompt-mixing and attention-based shape
// localisation.
//
// Prompt-mixing: a variation row is written with a proxy word in place of the object word. In its
// cross-attention the keys always come from the original prompt (so the maps are the original's), the values
// from the proxy prompt during the mixing interval of steps [T3, T2) and from the original outside it — the
// reference's `get_context_for_v` (steps 7 … 17 of 50). The layout is fixed by the early steps, the object's
// shape by the interval, its details by the late steps.
//
// Localisation: the source's self-attention maps are injected into the variation rows outside the object's
// region (query and key both outside it), during the first steps (reference: 40 of 50, on maps of at most 32²
// queries): a MapComposition with the source row as its one source. The region is the object word's aggregated
// cross-attention in the source's generation, min–max normalised and thresholded (reference: 0.05).

import type { AttentionCall } from '../../attention/call.js';
import type { Controller, Features } from '../../attention/hooks.js';
import type { TokenLookup } from '../../attention/tokens.js';
import { concat, Tensor } from '../../tensor/index.js';
import { complementRegion, MapComposition, rowSource, type TokenRegion } from './map-composition.js';
import { boundsOf, checkStepBounds, type StepBounds } from './token-alignment.js';

/** The reference's mixing interval: steps 7 … 17 of 50 (`start_prompt_range`, `end_prompt_range`). */
export const PROMPT_MIX_STEPS: StepBounds = [7 / 50, 17 / 50];
/** The reference's self-attention localisation: the first 40 of 50 steps (`end_preserved_obj_self_attn_masking`). */
export const SHAPE_LOCALIZATION_STEPS: StepBounds = 40 / 50;
/** The reference's threshold on the object's normalised cross-attention (`obj_pixels_injection_threshold`). */
export const OBJECT_MASK_THRESHOLD = 0.05;

/** Options of `PromptMixing`: which rows are the source and its proxies, and the mixing interval. */
export interface PromptMixingOptions {
  /** Prompt index (batch role) of the source: its text is the original prompt (default 0). */
  source?: number;
  /** Prompt indices of the variation rows, each written with its proxy word. */
  variations: readonly number[];
  /** Steps [⌊n·start⌋, ⌊n·end⌋) whose cross-attention values come from the proxy (default 7 … 17 of 50). */
  mixSteps?: StepBounds;
  /**
   * Text positions whose values come from the proxy (e.g. the object word's tokens); the others stay the
   * source's. Default: every position (the reference's `get_context_for_v`), so with a causal text encoder every
   * word after the object word follows the proxy prompt too.
   */
  tokens?: readonly number[];
}

/**
 * Prompt-mixing (Object-Shape Variations, Patashnik et al. 2023): a variation row's cross-attention keys are the
 * source prompt's, its values the proxy prompt's inside the mixing interval and the source's outside it.
 */
export class PromptMixing implements Controller {
  readonly name: string = 'PromptMixing';
  readonly source: number;
  readonly variations: readonly number[];
  readonly mixSteps: StepBounds;
  readonly valueTokens?: readonly number[];

  constructor(opts: PromptMixingOptions) {
    checkStepBounds(opts.mixSteps ?? PROMPT_MIX_STEPS, 'PromptMixing: mixSteps');
    if (opts.variations.length === 0) throw new Error('PromptMixing: give at least one variation row');
    this.source = opts.source ?? 0;
    if (opts.variations.includes(this.source))
      throw new Error(`PromptMixing: prompt ${this.source} is the source; it cannot also be a variation`);
    this.variations = opts.variations;
    this.mixSteps = opts.mixSteps ?? PROMPT_MIX_STEPS;
    if (opts.tokens && (opts.tokens.length === 0 || opts.tokens.some((t) => !Number.isInteger(t) || t < 0)))
      throw new Error('PromptMixing: tokens must be text positions (integers ≥ 0), at least one');
    this.valueTokens = opts.tokens;
  }

  appliesTo(call: AttentionCall): boolean {
    return call.kind === 'cross' && (call.place === 'down' || call.place === 'mid' || call.place === 'up');
  }

  /** Whether this step uses the proxies' values. */
  mixing(call: { step: number; numSteps: number }): boolean {
    const [s, e] = boundsOf(this.mixSteps);
    return call.step >= Math.floor(call.numSteps * s) && call.step < Math.floor(call.numSteps * e);
  }

  features(call: AttentionCall, f: Features): Features {
    const { guidance, prompt } = call.batch;
    const n = f.k.shape[0] as number;
    const ks = f.k.split(n, 0);
    const vs = f.v.split(n, 0);
    const mix = this.mixing(call);
    const pick = mix && this.valueTokens ? this.tokenMask(call, f.v) : undefined;
    let changed = false;
    guidance.forEach((g, r) => {
      if (!this.variations.includes(prompt[r]!)) return;
      const s = prompt.findIndex((p, i) => p === this.source && guidance[i] === g);
      if (s < 0) {
        throw new Error(
          `${this.name}: layer ${call.path} has no row of the source prompt ${this.source} in the ${g} branch; ` +
            'generate with [source, …variations] (shapeVariations does this)',
        );
      }
      ks[r] = ks[s]!;
      // x·1 + y·0 is x exactly: the picked positions are the proxy's values bit for bit
      if (!mix) vs[r] = vs[s]!;
      else if (pick) vs[r] = vs[r]!.mul(pick).add(vs[s]!.mul(pick.neg().add(1)));
      changed = true;
    });
    return changed ? { q: f.q, k: concat(ks, 0), v: concat(vs, 0) } : f;
  }

  /** A (1, 1, T, 1) mask over values (B, H, T, d), 1 at `tokens`: which text positions take the proxy's. */
  private tokenMask(call: AttentionCall, v: Tensor): Tensor {
    const t = v.shape[2] as number;
    const bad = this.valueTokens!.find((i) => i >= t);
    if (bad !== undefined)
      throw new Error(`${this.name}: token ${bad} is past the ${t} text states of layer ${call.path}`);
    const m = new Float32Array(t);
    for (const i of this.valueTokens!) m[i] = 1;
    return new Tensor(m, [1, 1, t, 1]);
  }
}

/**
 * Attention-based shape localisation (Object-Shape Variations): the source's self-attention maps in the variation
 * rows wherever query and key both lie outside the object's region, for `steps` (default the first 40 of 50) on
 * maps of at most `maxTokens` queries (default 32², the reference's).
 */
export function shapeLocalization(opts: {
  object: TokenRegion;
  variations: readonly number[];
  source?: number;
  steps?: StepBounds;
  maxTokens?: number;
}): MapComposition {
  const outside = complementRegion(opts.object);
  return new MapComposition({
    targets: opts.variations,
    parts: [{ source: rowSource(opts.source ?? 0), rows: outside, cols: outside }],
    steps: opts.steps ?? SHAPE_LOCALIZATION_STEPS,
    maxTokens: opts.maxTokens ?? 32 ** 2,
  });
}

/**
 * The proxy prompts of a shape sweep: `source` with its word `word` replaced by each proxy. Each must cover as
 * many tokens as the word, since the variation's keys are the source's (position for position).
 */
export function proxyPrompts(
  tokenizer: TokenLookup,
  source: string,
  word: string,
  proxies: readonly string[],
): string[] {
  const words = source.split(/\s+/).filter((w) => w.length > 0);
  const at = words.indexOf(word);
  if (at < 0) throw new Error(`shape variations: the word '${word}' is not a word of "${source}"`);
  const n = tokenizer.keptTokenIndices(source, at).length;
  return proxies.map((p) => {
    if (p.trim() === '' || /\s/.test(p.trim()))
      throw new Error(`shape variations: a proxy must be one word, got '${p}'`);
    const prompt = words.map((w, i) => (i === at ? p.trim() : w)).join(' ');
    const m = tokenizer.keptTokenIndices(prompt, at).length;
    if (m !== n) {
      throw new Error(
        `shape variations: proxy '${p}' is ${m} tokens but '${word}' is ${n}; the variation reads the source's ` +
          'keys position for position, so choose proxies of as many tokens',
      );
    }
    return prompt;
  });
}
