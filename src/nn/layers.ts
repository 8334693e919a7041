// The standard layers, with PyTorch's parameter names and layouts.

import { conv2d, gather, groupNorm, layerNorm, linear, type Tensor } from '../tensor/index.js';
import { Module, Parameter } from './module.js';

/** A fully connected layer y = x·Wᵀ + b (torch.nn.Linear). */
export class Linear extends Module {
  weight: Parameter;
  bias?: Parameter;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean } = {},
  ) {
    super();
    this.weight = new Parameter([outFeatures, inFeatures]);
    if (opts.bias ?? true) this.bias = new Parameter([outFeatures]);
  }
  /** y = x·Wᵀ + b over the last axis. */
  forward(x: Tensor): Tensor {
    return linear(x, this.weight.value, this.bias?.value);
  }
}

/** A 2-D convolution over (B, C, H, W) (torch.nn.Conv2d). */
export class Conv2d extends Module {
  weight: Parameter;
  bias?: Parameter;
  readonly stride: number;
  readonly padding: number;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    opts: { stride?: number; padding?: number; bias?: boolean } = {},
  ) {
    super();
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.weight = new Parameter([outChannels, inChannels, kernelSize, kernelSize]);
    if (opts.bias ?? true) this.bias = new Parameter([outChannels]);
  }
  /** The convolution of x (B, C, H, W) with the layer's kernel and bias. */
  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight.value, this.bias?.value ?? null, {
      stride: this.stride,
      padding: this.padding,
    });
  }
}

/** A normalisation's learned per-channel scale and shift (PyTorch's `weight` and `bias`). */
abstract class AffineNorm extends Module {
  weight: Parameter;
  bias: Parameter;
  constructor(channels: number) {
    super();
    this.weight = new Parameter([channels]);
    this.bias = new Parameter([channels]);
  }
}

/** Group normalisation (Wu & He 2018) with a per-channel affine (torch.nn.GroupNorm). */
export class GroupNorm extends AffineNorm {
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
  ) {
    super(numChannels);
  }
  /** Group normalisation of x (B, C, …), then the per-channel scale and shift. */
  forward(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight.value, this.bias.value, this.eps);
  }
}

/** Layer normalisation (Ba et al. 2016) over the last axis with an affine (torch.nn.LayerNorm). */
export class LayerNorm extends AffineNorm {
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super(dim);
  }
  /** Layer normalisation of x over its last axis, then the scale and shift. */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight.value, this.bias.value, this.eps);
  }
}

/** A lookup table of vectors by id (torch.nn.Embedding). */
export class Embedding extends Module {
  weight: Parameter;
  constructor(
    readonly numEmbeddings: number,
    readonly dim: number,
  ) {
    super();
    this.weight = new Parameter([numEmbeddings, dim]);
  }
  /** ids: int64 or int32 tensor of any shape → (…ids, dim). */
  forward(ids: Tensor): Tensor {
    return gather(this.weight.value, ids, 0);
  }
}
