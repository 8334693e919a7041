// Plug-and-Play: Tumanyan et al. 2023, "Plug-and-Play Diffusion Features for Text-Driven Image-to-Image Translation".
//
// The target is generated beside the source (prompt 0 of the batch roles) and takes over the source's
// spatial features: the self-attention queries and keys of the decoder's attention blocks during the first
// `pnpAttnT` of the steps, and the residual branch of a decoder ResNet block during the first `pnpFT`
// (reference: MichalGeyer/pnp-diffusers, `register_attention_control_efficient` and
// `register_conv_control_efficient`; injection while step < ⌊numSteps · t⌋, as `timesteps[:int(n · t)]`).
// The values V stay the target's own. As MasaCtrl, unconditional rows take the unconditional source row and
// conditional rows the conditional one; with the reference's empty source prompt both are the same row.
// For a real image, pin the source rows to its inversion trajectory (`followTrajectory` in
// pipelines/inversion.ts), as the reference feeds the stored inverted latents at every step.

import type { AttentionCall, ResnetCall } from '../../attention/call.js';
import type { Controller, Features, StepState } from '../../attention/hooks.js';
import { indexSelect, type Tensor } from '../../tensor/index.js';
import { sourceRowOf } from './source-rows.js';

/** Stable Diffusion 1.x/2.x: decoder attention blocks 4–11, first transformer block, self-attention. */
export const PNP_ATTENTION_LAYERS: readonly string[] = [
  ...[1, 2].map((j) => `up_blocks.1.attentions.${j}.transformer_blocks.0.attn1`),
  ...[2, 3].flatMap((i) => [0, 1, 2].map((j) => `up_blocks.${i}.attentions.${j}.transformer_blocks.0.attn1`)),
];

/** Stable Diffusion 1.x/2.x: the decoder's fourth layer, the second ResNet block of up_blocks.1. */
export const PNP_CONV_LAYERS: readonly string[] = ['up_blocks.1.resnets.1'];

/**
 * Options of Plug-and-Play (Tumanyan et al. 2023): the layers and steps whose features and self-attention are
 * injected from the source.
 */
export interface PlugAndPlayOptions {
  /** Fraction of the steps (from the first) with Q/K injection (reference `pnp_attn_t`, 0.5). */
  pnpAttnT?: number;
  /** Fraction of the steps with ResNet feature injection (reference `pnp_f_t`, 0.8). */
  pnpFT?: number;
  /** Self-attention layers (module paths) whose Q and K are injected; default PNP_ATTENTION_LAYERS. */
  attnLayers?: readonly string[];
  /** ResNet blocks (module paths) whose residual branch is injected; default PNP_CONV_LAYERS. */
  convLayers?: readonly string[];
}

export class PlugAndPlay implements Controller {
  readonly name = 'PlugAndPlay';
  readonly pnpAttnT: number;
  readonly pnpFT: number;
  readonly attnLayers: ReadonlySet<string>;
  readonly convLayers: ReadonlySet<string>;
  /** Layers seen in the first step, to refuse paths the model does not have. */
  readonly #seenAttn = new Set<string>();
  readonly #seenConv = new Set<string>();

  constructor(opts: PlugAndPlayOptions = {}) {
    this.pnpAttnT = opts.pnpAttnT ?? 0.5;
    this.pnpFT = opts.pnpFT ?? 0.8;
    for (const [k, v] of [
      ['pnpAttnT', this.pnpAttnT],
      ['pnpFT', this.pnpFT],
    ] as const) {
      if (!(v >= 0 && v <= 1)) throw new Error(`PlugAndPlay: ${k} must be a fraction in [0, 1], got ${v}`);
    }
    this.attnLayers = new Set(opts.attnLayers ?? PNP_ATTENTION_LAYERS);
    this.convLayers = new Set(opts.convLayers ?? PNP_CONV_LAYERS);
    if (this.attnLayers.size === 0 && this.convLayers.size === 0)
      throw new Error(
        'PlugAndPlay: no attention layer and no ResNet layer to inject; give attnLayers or convLayers',
      );
  }

  appliesTo(call: AttentionCall): boolean {
    if (call.kind === 'self') this.#seenAttn.add(call.path);
    return (
      call.kind === 'self' &&
      this.attnLayers.has(call.path) &&
      call.step < Math.floor(call.numSteps * this.pnpAttnT)
    );
  }

  /** Q and K of every row ← those of the source row with the same guidance branch; V unchanged. */
  features(call: AttentionCall, f: Features): Features {
    const rows = sourceRowOf(call.batch, this.name);
    return { q: indexSelect(f.q, 0, rows), k: indexSelect(f.k, 0, rows), v: f.v };
  }

  /** The residual branch (B, C, h, w) of every row ← the source row's. */
  resnet(call: ResnetCall, h: Tensor): Tensor {
    this.#seenConv.add(call.path);
    if (!this.convLayers.has(call.path) || call.step >= Math.floor(call.numSteps * this.pnpFT)) return h;
    return indexSelect(h, 0, sourceRowOf(call.batch, this.name));
  }

  afterStep(state: StepState): undefined {
    if (state.step !== 0) return undefined;
    const missing = (want: ReadonlySet<string>, seen: Set<string>, what: string) => {
      const absent = [...want].filter((p) => !seen.has(p));
      if (absent.length === 0) return;
      throw new Error(
        `PlugAndPlay: this model has no ${what} ${absent.join(', ')}; its ${what}s are ${[...seen].join(', ')} ` +
          `(pass attnLayers / convLayers for models other than Stable Diffusion 1.x/2.x)`,
      );
    };
    missing(this.attnLayers, this.#seenAttn, 'self-attention layer');
    missing(this.convLayers, this.#seenConv, 'ResNet block');
    return undefined;
  }
}
