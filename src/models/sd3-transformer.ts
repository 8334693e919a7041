// SD3's MM-DiT (Esser et al. 2024, "Scaling Rectified Flow Transformers for High-Resolution Image Synthesis"),
// diffusers 0.30.0's `SD3Transformer2DModel` with its config and weight names: the latent is cut into p × p
// patches (tokens with cropped 2-D sin-cos positions), the text states are projected to the same width, both
// streams run through joint transformer blocks modulated by c = timestep + pooled text, and a final adaLN and
// linear map the image tokens back to patches of the velocity (flow matching), unpatchified to (B, C, H, W).
//
// Every joint attention call has kind 'joint' and place 'mid' (a DiT works at one resolution throughout, as
// the UNet's mid block does); its `joint` field gives the image and text token ranges (call.ts).

import { assignAttentionLayers } from '../attention/attention.js';
import type { HookOptions } from '../attention/hooks.js';
import { Linear, Module, ModuleList } from '../nn/index.js';
import { loadStateDict } from '../nn/module.js';
import { formatShape, Tensor } from '../tensor/index.js';
import { ConfigReader, type JsonConfig, readConfig } from './config.js';
import { type FromPretrainedOptions, pretrainedFolder, readPretrainedWeights } from './pretrained.js';
import {
  AdaLayerNormContinuous,
  CombinedTimestepTextProjEmbeddings,
  JointAttention,
  JointTransformerBlock,
  PatchEmbed,
} from './sd3-blocks.js';

/** An `SD3Transformer2DModel` config.json read into typed fields (diffusers' keys in camel case). */
export interface SD3TransformerConfig {
  sampleSize: number;
  patchSize: number;
  inChannels: number;
  numLayers: number;
  attentionHeadDim: number;
  numAttentionHeads: number;
  /** Width of the text encoder states (SD3: 4096, the T5 width the CLIP states are padded to). */
  jointAttentionDim: number;
  captionProjectionDim: number;
  pooledProjectionDim: number;
  outChannels: number;
  posEmbedMaxSize: number;
}

/** Most floats the position table (pos_embed_max_size² × width) may have: 2^27 (512 MiB); SD3 medium's is 57 M. */
const MAX_POSITION_TABLE = 2 ** 27;

/** Reads a diffusers `SD3Transformer2DModel` config; errors name the key and `where`. */
export function parseSD3TransformerConfig(
  json: JsonConfig,
  where = 'transformer/config.json',
): SD3TransformerConfig {
  const r = new ConfigReader(json, where);
  r.require('_class_name', ['SD3Transformer2DModel', undefined]);
  // SD3.5's additions (diffusers ≥ 0.31) are not built yet
  r.require('dual_attention_layers', [undefined, null, []]);
  r.require('qk_norm', [undefined, null]);
  const c: SD3TransformerConfig = {
    sampleSize: r.size('sample_size', 'latentSampleSize', 128),
    patchSize: r.size('patch_size', 'kernel', 2),
    inChannels: r.size('in_channels', 'channels', 16),
    numLayers: r.size('num_layers', 'layers', 18),
    attentionHeadDim: r.size('attention_head_dim', 'channels', 64),
    numAttentionHeads: r.size('num_attention_heads', 'heads', 18),
    jointAttentionDim: r.size('joint_attention_dim', 'channels', 4096),
    captionProjectionDim: r.size('caption_projection_dim', 'channels', 1152),
    pooledProjectionDim: r.size('pooled_projection_dim', 'channels', 2048),
    outChannels: r.size('out_channels', 'channels', 16),
    posEmbedMaxSize: r.size('pos_embed_max_size', 'latentSampleSize', 96),
  };
  const inner = c.numAttentionHeads * c.attentionHeadDim;
  if (inner > 16_384) {
    throw r.invalid(
      'num_attention_heads',
      c.numAttentionHeads,
      `× attention_head_dim = ${inner} exceeds 16384 channels`,
    );
  }
  if (c.captionProjectionDim !== inner) {
    throw r.invalid(
      'caption_projection_dim',
      c.captionProjectionDim,
      `must equal num_attention_heads × attention_head_dim (${inner}): the text stream joins the image's width`,
    );
  }
  if (inner % 4 !== 0)
    throw r.invalid(
      'attention_head_dim',
      c.attentionHeadDim,
      'gives a width that is not a multiple of 4 (2-D sin-cos positions)',
    );
  if (c.posEmbedMaxSize ** 2 * inner > MAX_POSITION_TABLE) {
    throw r.invalid(
      'pos_embed_max_size',
      c.posEmbedMaxSize,
      `gives a ${c.posEmbedMaxSize}² × ${inner} position table, over 2^27 floats`,
    );
  }
  return c;
}

/** The velocity v(x_σ, σ) of SD3's MM-DiT: `SD3Transformer2DModel` (Esser et al. 2024) with diffusers' names. */
export class SD3Transformer2DModel extends Module {
  pos_embed: PatchEmbed;
  time_text_embed: CombinedTimestepTextProjEmbeddings;
  context_embedder: Linear;
  transformer_blocks: ModuleList<JointTransformerBlock>;
  norm_out: AdaLayerNormContinuous;
  proj_out: Linear;

