// The attention layer: projections, then the five hook levels in the order they run (DESIGN.md §1).
// `attend` is the shared core; `Attention` is diffusers' module (to_q / to_k / to_v / to_out.0, optional
// group_norm and residual for the VAE); the CLIP text encoder calls `attend` with its own weight names.

import { Linear, Module, ModuleList } from '../nn/index.js';
import { GroupNorm } from '../nn/layers.js';
import { concat, formatShape, linear, recordsGrad, softmax, type Tensor } from '../tensor/index.js';
import type { AttentionCall, AttentionLayerInfo } from './call.js';
import {
  type AttentionFunction,
  attentionScores,
  flashAttention,
  mergeHeads,
  softmaxAttention,
  splitHeads,
} from './functions.js';
import type { AttentionContext, Controller, HookOptions, ProjectionWeights } from './hooks.js';
import { featureLevel, type JointViews, jointViews, mapLevel, viewsUse } from './joint-view.js';

/** Context for a forward pass with no controllers (plain inference). */
export const NO_CONTROL: AttentionContext = {
  controllers: [],
  step: 0,
  numSteps: 1,
  timestep: 0,
  batch: { guidance: [], prompt: [] },
};

/**
 * The arguments of one attention call (`attend`): the layer, the hooks' context, the query and context
 * sources, head count, projection weights and optional bias.
 */
export interface AttendArgs {
  info: AttentionLayerInfo;
  ctx?: AttentionContext;
  /** Queries' source (batch, Tq, C). */
  x: Tensor;
  /** Keys' and values' source (batch, Tk, Cc); defaults to x (self-attention). */
  context?: Tensor;
  heads: number;
  weights: ProjectionWeights;
  size?: readonly [number, number];
  /** Additive logits bias broadcastable to (batch, heads, Tq, Tk), e.g. a causal mask. */
  bias?: Tensor;
  /** Default 1/√headDim. */
  scale?: number;
  /** MM-DiT joint attention (kind 'joint'): the text stream attended together with x, see `JointStream`. */
  joint?: JointStream;
}

/**
 * The second token stream of MM-DiT joint attention (Esser et al. 2024, SD3): the text tokens, with their own
 * projections (diffusers' add_q_proj / add_k_proj / add_v_proj / to_add_out), attended with the image tokens x as
 * one sequence [x; text]. `attend` then returns the joint sequence's output (batch, Tx + Tt, C): x's rows
 * through `weights.out`, the text rows through `out` here — or, in SD3's context-pre-only last block (no
 * to_add_out), the text rows before any projection (the caller drops them). Weight hooks see x's projections.
 */
export interface JointStream {
  /** The text tokens (batch, Tt, C). */
  x: Tensor;
  weights: Omit<ProjectionWeights, 'out'> & { out?: ProjectionWeights['out'] };
}

function chooseFunction(
  call: AttentionCall,
  active: readonly Controller[],
  training: boolean,
  views?: JointViews,
): AttentionFunction {
  let chosen: { fn: AttentionFunction; by: string } | undefined;
  for (const c of active) {
    const fn = c.fn?.(call);
    if (!fn) continue;
    if (chosen) {
      throw new Error(
        `attention layer ${call.path}: two attention functions requested, '${chosen.fn.name}' by ` +
          `${chosen.by} and '${fn.name}' by ${c.name}; restrict one of them with appliesTo()`,
      );
    }
    chosen = { fn, by: c.name };
  }
  const readers = [...active, ...(views ? [...views.cross.controllers, ...views.self.controllers] : [])];
  const needsProbs = readers.some((c) => c.scores || c.map);
  if (chosen) {
    if (needsProbs && !chosen.fn.explicit) {
      const reader = readers.find((c) => c.scores || c.map)?.name;
      throw new Error(
        `attention layer ${call.path}: ${reader} reads attention probabilities but ${chosen.by} computes ` +
          `attention with '${chosen.fn.name}', which never forms them; restrict one of them with appliesTo()`,
      );
    }
    return chosen.fn;
  }
  return needsProbs || training ? softmaxAttention : flashAttention;
}

