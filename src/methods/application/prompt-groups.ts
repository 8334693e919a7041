// Several independent edits in one batch: each group of prompts gets its own controllers, which see only the
// group's rows with the group's own batch roles (prompt 0 = the group's first prompt), as if it ran alone.
//
// Prompt-to-Prompt, LocalBlend, MasaCtrl and Plug-and-Play all read the source row from the batch roles, so a
// batch of k (source, target) pairs runs as k pairs: groupControllers([{ prompts: [0, 1], controllers: [a] },
// { prompts: [2, 3], controllers: [b] }]) with generate({ prompt: [s0, t0, s1, t1] }). Rows of prompts in no
// group pass unchanged. A prompt may be in several groups when their controllers leave its rows as they are (the
// source of several edits: every editor here only reads the source); groups run in order, each on the rows the
// previous ones returned. Hooks that act on a whole layer (weights, fn, tokens, and the caches' reuse and
// reuseTransformer, which skip it) cannot be split by rows and are refused.

import type { AttentionCall, BatchRoles, BlockCall } from '../../attention/call.js';
import type { Controller, Features, StepState } from '../../attention/hooks.js';
import { concat, type Tensor } from '../../tensor/index.js';

/** A group of prompts in one batch with its own controllers (see `groupControllers`). */
export interface PromptGroup {
  /** Prompt indices (batch roles) of the group, in the order its controllers number them. */
  prompts: readonly number[];
  controllers: readonly Controller[];
}

interface Part {
  group: PromptGroup;
  /** Batch rows of the group, in batch order. */
  rows: number[];
  batch: BatchRoles;
}

/** The group's rows of a batch (batch order) and its roles there, prompts renumbered from 0. */
function subRoles(batch: BatchRoles, group: PromptGroup): { rows: number[]; batch: BatchRoles } {
  const rows: number[] = [];
  batch.prompt.forEach((p, r) => {
    if (group.prompts.includes(p)) rows.push(r);
  });
  const roles: BatchRoles = {
    guidance: rows.map((r) => batch.guidance[r]!),
    prompt: rows.map((r) => group.prompts.indexOf(batch.prompt[r]!)),
    ...(batch.frame ? { frame: rows.map((r) => batch.frame![r]!) } : {}),
  };
  return { rows, batch: roles };
}

/**
 * Each group's part of a batch. Attention and ResNet tensors have a row per batch row; the latents of step
 * callbacks (`latentRows`) have a row per prompt.
 */
function partsOf(groups: readonly PromptGroup[], batch: BatchRoles, latentRows = false): Part[] {
  const parts: Part[] = [];
  for (const group of groups) {
    const sub = subRoles(batch, group);
    if (sub.rows.length === 0) continue;
    parts.push({ group, rows: latentRows ? [...group.prompts] : sub.rows, batch: sub.batch });
  }
  return parts;
}

/** Applies `fn` to each part's rows of `x` (batch first) and puts the results back. */
function perRows(x: Tensor, parts: readonly Part[], fn: (part: Part, rows: Tensor) => Tensor): Tensor {
  const n = x.shape[0] as number;
  const rows = x.split(n, 0);
  let changed = false;
  for (const part of parts) {
    const sub = concat(
      part.rows.map((r) => rows[r]!),
      0,
    );
    const out = fn(part, sub);
    if (out === sub) continue;
    const back = out.split(part.rows.length, 0);
    part.rows.forEach((r, i) => {
      rows[r] = back[i]!;
    });
    changed = true;
  }
  return changed ? concat(rows, 0) : x;
}

const REFUSED = ['weights', 'fn', 'tokens', 'reuse', 'reuseTransformer'] as const;

