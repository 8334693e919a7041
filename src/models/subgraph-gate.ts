// Which UNet modules may run as cached subgraph sessions (issue 32, nn/subgraph.ts): those where no hook
// applies for this call. A module's attention calls are recorded while it is traced (a recording controller
// that applies nowhere sees every call's `appliesTo`); later calls ask every controller's `appliesTo` about
// those calls with this forward's step and batch roles. Block hooks (`resnet`, `transformer`,
// `reuseTransformer`) are not filtered by `appliesTo`, so a controller that has one keeps every block of
// that kind eager. The moment a hook applies, the module runs eagerly, as before.

import { NO_CONTROL } from '../attention/attention.js';
import type { AttentionCall } from '../attention/call.js';
import type { AttentionContext, Controller } from '../attention/hooks.js';
import type { Module } from '../nn/index.js';
import { mustRunEager, subgraphForward } from '../nn/subgraph.js';
import type { Tensor } from '../tensor/index.js';

/** The hooks an attention call consults through `appliesTo`. */
const ATTENTION_HOOKS = ['weights', 'features', 'scores', 'map', 'fn', 'output', 'reuse', 'tokens'] as const;

/** The block hooks that keep a module eager whenever any controller has one. */
export type BlockHook = 'resnet' | 'transformer' | 'reuseTransformer';

/** A module's attention calls, per input signature, as recorded while it was traced. */
const callsOf = new WeakMap<Module, Map<string, AttentionCall[]>>();

function attends(c: Controller): boolean {
  return ATTENTION_HOOKS.some((h) => c[h] !== undefined);
}

/** Whether some controller's attention hook applies to one of `calls` in this forward pass. */
function anyApplies(ctx: AttentionContext, calls: readonly AttentionCall[]): boolean {
  const { step, numSteps, timestep, batch } = ctx;
  for (const c of ctx.controllers) {
    if (!attends(c)) continue;
    if (calls.length > 0 && !c.appliesTo) return true;
    for (const call of calls) if (c.appliesTo?.({ ...call, step, numSteps, timestep, batch })) return true;
  }
  return false;
}

/** One module's forward under the gate: its inputs, the block hooks that keep it eager, and its eager forward. */
export interface GatedForward {
  module: Module;
  /** The module's path (errors) — also what tells its graphs apart from other modules'. */
  name: string;
  /** What else changes the graph (an upsampling size). */
  key?: string;
  inputs: readonly Tensor[];
  ctx?: AttentionContext;
  blockHooks?: readonly BlockHook[];
  /** The eager forward with the context to use (the caller's, plus a recorder while tracing). */
  eager: (ctx: AttentionContext | undefined) => readonly Tensor[];
}

/**
 * Runs a UNet module as a cached subgraph when no hook applies to it in this forward pass, else eagerly with
 * the caller's controllers; returns its outputs.
 */
export function gatedForward(f: GatedForward): Tensor[] {
  const { ctx, module } = f;
  if (mustRunEager(module, f.inputs)) return [...f.eager(ctx)];
  const controllers = ctx?.controllers ?? [];
  if (f.blockHooks?.some((h) => controllers.some((c) => c[h] !== undefined))) return [...f.eager(ctx)];
  const sig = `${f.key ?? ''}|${f.inputs.map((x) => x.shape.join('x')).join('|')}`;
  const calls = callsOf.get(module)?.get(sig);
  if (calls && ctx && anyApplies(ctx, calls)) return [...f.eager(ctx)];
  if (calls || !controllers.some(attends)) {
    // hook-free: traced with the recorder alone (the controllers apply nowhere: the same path)
    return subgraphForward({ module, key: f.key, name: f.name }, f.inputs, () =>
      f.eager(recording(ctx, recordInto(module, sig))),
    );
  }
  // calls not known yet and some controller attends: traced with them too; the graph is kept if none applied
  const seen = recordInto(module, sig);
  const traced = recording(ctx, seen);
  return subgraphForward(
    { module, key: f.key, name: f.name, accept: () => !anyApplies(ctx as AttentionContext, seen) },
    f.inputs,
    () => f.eager({ ...traced, controllers: [...traced.controllers, ...controllers] }),
  );
}

/** A fresh record of a module's calls for one signature. */
function recordInto(module: Module, sig: string): AttentionCall[] {
  let m = callsOf.get(module);
  if (!m) {
    m = new Map();
    callsOf.set(module, m);
  }
  const seen: AttentionCall[] = [];
  m.set(sig, seen);
  return seen;
}

/** The context with only a recorder: it applies to no call and keeps each one it is asked about. */
function recording(ctx: AttentionContext | undefined, seen: AttentionCall[]): AttentionContext {
  const recorder: Controller = {
    name: 'subgraph call recorder',
    appliesTo(call) {
      seen.push(call);
      return false;
    },
    output: (_call, out) => out, // an attention hook, so that `attend` asks `appliesTo`
  };
  return { ...(ctx ?? NO_CONTROL), controllers: [recorder] };
}
