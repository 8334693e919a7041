// Symbolic axes for traced graphs. A trace follows the concrete call, so each shape value in it (a reshape
// target, an expand shape, slice bounds, split sizes, resize sizes) is a number. Tracing the same forward
// twice, at two sizes where every symbolic axis grows by its own prime factor (batch ×2, height ×3, …), tells
// each number's dependence on the axes: the ratio of its two values factors uniquely into those primes,
//   v₂ / v₁ = ∏ₛ pₛ^eₛ   ⇒   v = c · ∏ₛ sₛ^eₛ   with c = v₁ / ∏ₛ aₛ^eₛ   (aₛ: axis s in the first trace),
// and the graph then computes v from its inputs' Shape (Shape, Mul, Div, Concat) instead of holding it as a
// constant. Values equal in both traces stay constants (channels, heads). Anything else that differs between
// the two traces — a data constant built from a size, a different code path — is an error naming the node.

import type { GraphSpec, NodeSpec, TensorValue, ValueSpec } from '../kernels/graph.js';

/** Inputs of these ops (by index) hold shape values; other constants must not depend on the sizes. */
const SHAPE_INPUTS: Readonly<Record<string, readonly number[]>> = {
  Reshape: [1],
  Expand: [1],
  Slice: [1, 2],
  Split: [1],
  Resize: [3],
  Pad: [1],
  Tile: [1],
  ConstantOfShape: [0],
};

type Initializer = TensorValue & { name: string };

/** c · ∏ₛ sₛ^eₛ with c = num / den in lowest terms. */
interface Monomial {
  num: number;
  den: number;
  exps: ReadonlyMap<string, number>;
}

export interface AxisSizes {
  /** Each axis' size in the first and in the second trace; an axis of equal sizes is fixed. */
  first: Readonly<Record<string, number>>;
  second: Readonly<Record<string, number>>;
}

/**
 * One graph with symbolic axes from two traces of the same forward (`a` at `sizes.first`, `b` at
 * `sizes.second`). Every axis whose size differs must grow by a prime factor of its own, and appear by name
 * in the inputs' dims of `a`.
 */
export function generalizeTraces(a: GraphSpec, b: GraphSpec, sizes: AxisSizes): GraphSpec {
  const prime = axisPrimes(sizes);
  checkSameStructure(a, b);
  const consumers = consumersOf(a.nodes);
  const solver = new ShapeGraph(a.inputs, prime.keys());
  const initializers: Initializer[] = [];
  const bByName = new Map((b.initializers ?? []).map((t) => [t.name, t]));
  for (const ta of a.initializers ?? []) {
    const tb = bByName.get(ta.name);
    if (!tb) {
      throw new Error(`trace: constant '${ta.name}' is in the first trace only; the code paths differ`);
    }
    if (sameTensor(ta, tb)) {
      initializers.push(ta);
      continue;
    }
    const uses = consumers.get(ta.name) ?? [];
    const where = uses.map((u) => `input ${u.index} of ${u.node.name ?? u.node.op}`).join(', ');
    if (!uses.every((u) => SHAPE_INPUTS[u.node.op]?.includes(u.index)) || ta.dtype !== 'int64') {
      throw new Error(
        `trace: constant '${ta.name}' (${where}) depends on the input sizes but is not a shape; ` +
          'build it from ops on the inputs (e.g. slice a constant made for the largest size)',
      );
    }
    if (ta.dims.length !== 1 || tb.dims.length !== 1 || ta.dims[0] !== tb.dims[0]) {
      throw new Error(`trace: shape '${ta.name}' (${where}) changes its length between the traces`);
    }
    const va = Array.from(ta.data as BigInt64Array, Number);
    const vb = Array.from(tb.data as BigInt64Array, Number);
    solver.vector(
      ta.name,
      va,
      va.map((v, i) => solveValue(v, vb[i] as number, prime, sizes.first, `'${ta.name}' (${where})`)),
    );
  }
  return {
    name: a.name,
    nodes: [...solver.nodes, ...a.nodes],
    inputs: a.inputs,
    outputs: a.outputs.map((o, i) => symbolicOutput(o, b.outputs[i] as ValueSpec, prime, sizes.first)),
    initializers: [...solver.constants, ...initializers],
  };
}