/** One controller that runs each group's controllers on that group's rows only. */
export function groupControllers(groups: readonly PromptGroup[], name = 'PromptGroups'): Controller {
  for (const g of groups) {
    if (g.prompts.length === 0) throw new Error(`${name}: a group has no prompts`);
    if (new Set(g.prompts).size !== g.prompts.length)
      throw new Error(`${name}: a group names a prompt twice`);
    for (const c of g.controllers) {
      const hook = REFUSED.find((h) => c[h] !== undefined);
      if (hook)
        throw new Error(`${name}: ${c.name} has a '${hook}' hook, which acts on whole layers, not on rows`);
    }
  }
  const all = groups.flatMap((g) => g.controllers);
  const has = (hook: keyof Controller) => all.some((c) => c[hook] !== undefined);
  const subCall = <C extends AttentionCall | BlockCall>(call: C, part: Part): C => ({
    ...call,
    batch: part.batch,
  });
  const applies = (c: Controller, call: AttentionCall) => !c.appliesTo || c.appliesTo(call);
  /** A hook that runs `hook` of each group's controllers that `use` the call, in order, on the group's rows. */
  const chain =
    <C extends AttentionCall | BlockCall>(
      hook: 'scores' | 'map' | 'output' | 'resnet' | 'transformer',
      use: (c: Controller, call: C) => boolean,
    ) =>
    (call: C, x: Tensor): Tensor =>
      perRows(x, partsOf(groups, call.batch), (part, rows) => {
        const sub = subCall(call, part);
        let y = rows;
        for (const c of part.group.controllers) {
          const f = c[hook] as ((call: C, x: Tensor) => Tensor) | undefined;
          if (f && use(c, sub)) y = f.call(c, sub, y);
        }
        return y;
      });

  const controller: Controller = {
    name,
    appliesTo(call: AttentionCall): boolean {
      return partsOf(groups, call.batch).some((part) =>
        part.group.controllers.some((c) => applies(c, subCall(call, part))),
      );
    },
  };
  if (has('scores')) controller.scores = chain('scores', applies);
  if (has('map')) controller.map = chain('map', applies);
  if (has('output')) controller.output = chain('output', applies);
  if (has('features')) {
    controller.features = (call: AttentionCall, f: Features): Features => {
      const parts = partsOf(groups, call.batch);
      let q = f.q;
      let k = f.k;
      let v = f.v;
      for (const part of parts) {
        const sub = subCall(call, part);
        const active = part.group.controllers.filter((c) => c.features && applies(c, sub));
        if (active.length === 0) continue;
        const take = (x: Tensor) =>
          concat(
            part.rows.map((r) => x.slice(0, r, r + 1)),
            0,
          );
        let g: Features = { q: take(q), k: take(k), v: take(v) };
        for (const c of active) g = c.features!(sub, g);
        const only = [part];
        q = perRows(q, only, () => g.q);
        k = perRows(k, only, () => g.k);
        v = perRows(v, only, () => g.v);
      }
      return q === f.q && k === f.k && v === f.v ? f : { q, k, v };
    };
  }
  // block hooks are not filtered by appliesTo (it takes attention calls)
  if (has('resnet')) controller.resnet = chain<BlockCall>('resnet', () => true);
  if (has('transformer')) controller.transformer = chain<BlockCall>('transformer', () => true);
  // step callbacks: latents have one row per prompt
  const stepParts = (state: StepState) => partsOf(groups, state.batch, true);
  if (has('beforeStep')) {
    controller.beforeStep = (state: StepState): void => {
      for (const part of stepParts(state)) {
        const latents = concat(
          part.rows.map((r) => state.latents.slice(0, r, r + 1)),
          0,
        );
        for (const c of part.group.controllers) c.beforeStep?.({ ...state, batch: part.batch, latents });
      }
    };
  }
  if (has('afterStep')) {
    controller.afterStep = (state: StepState): Tensor | undefined => {
      const out = perRows(state.latents, stepParts(state), (part, latents) => {
        let z = latents;
        for (const c of part.group.controllers)
          z = c.afterStep?.({ ...state, batch: part.batch, latents: z }) ?? z;
        return z;
      });
      return out === state.latents ? undefined : out;
    };
  }
  return controller;
}