  constructor(readonly config: SD3TransformerConfig) {
    super();
    const c = config;
    const dim = c.numAttentionHeads * c.attentionHeadDim;
    this.pos_embed = new PatchEmbed(
      c.patchSize,
      c.inChannels,
      dim,
      c.posEmbedMaxSize,
      Math.floor(c.sampleSize / c.patchSize),
    );
    this.time_text_embed = new CombinedTimestepTextProjEmbeddings(dim, c.pooledProjectionDim);
    this.context_embedder = new Linear(c.jointAttentionDim, c.captionProjectionDim);
    this.transformer_blocks = new ModuleList(
      Array.from(
        { length: c.numLayers },
        (_, i) =>
          new JointTransformerBlock(dim, c.numAttentionHeads, c.attentionHeadDim, i === c.numLayers - 1),
      ),
    );
    this.norm_out = new AdaLayerNormContinuous(dim, dim);
    this.proj_out = new Linear(dim, c.patchSize * c.patchSize * c.outChannels);
    // block hooks' records: the blocks' paths, all at place 'mid' (one resolution throughout)
    this.transformer_blocks.items.forEach((b, i) => {
      b.info = { path: `transformer_blocks.${i}`, place: 'mid', index: i };
    });
    assignAttentionLayers(
      this,
      () => 'mid',
      (m): m is JointAttention => m instanceof JointAttention,
    );
  }

  /** A model with zero weights from a parsed config.json. */
  static fromConfig(json: JsonConfig, where?: string): SD3Transformer2DModel {
    return new SD3Transformer2DModel(parseSD3TransformerConfig(json, where));
  }

  /** Loads a diffusers folder's transformer (`{ subfolder: 'transformer' }` for a pipeline folder), strictly. */
  static fromPretrained(dir: string, opts: FromPretrainedOptions = {}): SD3Transformer2DModel {
    const folder = pretrainedFolder(dir, opts);
    const model = SD3Transformer2DModel.fromConfig(readConfig(folder), `${folder}/config.json`);
    return model.load(readPretrainedWeights(folder, 'diffusion_pytorch_model', opts.variant));
  }

  /** Sets the weights from a state dict, strictly (every key used, every shape checked). */
  load(tensors: ReadonlyMap<string, Tensor>): this {
    loadStateDict(this, tensors, { what: 'sd3 transformer' });
    return this;
  }

  /**
   * The predicted velocity (B, outChannels, H, W). sample (B, inChannels, H, W) with H, W multiples of the patch
   * size; timestep one number or one per row (t = 1000 σ); context (B, M, joint_attention_dim) the text states;
   * pooled (B, pooled_projection_dim) the pooled text. `ctx` reaches every joint attention call.
   */
  forward(
    sample: Tensor,
    timestep: number | readonly number[],
    context: Tensor,
    pooled: Tensor,
    { ctx }: HookOptions = {},
  ): Tensor {
    const c = this.config;
    const p = c.patchSize;
    if (sample.rank !== 4 || sample.shape[1] !== c.inChannels) {
      throw new Error(
        `sd3 transformer: sample must be (B, ${c.inChannels}, H, W), got ${formatShape(sample.shape)}`,
      );
    }
    const [b, , H, W] = sample.shape as [number, number, number, number];
    if (H % p !== 0 || W % p !== 0) {
      throw new Error(`sd3 transformer: latent ${H}×${W} is not a multiple of the patch size ${p}`);
    }
    if (context.rank !== 3 || context.shape[0] !== b || context.shape[2] !== c.jointAttentionDim) {
      throw new Error(
        `sd3 transformer: context must be (${b}, tokens, ${c.jointAttentionDim}), got ${formatShape(context.shape)}`,
      );
    }
    if (pooled.rank !== 2 || pooled.shape[0] !== b || pooled.shape[1] !== c.pooledProjectionDim) {
      throw new Error(
        `sd3 transformer: pooled must be (${b}, ${c.pooledProjectionDim}), got ${formatShape(pooled.shape)}`,
      );
    }
    const ts = typeof timestep === 'number' ? new Array<number>(b).fill(timestep) : [...timestep];
    if (ts.length !== b) throw new Error(`sd3 transformer: ${ts.length} timesteps for a batch of ${b}`);
    const [h, w] = [H / p, W / p];

    // embeddings: patches with positions, the conditioning vector c, the text stream
    let x = this.pos_embed.forward(sample); // (B, h·w, D)
    const cond = this.time_text_embed.forward(Tensor.from(ts), pooled); // (B, D)
    let text: Tensor | undefined = this.context_embedder.forward(context); // (B, M, D)

    // joint transformer blocks
    for (const block of this.transformer_blocks) {
      if (!text) break; // only the last block drops the text stream
      ({ x, text } = block.forward(x, text, cond, [h, w], { ctx }));
    }

    // final adaLN, then tokens → patches → (B, C, H, W)
    x = this.proj_out.forward(this.norm_out.forward(x, cond)); // (B, h·w, p·p·C)
    const C = c.outChannels;
    return x
      .reshape([b, h, w, p, p, C])
      .permute([0, 5, 1, 3, 2, 4]) // (B, C, h, p, w, p)
      .reshape([b, C, H, W]);
  }
}
