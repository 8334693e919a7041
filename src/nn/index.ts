export * from './layers.js';
export * from './module.js';
export * from './optim.js';
export * from './init.js';
