// The Shapes world: scenes sampled by seed, rendered with ground-truth masks, captioned in a small grammar,
// and ShapesEval, the scorer that reads an image against a prompt.
export * from './background.js';
export * from './caption.js';
export * from './detect.js';
export * from './eval.js';
export * from './geometry.js';
export * from './grid.js';
export * from './masks.js';
export * from './palette.js';
export * from './render.js';
export * from './report.js';
export * from './scene.js';
export * from './spec.js';
