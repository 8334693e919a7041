// What every attention call tells its hooks: which layer, which step, how the batch is laid out.
// Methods select layers by these fields, never by counting calls (DESIGN.md §1).

/** Self-attention, cross-attention (to text), temporal (across frames), joint (MM-DiT). */
export type AttentionKind = 'self' | 'cross' | 'temporal' | 'joint';

/** Where in the model the layer sits: UNet down / mid / up path, VAE, or text encoder. */
export type Place = 'down' | 'mid' | 'up' | 'vae' | 'text';

/** Static facts about one attention layer, fixed when the model is built. */
export interface AttentionLayerInfo {
  /** Module path in diffusers naming, e.g. `up_blocks.1.attentions.0.transformer_blocks.0.attn2`. */
  path: string;
  kind: AttentionKind;
  place: Place;
  /** Ordinal among the model's layers of the same kind, in forward order (0-based). */
  index: number;
}

/** Which batch row is what. All arrays have one entry per batch row. */
export interface BatchRoles {
  /** Classifier-free guidance branch of each row. */
  guidance: readonly ('uncond' | 'cond')[];
  /** Which prompt each row belongs to (0 = source, 1 = first target, … in editing). */
  prompt: readonly number[];
  /** Video frame of each row, when the batch holds frames. */
  frame?: readonly number[];
}

/** Per-forward facts: the denoising step and the batch layout. */
export interface StepInfo {
  /** 0-based index of the denoising step. */
  step: number;
  /** Number of denoising steps in this run. */
  numSteps: number;
  /** The scheduler's timestep t at this step. */
  timestep: number;
  batch: BatchRoles;
}

/**
 * The record every hook receives. In a temporal layer (kind 'temporal', AnimateDiff's motion modules) the tokens
 * are the frames of a clip — queryTokens = keyTokens = the frame count — and the batch rows are the clips'
 * spatial positions, (B·h·w) of them, with `size` the (h, w) grid; `batch` still describes the UNet's B rows.
 */
export interface AttentionCall extends AttentionLayerInfo, StepInfo {
  /** Spatial size (h, w) of the queries, for image tokens (temporal layers: of the positions); undefined for text. */
  size?: readonly [number, number];
  heads: number;
  headDim: number;
  /** Number of query and key tokens (joint attention: of the joint sequence, image and text together). */
  queryTokens: number;
  keyTokens: number;
  /** Joint attention only: where each stream's tokens lie in the joint sequence (see `JointTokens`). */
  joint?: JointTokens;
  /**
   * 'joint' when this call is a view of a joint call's block (joint-view.ts): its image→text block seen as a
   * 'cross' call, its image→image block as a 'self' call.
   */
  view?: 'joint';
}

/**
 * Where the two streams of an MM-DiT joint attention call (kind 'joint', SD3) lie in its one sequence of
 * queries and keys, as [start, end) token ranges: the image tokens first, then the text tokens (diffusers'
 * order). In a (batch, heads, Tq, Tk) map the rows of `image` and columns of `text` are the image→text block,
 * read as cross-attention maps; the `image` × `image` block is the image's self-attention. `size` is the
 * image tokens' (h, w) grid.
 */
export interface JointTokens {
  image: readonly [number, number];
  text: readonly [number, number];
}

/**
 * The record a UNet block hook receives: a ResNet block (`Controller.resnet`) or a Transformer2DModel, the
 * down / mid / up blocks' `attentions.N` (`Controller.transformer`, `Controller.reuseTransformer`). It holds
 * the block's module path in diffusers naming (`up_blocks.1.resnets.1`, `mid_block.attentions.0`), its place
 * and ordinal among the model's blocks of its kind in forward order, the spatial size of its output, and the
 * step and batch layout of the forward pass.
 */
export interface BlockCall extends StepInfo {
  path: string;
  place: Place;
  index: number;
  size: readonly [number, number];
}

/** What a ResNet block's hook receives. */
export type ResnetCall = BlockCall;

/** What a Transformer2DModel's hooks receive. */
export type TransformerCall = BlockCall;

/** A batch where every row is its own conditional prompt (plain forward passes, tests). */
export function plainBatch(n: number): BatchRoles {
  return { guidance: new Array(n).fill('cond'), prompt: Array.from({ length: n }, (_, i) => i) };
}

/**
 * The batch of classifier-free guidance over `prompts` prompts: all unconditional rows first, then all
 * conditional rows (diffusers' layout), prompt index i in each half.
 */
export function guidedBatch(prompts: number): BatchRoles {
  const ids = Array.from({ length: prompts }, (_, i) => i);
  return {
    guidance: [...ids.map(() => 'uncond' as const), ...ids.map(() => 'cond' as const)],
    prompt: [...ids, ...ids],
  };
}
