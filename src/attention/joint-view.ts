// The generic view of an MM-DiT joint attention call (kind 'joint', SD3) as the UNet's two kinds of attention,
// so that methods written for cross- and self-attention run on a DiT unchanged:
//
//   cross view  the image→text block   queries = image tokens (N), keys = text tokens (M)   kind 'cross'
//   self view   the image→image block  queries = keys = image tokens (N)                  kind 'self'
//
// of the joint sequence [image; text]. A controller that applies to the joint call itself gets it whole; one that
// does not is offered the two views (its `appliesTo` decides, e.g. an AttentionStore of kinds ['cross']), and
// its `features`, `scores` and `map` hooks see the blocks: Q of the image tokens with K, V of the text (cross)
// or of the image (self), and the (B, H, N, M) / (B, H, N, N) blocks of the logits and probabilities. What a hook
// returns is written back into its block; the text tokens' rows are left as they are. The blocks are read as
// they stand: a row of the image→text block sums to the share of attention the image token gives the text
// (< 1), not renormalised. The other hook levels (weights, fn, output, reuse, tokens) act on whole calls only.

import { concat, type Tensor } from '../tensor/index.js';
import type { AttentionCall } from './call.js';
import type { Controller, Features } from './hooks.js';

/** One view of a joint call: the call as a cross- or self-attention call, and the controllers that take it. */
export interface JointView {
  call: AttentionCall;
  controllers: readonly Controller[];
}

/**
 * The cross (image→text) and self (image→image) views of a joint call, and the order hooks run in: the
 * controllers that take the call or a view, in the controller list's order.
 */
export interface JointViews {
  cross: JointView;
  self: JointView;
  order: readonly Controller[];
}

/**
 * The joint call seen as cross-attention (image → text) and as self-attention (image → image): same layer path,
 * place, index, step and batch, `size` the image grid, `view` 'joint' so a method may tell.
 */
export function jointViewCalls(call: AttentionCall): { cross: AttentionCall; self: AttentionCall } {
  if (!call.joint) throw new Error(`jointViewCalls: ${call.path} is not a joint attention call`);
  const { joint, ...rest } = call;
  const n = joint.image[1] - joint.image[0];
  const m = joint.text[1] - joint.text[0];
  return {
    cross: { ...rest, kind: 'cross', queryTokens: n, keyTokens: m, view: 'joint' },
    self: { ...rest, kind: 'self', queryTokens: n, keyTokens: n, view: 'joint' },
  };
}

/**
 * The views of a joint call offered to the controllers that do not take the call itself (`direct`) and have a
 * `features`, `scores` or `map` hook; undefined when no controller takes a view (or the call is not joint).
 */
export function jointViews(
  call: AttentionCall,
  controllers: readonly Controller[],
  direct: readonly Controller[],
): JointViews | undefined {
  if (!call.joint) return undefined;
  // only controllers with a hook a view runs are asked
  const rest = controllers.filter((c) => !direct.includes(c) && (c.features || c.scores || c.map));
  if (rest.length === 0) return undefined;
  const calls = jointViewCalls(call);
  const take = (v: AttentionCall) => rest.filter((c) => !c.appliesTo || c.appliesTo(v));
  const cross = take(calls.cross);
  const self = take(calls.self);
  if (cross.length + self.length === 0) return undefined;
  return {
    cross: { call: calls.cross, controllers: cross },
    self: { call: calls.self, controllers: self },
    order: controllers.filter((c) => direct.includes(c) || cross.includes(c) || self.includes(c)),
  };
}

/** Whether any view controller has the hook. */
export function viewsUse(views: JointViews | undefined, hook: 'features' | 'scores' | 'map'): boolean {
  return !!views && [views.cross, views.self].some((v) => v.controllers.some((c) => c[hook]));
}

/**
 * The `scores` or `map` level of a call: each controller's hook in the controller list's order — on the whole
 * (B, H, Tq, Tk) tensor where it takes the call, on its views' blocks of a joint call where it takes those
 * (self view on [image, image], then cross view on [image, text]; text rows unchanged).
 */
export function mapLevel(
  call: AttentionCall,
  active: readonly Controller[],
  views: JointViews | undefined,
  hook: 'scores' | 'map',
  x: Tensor,
): Tensor {
  for (const c of views?.order ?? active) {
    const h = c[hook];
    if (!h) continue;
    if (active.includes(c)) x = h.call(c, call, x);
    else if (views && call.joint) x = viewBlocks(x, call.joint, views, c, h);
  }
  return x;
}

function viewBlocks(
  x: Tensor,
  joint: NonNullable<AttentionCall['joint']>,
  views: JointViews,
  c: Controller,
  h: (call: AttentionCall, p: Tensor) => Tensor,
): Tensor {
  const [i0, i1] = joint.image;
  const [t0, t1] = joint.text;
  const rows = x.slice(2, i0, i1); // (B, H, N, T): the image queries
  let self = rows.slice(3, i0, i1); // (B, H, N, N)
  let cross = rows.slice(3, t0, t1); // (B, H, N, M)
  if (views.self.controllers.includes(c)) self = h.call(c, views.self.call, self);
  if (views.cross.controllers.includes(c)) cross = h.call(c, views.cross.call, cross);
  return concat([concat([self, cross], 3), x.slice(2, t0, t1)], 2);
}

/**
 * The `features` level of a call, in the controller list's order: each hook on the whole Q, K, V (B, H, T, d)
 * where its controller takes the call; on a joint call's views where it takes those — the self view on Q, K, V
 * of the image tokens, then the cross view on Q of the image tokens with K, V of the text tokens.
 */
export function featureLevel(
  call: AttentionCall,
  active: readonly Controller[],
  views: JointViews | undefined,
  f: Features,
): Features {
  for (const c of views?.order ?? active) {
    if (!c.features) continue;
    if (active.includes(c)) f = c.features(call, f);
    else if (views && call.joint) f = viewFeatures(f, call.joint, views, c);
  }
  return f;
}

function viewFeatures(
  f: Features,
  joint: NonNullable<AttentionCall['joint']>,
  views: JointViews,
  c: Controller,
): Features {
  const features = c.features!.bind(c);
  const [i0, i1] = joint.image;
  const [t0, t1] = joint.text;
  const part = (x: Tensor, a: number, b: number) => x.slice(2, a, b);
  let q = part(f.q, i0, i1);
  let ki = part(f.k, i0, i1);
  let vi = part(f.v, i0, i1);
  let kt = part(f.k, t0, t1);
  let vt = part(f.v, t0, t1);
  if (views.self.controllers.includes(c))
    ({ q, k: ki, v: vi } = features(views.self.call, { q, k: ki, v: vi }));
  if (views.cross.controllers.includes(c))
    ({ q, k: kt, v: vt } = features(views.cross.call, { q, k: kt, v: vt }));
  return { q: concat([q, part(f.q, t0, t1)], 2), k: concat([ki, kt], 2), v: concat([vi, vt], 2) };
}
