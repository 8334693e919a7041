// Reverse-mode automatic differentiation over the eager ops.
//
// An op that has a backward rule calls `record(out, op, inputs, backward)`. When gradients are enabled and
// some input needs a gradient, the output keeps a `GradNode`; `backward(loss)` walks those nodes in reverse
// topological order and accumulates gradients. Backward rules are written with forward ops, so they run on
// the same kernels. Inference code runs under `noGrad`, where nothing is recorded.

import { formatShape, type GradNode, Tensor } from './tensor.js';

let enabled = true;

/** Whether ops record the autograd graph now (false inside `noGrad`). */
export function isGradEnabled(): boolean {
  return enabled;
}

/** Runs `fn` with gradient recording switched to `on`, restored afterwards. */
function withGrad<T>(on: boolean, fn: () => T): T {
  const prev = enabled;
  enabled = on;
  try {
    return fn();
  } finally {
    enabled = prev;
  }
}

/** Runs `fn` with gradient recording off (inference). */
export function noGrad<T>(fn: () => T): T {
  return withGrad(false, fn);
}

/** Runs `fn` with gradient recording on. */
export function enableGrad<T>(fn: () => T): T {
  return withGrad(true, fn);
}

/** True when `t` takes part in gradient computation. */
export function tracksGrad(t: Tensor): boolean {
  return t.requiresGrad || t.node !== null;
}

/** True when an op on these inputs would be recorded: recording is on and an input tracks gradients. */
export function recordsGrad(...inputs: readonly (Tensor | null | undefined)[]): boolean {
  return enabled && inputs.some((t) => !!t && tracksGrad(t));
}

/** Attaches a backward rule to `out` if recording is on and any input tracks gradients. Returns `out`. */
export function record(
  out: Tensor,
  op: string,
  inputs: readonly Tensor[],
  backward: GradNode['backward'],
): Tensor {
  if (enabled && inputs.some(tracksGrad)) out.node = { op, inputs, backward };
  return out;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // iterative DFS: graphs of a UNet are deep enough to overflow a recursive one
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1] as [Tensor, number];
    const [t, i] = top;
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const child = inputs[i] as Tensor;
      if (!seen.has(child) && tracksGrad(child)) {
        seen.add(child);
        stack.push([child, 0]);
      }
    } else {
      order.push(t);
      stack.pop();
    }
  }
  return order.reverse();
}

/**
 * Accumulates d(root)/d(leaf) into `.grad` of every leaf with `requiresGrad`. `root` must be a scalar
 * unless `gradOutput` is given. Backward rules run with recording off.
 */
export function backward(root: Tensor, gradOutput?: Tensor): void {
  if (!tracksGrad(root)) {
    throw new Error('backward: the tensor does not depend on any tensor with requiresGrad');
  }
  if (!gradOutput && root.size !== 1) {
    throw new Error(
      `backward: expected a scalar loss, got shape ${formatShape(root.shape)}; pass gradOutput`,
    );
  }
  const seed = gradOutput ?? Tensor.full(root.shape, 1);
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  noGrad(() => {
    for (const t of topoOrder(root)) {
      const g = grads.get(t);
      if (!g) continue;
      if (t.node) {
        const inputGrads = t.node.backward(g);
        t.node.inputs.forEach((x, i) => {
          const gi = inputGrads[i];
          if (!gi || !tracksGrad(x)) return;
          if (gi.shape.length !== x.shape.length || gi.shape.some((d, k) => d !== x.shape[k])) {
            throw new Error(
              `backward of ${t.node?.op}: gradient shape ${formatShape(gi.shape)} does not match input ` +
                `shape ${formatShape(x.shape)} (a bug in that op's backward rule)`,
            );
          }
          const prev = grads.get(x);
          grads.set(x, prev ? prev.add(gi) : gi);
        });
        grads.delete(t);
      }
      if (t.requiresGrad) t.grad = t.grad ? t.grad.add(g) : g;
    }
  });
}

/**
 * Functional form: returns d fn(...xs) / d xs for scalar-valued `fn`, without touching `.grad` of the
 * arguments' originals.
 */
export function grad(fn: (...xs: Tensor[]) => Tensor): (...xs: Tensor[]) => Tensor[] {
  return (...xs) => {
    const leaves = xs.map((x) => x.detach().requireGrad());
    const out = enableGrad(() => fn(...leaves));
    backward(out);
    return leaves.map((l) => l.grad ?? Tensor.zeros(l.shape));
  };
}
