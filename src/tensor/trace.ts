// Tracing: while a trace is open, every op also records itself as an ONNX node, so a forward pass of any
// module becomes one ONNX graph (the `attnkit export` command, and the whole-graph baseline of the
// benchmarks). Ops still run eagerly, so the trace follows exactly the code path taken; tensors the graph
// did not produce (weights, constants) become initializers. Shapes are those of the traced call;
// symbolic-axes.ts makes one graph with symbolic batch / spatial / sequence axes out of two traces.

import type { AttrValue, DType, GraphSpec, NodeSpec, TensorValue, ValueSpec } from '../kernels/graph.js';
import type { Tensor } from './tensor.js';

/**
 * An ONNX graph being recorded: while open (`withTrace`), every op adds its node, and tensors made outside
 * become inputs or initializers (how `attnkit export` builds a graph).
 */
export class GraphTrace {
  readonly nodes: NodeSpec[] = [];
  readonly inputs: ValueSpec[] = [];
  readonly initializers: (TensorValue & { name: string })[] = [];
  readonly #names = new WeakMap<Tensor, string>();
  #counter = 0;

  /** Declares a graph input; dims given as strings stay symbolic in the graph's signature. */
  input(name: string, t: Tensor, dims?: readonly (number | string)[]): void {
    this.#names.set(t, name);
    this.inputs.push({ name, dtype: t.dtype, dims: dims ?? t.shape });
  }

  /** The graph name of `t`, adding it as an initializer if the graph did not produce it. */
  nameOf(t: Tensor): string {
    let name = this.#names.get(t);
    if (name) return name;
    name = `const_${this.#counter++}`;
    this.#names.set(t, name);
    this.initializers.push({ name, dtype: t.dtype, dims: t.shape, data: t.data });
    return name;
  }

  /** Records one node whose outputs are the given (already computed) tensors. */
  node(
    op: string,
    inputs: readonly (Tensor | null)[],
    outputs: readonly Tensor[],
    attrs?: Record<string, AttrValue | undefined>,
    domain?: string,
  ): void {
    const inNames = inputs.map((x) => (x ? this.nameOf(x) : ''));
    const outNames = outputs.map((o) => {
      const n = `t_${this.#counter++}`;
      this.#names.set(o, n);
      return n;
    });
    this.nodes.push({
      op,
      domain,
      inputs: inNames,
      outputs: outNames,
      attrs,
      name: `${op}_${this.nodes.length}`,
    });
  }

  /**
   * The traced graph with the given tensors as its outputs. Nodes and constants the outputs do not depend on
   * (a pooled output nobody asked for, a hook's side computation) are left out.
   */
  graph(
    outputs: readonly { name: string; tensor: Tensor; dims?: readonly (number | string)[] }[],
    graphName = 'attnkit',
  ): GraphSpec {
    const outSpecs: ValueSpec[] = [];
    const tail: NodeSpec[] = [];
    for (const o of outputs) {
      const inner = this.#names.get(o.tensor);
      if (!inner) throw new Error(`trace: output '${o.name}' was not computed inside the trace`);
      tail.push({ op: 'Identity', inputs: [inner], outputs: [o.name] });
      outSpecs.push({ name: o.name, dtype: o.tensor.dtype as DType, dims: o.dims ?? o.tensor.shape });
    }
    const nodes = liveNodes(
      [...this.nodes, ...tail],
      outSpecs.map((o) => o.name),
    );
    const used = new Set(nodes.flatMap((n) => n.inputs));
    return {
      name: graphName,
      nodes,
      inputs: this.inputs,
      outputs: outSpecs,
      initializers: this.initializers.filter((t) => used.has(t.name)),
    };
  }
}

/** The nodes that the named outputs depend on, in their order. */
function liveNodes(nodes: readonly NodeSpec[], outputs: readonly string[]): NodeSpec[] {
  const needed = new Set(outputs);
  const keep = new Array<boolean>(nodes.length).fill(false);
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i] as NodeSpec;
    if (!n.outputs.some((o) => needed.has(o))) continue;
    keep[i] = true;
    for (const x of n.inputs) if (x) needed.add(x);
  }
  return nodes.filter((_, i) => keep[i]);
}

let current: GraphTrace | null = null;

/** The open trace, if any. */
export function activeTrace(): GraphTrace | null {
  return current;
}

/** Runs `fn` with `trace` open; ops inside record themselves into it. */
export function withTrace<T>(trace: GraphTrace, fn: () => T): T {
  const prev = current;
  current = trace;
  try {
    return fn();
  } finally {
    current = prev;
  }
}