/** One attention call through all hook levels; returns (batch, Tq, outChannels) after the out projection. */
export function attend(a: AttendArgs): Tensor {
  const ctx = a.ctx ?? NO_CONTROL;
  const x = a.x;
  const context = a.context ?? x;
  if (x.rank !== 3 || context.rank !== 3 || x.shape[0] !== context.shape[0]) {
    throw new Error(
      `attention ${a.info.path}: expected queries (B, Tq, C) and context (B, Tk, C), got ` +
        `${formatShape(x.shape)} and ${formatShape(context.shape)}`,
    );
  }
  const inner = a.weights.q.weight.shape[0] as number;
  const headDim = inner / a.heads;
  const tx = x.shape[1] as number;
  const tt = a.joint ? (a.joint.x.shape[1] as number) : 0;
  const call: AttentionCall = {
    ...a.info,
    step: ctx.step,
    numSteps: ctx.numSteps,
    timestep: ctx.timestep,
    batch: ctx.batch,
    size: a.size,
    heads: a.heads,
    headDim,
    queryTokens: tx + tt,
    keyTokens: (context.shape[1] as number) + tt,
    ...(a.joint && { joint: { image: [0, tx], text: [tx, tx + tt] } as const }),
  };
  const active = ctx.controllers.filter((c) => !c.appliesTo || c.appliesTo(call));
  // a joint call's image→text and image→image blocks as cross / self calls, for the others (joint-view.ts)
  const views = jointViews(call, ctx.controllers, active);
  const outShape = [x.shape[0], tx + tt, a.weights.out.weight.shape[0]] as [number, number, number];
  let out = reusedOutput(call, active, outShape);
  if (!out) out = computeAttention(a, call, active, x, context, headDim, views);
  // application level
  for (const c of active) if (c.output) out = c.output(call, out);
  return out;
}

/** The first `reuse` hook's output, checked against the layer's output shape (batch, Tq, channels). */
function reusedOutput(
  call: AttentionCall,
  active: readonly Controller[],
  shape: readonly [number, number, number],
): Tensor | undefined {
  for (const c of active) {
    const r = c.reuse?.(call);
    if (!r) continue;
    if (r.rank !== 3 || r.shape.some((d, i) => d !== shape[i])) {
      throw new Error(
        `attention layer ${call.path}: ${c.name} reused an output of shape ${formatShape(r.shape)}, ` +
          `expected ${formatShape(shape)}`,
      );
    }
    return r;
  }
  return undefined;
}

/** Weight, projection, function, feature and map levels: the layer's output after the out projection. */
function computeAttention(
  a: AttendArgs,
  call: AttentionCall,
  active: readonly Controller[],
  x: Tensor,
  context: Tensor,
  headDim: number,
  views?: JointViews,
): Tensor {
  const scale = a.scale ?? 1 / Math.sqrt(headDim);

  // weight level
  let w = a.weights;
  for (const c of active) if (c.weights) w = c.weights(call, w);

  // projections (joint attention: each stream its own, then one sequence [image; text])
  let q = linear(x, w.q.weight, w.q.bias);
  let k = linear(context, w.k.weight, w.k.bias);
  let v = linear(context, w.v.weight, w.v.bias);
  const j = a.joint;
  if (j) {
    q = concat([q, linear(j.x, j.weights.q.weight, j.weights.q.bias)], 1);
    k = concat([k, linear(j.x, j.weights.k.weight, j.weights.k.bias)], 1);
    v = concat([v, linear(j.x, j.weights.v.weight, j.weights.v.bias)], 1);
  }

  // function level: which function computes attention here
  const training =
    recordsGrad(x, context, w.q.weight, w.k.weight, w.v.weight) ||
    (j !== undefined && recordsGrad(j.x, j.weights.q.weight, j.weights.k.weight, j.weights.v.weight));
  const fn = chooseFunction(call, active, training, views);
  const readsMaps =
    active.some((c) => c.scores || c.map) || viewsUse(views, 'scores') || viewsUse(views, 'map');
  const needSplit =
    !fn.runPacked || a.bias !== undefined || active.some((c) => c.features) || viewsUse(views, 'features');

  let out: Tensor;
  if (!needSplit && fn.runPacked) {
    out = fn.runPacked(q, k, v, a.heads, scale); // (B, Tq, H·dv)
  } else {
    // feature level: (B, H, T, d)
    let f = { q: splitHeads(q, a.heads), k: splitHeads(k, a.heads), v: splitHeads(v, a.heads) };
    f = featureLevel(call, active, views, f);
    ({ q, k, v } = f);
    if (fn.explicit && readsMaps) {
      // map level: logits, then probabilities, each open to hooks (a joint call's views on their blocks)
      let s = attentionScores({ q, k, v, scale, bias: a.bias }); // (B, H, Tq, Tk)
      s = mapLevel(call, active, views, 'scores', s);
      let p = softmax(s, -1);
      p = mapLevel(call, active, views, 'map', p);
      out = mergeHeads(p.matmul(v));
    } else {
      out = mergeHeads(fn.run({ q, k, v, scale, bias: a.bias }));
    }
  }

  if (!j) return linear(out, w.out.weight, w.out.bias);
  // joint: split the sequence back into its streams, each through its own out projection
  const tx = x.shape[1] as number;
  const image = linear(out.slice(1, 0, tx), w.out.weight, w.out.bias);
  const text = out.slice(1, tx);
  return concat([image, j.weights.out ? linear(text, j.weights.out.weight, j.weights.out.bias) : text], 1);
}

