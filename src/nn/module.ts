// Module: a tree of named child modules and parameters. Property names are the checkpoint's keys, so
// `down_blocks.1.attentions.0.proj_in.weight` is literally `unet.down_blocks[1].attentions[0].proj_in.weight`.

import { formatShape, type Shape, Tensor } from '../tensor/index.js';

/**
 * A named, replaceable tensor slot (tensors are immutable; loading or training swaps `.value`).
 * Declared by shape; the zero tensor is only allocated if read before anything is loaded into it.
 */
export class Parameter {
  readonly shape: Shape;
  #value: Tensor | null;
  /** Set while the value is parked: reads it back (the same values) on the next read of `value`. */
  #restore: (() => Tensor) | null = null;
  #version = 0;
  constructor(init: Shape | Tensor) {
    this.shape = init instanceof Tensor ? init.shape : Object.freeze([...init]);
    this.#value = init instanceof Tensor ? init : null;
  }
  get value(): Tensor {
    if (this.#restore) {
      this.#value = this.#restore();
      this.#restore = null;
    }
    if (!this.#value) this.#value = Tensor.zeros(this.shape);
    return this.#value;
  }
  set value(t: Tensor) {
    if (t.shape.length !== this.shape.length || t.shape.some((d, i) => d !== this.shape[i])) {
      throw new Error(
        `Parameter: cannot set a ${formatShape(t.shape)} tensor into a ${formatShape(this.shape)} slot`,
      );
    }
    this.#value = t;
    this.#restore = null;
    this.#version++;
  }
  /** Counts the tensors set into this slot; parking and reading back a parked value leave it unchanged. */
  get version(): number {
    return this.#version;
  }
  /** The value if it is held in memory, else null (parked or never set); never reads a parked value back. */
  get resident(): Tensor | null {
    return this.#restore ? null : this.#value;
  }
  /**
   * Drops the value from memory while something else holds its numbers (a subgraph session's weight copy,
   * issue 32); `restore` must give the same values back, and runs the next time `value` is read.
   */
  park(restore: () => Tensor): void {
    this.#value = null;
    this.#restore = restore;
  }
}

/**
 * A neural-network module: its properties are its children and parameters, named as the checkpoint names them
 * (torch.nn.Module).
 */
export class Module {
  /** Child modules and parameters in declaration order, keyed by their checkpoint name. */
  *namedChildren(): Generator<[string, Module | Parameter]> {
    for (const [k, v] of Object.entries(this)) {
      if (v instanceof Module || v instanceof Parameter) yield [k, v];
    }
  }

  /**
   * Every parameter with its checkpoint key (dotted path), depth first, as PyTorch's `named_parameters()`.
   */
  *namedParameters(prefix = ''): Generator<[string, Parameter]> {
    for (const [k, v] of this.namedChildren()) {
      const path = prefix ? `${prefix}.${k}` : k;
      if (v instanceof Parameter) yield [path, v];
      else yield* v.namedParameters(path);
    }
  }

  /**
   * This module and every module below it with its dotted path ('' for this one), as PyTorch's
   * `named_modules()`.
   */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [k, v] of this.namedChildren()) {
      if (v instanceof Module) yield* v.namedModules(prefix ? `${prefix}.${k}` : k);
    }
  }

  /** Every parameter of this module and its children. */
  parameters(): Parameter[] {
    return [...this.namedParameters()].map(([, p]) => p);
  }

  /** The module at a dotted path ('' = this); throws naming the path when it does not exist. */
  getModule(path: string): Module {
    let m: Module = this;
    if (path === '') return m;
    for (const part of path.split('.')) {
      const next: unknown = (m as unknown as Record<string, unknown>)[part];
      if (!(next instanceof Module))
        throw new Error(`getModule: no module at '${path}' (failed at '${part}')`);
      m = next;
    }
    return m;
  }

  /** Marks every parameter as trainable (or not). */
  requiresGrad(flag = true): this {
    for (const p of this.parameters()) p.value.requiresGrad = flag;
    return this;
  }

  /** The weights by checkpoint key, as PyTorch's `state_dict()`. */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters()].map(([k, p]) => [k, p.value]));
  }

  /** The number of scalar weights. */
  numParameters(): number {
    let n = 0;
    for (const p of this.parameters()) n += p.value.size;
    return n;
  }
}

/** An indexed list of modules: children are named 0, 1, 2, … as in torch.nn.ModuleList. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items;
  }
  override *namedChildren(): Generator<[string, Module | Parameter]> {
    for (let i = 0; i < this.items.length; i++) yield [String(i), this.items[i] as M];
  }
  get length(): number {
    return this.items.length;
  }
  /** The i-th module of the list. */
  at(i: number): M {
    const m = this.items[i];
    if (!m) throw new Error(`ModuleList: index ${i} out of range (length ${this.items.length})`);
    return m;
  }
  override getModule(path: string): Module {
    if (path === '') return this;
    const [head, ...rest] = path.split('.');
    const i = Number(head);
    const m = Number.isInteger(i) ? this.items[i] : undefined;
    if (!m) throw new Error(`getModule: no module at '${path}' in a list of ${this.items.length}`);
    return m.getModule(rest.join('.'));
  }
  /** The modules of the list, in order. */
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}

/** What a state dict did not match: keys the model lacks, keys it did not use, and shapes that differ. */
export interface LoadReport {
  missing: string[];
  unexpected: string[];
  mismatched: { key: string; expected: Shape; got: Shape }[];
}

/**
 * Copies `tensors` into the module's parameters by name. Strict by default: any missing, unexpected or
 * wrongly shaped key is an error that lists them all by name.
 */
export function loadStateDict(
  module: Module,
  tensors: ReadonlyMap<string, Tensor>,
  opts: { strict?: boolean; what?: string } = {},
): LoadReport {
  const params = new Map(module.namedParameters());
  const report: LoadReport = { missing: [], unexpected: [], mismatched: [] };
  for (const [k, p] of params) {
    const t = tensors.get(k);
    if (!t) report.missing.push(k);
    else if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      report.mismatched.push({ key: k, expected: p.shape, got: t.shape });
    }
  }
  for (const k of tensors.keys()) if (!params.has(k)) report.unexpected.push(k);
  const strict = opts.strict ?? true;
  const bad = report.missing.length + report.unexpected.length + report.mismatched.length;
  if (strict && bad > 0) throw new Error(describeLoadReport(report, opts.what ?? 'module'));
  if (report.mismatched.length > 0)
    throw new Error(describeLoadReport({ ...report, missing: [], unexpected: [] }, opts.what ?? 'module'));
  for (const [k, p] of params) {
    const t = tensors.get(k);
    if (t) p.value = t.dtype === 'float32' ? t : t.cast('float32');
  }
  return report;
}

function list(keys: string[], max = 20): string {
  const shown = keys.slice(0, max).join(', ');
  return keys.length > max ? `${shown}, … (${keys.length} in all)` : shown;
}

/** A load report as an error message naming the keys. */
export function describeLoadReport(r: LoadReport, what: string): string {
  const parts = [`loading ${what}: the weights do not match the model`];
  if (r.missing.length) parts.push(`missing weights: ${list(r.missing)}`);
  if (r.unexpected.length) parts.push(`unexpected weights: ${list(r.unexpected)}`);
  if (r.mismatched.length) {
    parts.push(
      `wrong shapes: ${r.mismatched
        .slice(0, 20)
        .map((m) => `${m.key} (model ${formatShape(m.expected)}, file ${formatShape(m.got)})`)
        .join(', ')}`,
    );
  }
  parts.push('check that the config.json matches the weights file');
  return parts.join('\n  ');
}