/** Each varying axis' growth factor, checked to be a prime no other axis uses. */
function axisPrimes(sizes: AxisSizes): Map<string, number> {
  const prime = new Map<string, number>();
  for (const [axis, first] of Object.entries(sizes.first)) {
    const second = sizes.second[axis];
    if (second === undefined) throw new Error(`generalizeTraces: axis '${axis}' has no second size`);
    if (second === first) continue;
    const p = second / first;
    if (!isPrime(p) || [...prime.values()].includes(p)) {
      throw new Error(
        `generalizeTraces: axis '${axis}' grows ${first} → ${second}; each axis must grow by a prime of its own`,
      );
    }
    prime.set(axis, p);
  }
  return prime;
}

function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

function gcd(x: number, y: number): number {
  let [p, q] = [Math.abs(x), Math.abs(y)];
  while (q) [p, q] = [q, p % q];
  return p;
}

/** The monomial through v₁ (first trace) and v₂ (second); null when the value does not change. */
function solveValue(
  v1: number,
  v2: number,
  prime: ReadonlyMap<string, number>,
  first: Readonly<Record<string, number>>,
  what: string,
): Monomial | null {
  if (v1 === v2) return null;
  const fail = () =>
    new Error(
      `trace: shape value ${what} is ${v1} in the first trace and ${v2} in the second, not a product of the ` +
        `symbolic axes (${[...prime.keys()].join(', ')}) times a constant`,
    );
  if (v1 <= 0 || v2 <= 0) throw fail();
  const g = gcd(v1, v2);
  let [up, down] = [v2 / g, v1 / g];
  const exps = new Map<string, number>();
  let [num, den] = [v1, 1];
  for (const [axis, p] of prime) {
    let e = 0;
    for (; up % p === 0; up /= p) e++;
    for (; down % p === 0; down /= p) e--;
    if (e === 0) continue;
    exps.set(axis, e);
    const a = (first[axis] as number) ** Math.abs(e);
    if (e > 0) den *= a;
    else num *= a;
  }
  if (up !== 1 || down !== 1) throw fail();
  const r = gcd(num, den);
  return { num: num / r, den: den / r, exps };
}

/**
 * A graph output's dims: fixed where both traces agree, else the axis name or a product like `8*height`; a dim
 * that is no such product (2·height − 1) gets a name of its own, which onnxruntime reads as "any size".
 */
function symbolicOutput(
  a: ValueSpec,
  b: ValueSpec,
  prime: ReadonlyMap<string, number>,
  first: Readonly<Record<string, number>>,
): ValueSpec {
  if (!a.dims || !b.dims) return a;
  const dims = a.dims.map((d, i) => {
    const e = b.dims?.[i];
    if (typeof d !== 'number' || typeof e !== 'number') return d;
    try {
      const m = solveValue(d, e, prime, first, `output '${a.name}' dim ${i}`);
      return m ? formatMonomial(m) : d;
    } catch {
      return `${a.name}_dim${i}`;
    }
  });
  return { ...a, dims };
}

function formatMonomial(m: Monomial): string {
  const parts: string[] = m.num === 1 ? [] : [String(m.num)];
  for (const [axis, e] of m.exps) for (let i = 0; i < e; i++) parts.push(axis);
  let s = parts.join('*') || '1';
  for (const [axis, e] of m.exps) for (let i = 0; i < -e; i++) s += `/${axis}`;
  return m.den === 1 ? s : `${s}/${m.den}`;
}

/** Nodes computing shape vectors from the inputs' dims, with the constants they use. */
class ShapeGraph {
  readonly nodes: NodeSpec[] = [];
  readonly constants: Initializer[] = [];
  readonly #dims = new Map<string, string>();
  readonly #axisAt = new Map<string, { input: string; axis: number }>();
  #counter = 0;

