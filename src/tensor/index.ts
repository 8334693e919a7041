// The tensor layer: Tensor, eager ops (also chained on Tensor), autograd.
export * from './autograd.js';
export * from './ops/index.js';
export * from './tensor.js';
export * from './trace.js';
