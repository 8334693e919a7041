// Function level as a controller: pick how attention is computed on the layers a filter selects (the
// per-layer counterpart of diffusers' `attention_backend(...)` scope).

import type { AttentionCall } from '../../attention/call.js';
import type { AttentionFunction } from '../../attention/functions.js';
import type { Controller } from '../../attention/hooks.js';

/**
 * One function for every call, or a function made for the call: window and agent attention read the
 * queries' grid from `call.size` and return undefined where they do not apply (text tokens, merged tokens),
 * which leaves the layer to the engine's default.
 */
export type AttentionFunctionFor =
  | AttentionFunction
  | ((call: AttentionCall) => AttentionFunction | undefined);

/** Options of `useAttention`: the layers on which its function replaces the default one. */
export interface UseAttentionOptions {
  /** Layers to act on (default: all). */
  appliesTo?: (call: AttentionCall) => boolean;
  /** Shown in errors (default: `useAttention(<function name>)`). */
  name?: string;
}

/** A controller whose only hook is `fn`: `useAttention(chunkedAttention(), { appliesTo: (c) => c.kind === 'self' })`. */
export function useAttention(fn: AttentionFunctionFor, opts: UseAttentionOptions = {}): Controller {
  const pick = typeof fn === 'function' ? fn : () => fn;
  const label = typeof fn === 'function' ? fn.name || 'custom' : fn.name;
  const controller: Controller = { name: opts.name ?? `useAttention(${label})`, fn: pick };
  return opts.appliesTo ? { ...controller, appliesTo: opts.appliesTo } : controller;
}

/** The grid (h, w) of a call whose queries are exactly its image tokens, else undefined. */
export function queryGrid(call: AttentionCall): readonly [number, number] | undefined {
  const s = call.size;
  return s && s[0] * s[1] === call.queryTokens ? s : undefined;
}