/**
 * The shape of a diffusers `Attention` module: query and context channels, heads and head size, projection
 * biases, and the VAE's group norm and residual.
 */
export interface AttentionConfig {
  queryDim: number;
  /** Channels of the context (cross-attention); default queryDim (self-attention). */
  crossAttentionDim?: number;
  heads: number;
  dimHead: number;
  /** Bias on to_q / to_k / to_v. */
  qkvBias?: boolean;
  /** A GroupNorm before attention with this many groups (VAE). */
  normGroups?: number;
  normEps?: number;
  /** Add the input to the output (VAE). */
  residualConnection?: boolean;
}

/** diffusers' `Attention` module with its parameter names. */
export class Attention extends Module {
  /** Set once the model is built (see `assignAttentionLayers`). */
  info: AttentionLayerInfo;
  readonly heads: number;
  readonly residualConnection: boolean;
  group_norm?: GroupNorm;
  to_q: Linear;
  to_k: Linear;
  to_v: Linear;
  to_out: ModuleList<Linear>;

  constructor(cfg: AttentionConfig, kind: 'self' | 'cross' = 'self') {
    super();
    const inner = cfg.heads * cfg.dimHead;
    const kv = cfg.crossAttentionDim ?? cfg.queryDim;
    this.heads = cfg.heads;
    this.residualConnection = cfg.residualConnection ?? false;
    this.info = { path: '', kind, place: 'mid', index: 0 };
    if (cfg.normGroups) this.group_norm = new GroupNorm(cfg.normGroups, cfg.queryDim, cfg.normEps ?? 1e-6);
    this.to_q = new Linear(cfg.queryDim, inner, { bias: cfg.qkvBias ?? false });
    this.to_k = new Linear(kv, inner, { bias: cfg.qkvBias ?? false });
    this.to_v = new Linear(kv, inner, { bias: cfg.qkvBias ?? false });
    this.to_out = new ModuleList([new Linear(inner, cfg.queryDim)]);
  }

  /**
   * The layer's Q, K, V and output projections as weights (PyTorch layout), what a `weights` hook receives.
   */
  projectionWeights(): ProjectionWeights {
    const p = (l: Linear) => ({ weight: l.weight.value, bias: l.bias?.value });
    return { q: p(this.to_q), k: p(this.to_k), v: p(this.to_v), out: p(this.to_out.at(0)) };
  }

  /** Token input (B, T, C). */
  forward(
    x: Tensor,
    opts: HookOptions & { context?: Tensor; size?: readonly [number, number] } = {},
  ): Tensor {
    const out = attend({
      info: this.info,
      ctx: opts.ctx,
      x,
      context: opts.context,
      heads: this.heads,
      weights: this.projectionWeights(),
      size: opts.size,
    });
    return this.residualConnection ? out.add(x) : out;
  }

  /** Spatial input (B, C, H, W), as the VAE's mid-block attention uses it. */
  forwardSpatial(x: Tensor, { ctx }: HookOptions = {}): Tensor {
    const [b, c, h, w] = x.shape as [number, number, number, number];
    let y = this.group_norm ? this.group_norm.forward(x) : x;
    y = y.reshape([b, c, h * w]).transpose(1, 2); // (B, HW, C)
    const out = attend({
      info: this.info,
      ctx,
      x: y,
      heads: this.heads,
      weights: this.projectionWeights(),
      size: [h, w],
    });
    const back = out.transpose(1, 2).reshape([b, c, h, w]);
    return this.residualConnection ? back.add(x) : back;
  }
}

/**
 * Gives every attention layer of a model its module path, place and ordinal (by kind, in forward order
 * = declaration order). `placeOf` maps a path to its place.
 */
export function assignAttentionLayers(
  model: Module,
  placeOf: (path: string) => AttentionLayerInfo['place'],
  isAttention: (m: Module) => m is Module & { info: AttentionLayerInfo } = (m): m is Attention =>
    m instanceof Attention,
): AttentionLayerInfo[] {
  const counts = new Map<string, number>();
  const infos: AttentionLayerInfo[] = [];
  for (const [path, m] of model.namedModules()) {
    if (!isAttention(m)) continue;
    const kind = m.info.kind;
    const index = counts.get(kind) ?? 0;
    counts.set(kind, index + 1);
    m.info = { path, kind, place: placeOf(path), index };
    infos.push(m.info);
  }
  return infos;
}
