// Parameter initialisation as PyTorch's layer constructors do it (torch.nn.init), seeded by a Philox
// Generator so that a seed gives the same model on every machine.
//
//   Linear, Conv2d   weight ~ U(−b, b), b = gain·√(3 / fan_in), gain = √(2 / (1 + a²)), a = √5
//                    (kaiming_uniform_(a=√5), which works out to b = 1/√fan_in)
//                    bias   ~ U(−1/√fan_in, 1/√fan_in)
//   GroupNorm, LayerNorm  weight = 1, bias = 0
//   Embedding        weight ~ N(0, std²), std = 1 (PyTorch) or 0.02 (CLIP's _init_weights)

import type { Generator } from '../tensor/random.js';
import { type Shape, sizeOf, Tensor } from '../tensor/tensor.js';
import { Conv2d, Embedding, GroupNorm, LayerNorm, Linear } from './layers.js';
import { type Module, Parameter } from './module.js';

/** U(−bound, bound) of `shape`. */
export function uniform(gen: Generator, shape: Shape, bound: number): Tensor {
  const u = gen.rand(shape).data as Float32Array;
  return new Tensor(
    Float32Array.from(u, (x) => (2 * x - 1) * bound),
    shape,
  );
}

/** N(0, std²) of `shape`. */
export function normal(gen: Generator, shape: Shape, std: number): Tensor {
  const z = gen.randn(shape).data as Float32Array;
  return new Tensor(
    Float32Array.from(z, (x) => x * std),
    shape,
  );
}

/** fan_in of a weight (out, in, …kernel): in · ∏kernel. */
export function fanIn(shape: Shape): number {
  if (shape.length < 2)
    throw new Error(`fanIn: a weight needs at least 2 dimensions, got [${shape.join(', ')}]`);
  return sizeOf(shape.slice(1));
}

/** torch.nn.init.kaiming_uniform_(w, a): bound = √(2 / (1 + a²)) · √(3 / fan_in). */
export function kaimingUniform(gen: Generator, shape: Shape, a = Math.sqrt(5)): Tensor {
  const gain = Math.sqrt(2 / (1 + a * a));
  return uniform(gen, shape, gain * Math.sqrt(3 / fanIn(shape)));
}

/** Options of parameter initialisation. */
export interface InitOptions {
  /** Standard deviation of Embedding weights: 1 as PyTorch, 0.02 as CLIP. Default 1. */
  embeddingStd?: number;
}

function set(p: Parameter, t: Tensor): void {
  p.value = t;
}

/**
 * Initialises every parameter of `module` in declaration order (so a seed gives one model), the way
 * PyTorch's constructors would. Modules other than the standard layers must not own parameters directly.
 */
export function initParameters(module: Module, gen: Generator, opts: InitOptions = {}): void {
  for (const [path, m] of module.namedModules()) {
    if (m instanceof Linear || m instanceof Conv2d) {
      set(m.weight, kaimingUniform(gen, m.weight.shape));
      if (m.bias) set(m.bias, uniform(gen, m.bias.shape, 1 / Math.sqrt(fanIn(m.weight.shape))));
    } else if (m instanceof GroupNorm || m instanceof LayerNorm) {
      set(m.weight, Tensor.ones(m.weight.shape));
      set(m.bias, Tensor.zeros(m.bias.shape));
    } else if (m instanceof Embedding) {
      set(m.weight, normal(gen, m.weight.shape, opts.embeddingStd ?? 1));
    } else {
      for (const [name, child] of m.namedChildren()) {
        if (child instanceof Parameter)
          throw new Error(`initParameters: no init rule for the parameter ${path ? `${path}.` : ''}${name}`);
      }
    }
  }
}

/** Sets a layer's weight and bias to zero (output convolutions of residual branches, as in ADM/SD). */
export function zeroInit(m: Linear | Conv2d): void {
  set(m.weight, Tensor.zeros(m.weight.shape));
  if (m.bias) set(m.bias, Tensor.zeros(m.bias.shape));
}