  /** `axes`: the symbolic axes, each read from the first input that names it among its dims. */
  constructor(inputs: readonly ValueSpec[], axes: Iterable<string>) {
    for (const input of inputs) {
      input.dims?.forEach((d, axis) => {
        if (typeof d === 'string' && !this.#axisAt.has(d)) this.#axisAt.set(d, { input: input.name, axis });
      });
    }
    for (const axis of axes) {
      if (!this.#axisAt.has(axis)) {
        throw new Error(`generalizeTraces: axis '${axis}' varies but no input has it among its dims`);
      }
    }
  }

  /** Writes the shape vector `name`: `values` (the first trace's) where `dims` is null, computed elsewhere. */
  vector(name: string, values: readonly number[], dims: readonly (Monomial | null)[]): void {
    const pieces: string[] = [];
    let fixed: number[] = [];
    dims.forEach((m, i) => {
      if (!m) {
        fixed.push(values[i] as number);
        return;
      }
      if (fixed.length) pieces.push(this.#constant(fixed));
      fixed = [];
      pieces.push(this.#monomial(m));
    });
    if (fixed.length) pieces.push(this.#constant(fixed));
    this.nodes.push(this.#node('Concat', pieces, { axis: 0 }, name));
  }

  #monomial(m: Monomial): string {
    const key = formatMonomial(m);
    const cached = this.#dims.get(key);
    if (cached) return cached;
    const factors: string[] = [];
    for (const [axis, e] of m.exps) for (let i = 0; i < e; i++) factors.push(this.#axis(axis));
    if (m.num !== 1 || factors.length === 0) factors.push(this.#constant([m.num]));
    let acc = factors[0] as string;
    for (const f of factors.slice(1)) acc = this.#emit('Mul', [acc, f]);
    if (m.den !== 1) acc = this.#emit('Div', [acc, this.#constant([m.den])]);
    for (const [axis, e] of m.exps)
      for (let i = 0; i < -e; i++) acc = this.#emit('Div', [acc, this.#axis(axis)]);
    this.#dims.set(key, acc);
    return acc;
  }

  /** The size of `axis` as a 1-element int64 vector, read from the input that has it. */
  #axis(axis: string): string {
    const key = `axis:${axis}`;
    const cached = this.#dims.get(key);
    if (cached) return cached;
    const at = this.#axisAt.get(axis) as { input: string; axis: number };
    const out = this.#emit('Shape', [at.input], { start: at.axis, end: at.axis + 1 });
    this.#dims.set(key, out);
    return out;
  }

  #constant(values: readonly number[]): string {
    const name = `shape_const_${this.#counter++}`;
    const data = BigInt64Array.from(values, BigInt);
    this.constants.push({ name, dtype: 'int64', dims: [values.length], data });
    return name;
  }

  #emit(op: string, inputs: readonly string[], attrs?: NodeSpec['attrs']): string {
    const out = `shape_${this.#counter++}`;
    this.nodes.push(this.#node(op, inputs, attrs, out));
    return out;
  }

  #node(op: string, inputs: readonly string[], attrs: NodeSpec['attrs'], out: string): NodeSpec {
    return { op, inputs, outputs: [out], attrs, name: `${op}_${out}` };
  }
}

/** Equal dtype, dims and bytes (the same weight seen twice is found without reading it). */
function sameTensor(x: TensorValue, y: TensorValue): boolean {
  if (x.dtype !== y.dtype || x.dims.length !== y.dims.length || x.dims.some((d, i) => d !== y.dims[i])) {
    return false;
  }
  const bx = new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength);
  const by = new Uint8Array(y.data.buffer, y.data.byteOffset, y.data.byteLength);
  if (bx.buffer === by.buffer && bx.byteOffset === by.byteOffset && bx.byteLength === by.byteLength)
    return true;
  return bx.byteLength === by.byteLength && bx.every((v, i) => v === by[i]);
}

function consumersOf(nodes: readonly NodeSpec[]): Map<string, { node: NodeSpec; index: number }[]> {
  const out = new Map<string, { node: NodeSpec; index: number }[]>();
  for (const node of nodes) {
    node.inputs.forEach((x, index) => {
      if (!x) return;
      const list = out.get(x) ?? [];
      list.push({ node, index });
      out.set(x, list);
    });
  }
  return out;
}

/** Both traces took the same path: the same nodes, wired the same way, with the same attributes. */
function checkSameStructure(a: GraphSpec, b: GraphSpec): void {
  const sig = (n: NodeSpec) =>
    JSON.stringify([n.op, n.domain ?? '', n.inputs, n.outputs, n.attrs ?? {}], (_, v) =>
      ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<number>) : v,
    );
  const count = Math.max(a.nodes.length, b.nodes.length);
  for (let i = 0; i < count; i++) {
    const [na, nb] = [a.nodes[i], b.nodes[i]];
    if (!na || !nb || sig(na) !== sig(nb)) {
      throw new Error(
        `trace: the two traces differ at node ${i} (${na?.name ?? 'none'} vs ${nb?.name ?? 'none'}): the ` +
          'forward takes a different path at another size, so it cannot be exported with symbolic axes',
      );
    }
  }
}
