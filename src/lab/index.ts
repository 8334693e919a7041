// The Shapes lab's public entry: the Shapes world (scenes, captions, rendering, ShapesEval's detector), the
// held-out seed split, ShapesEval runs of a model, the edit measurements, their metrics and their reports.

export * from './jobs.js';
export * from './measure/index.js';
export * from './metrics.js';
export * from './motion/index.js';
export * from './report.js';
export * from './seeds.js';
export * from './shapes/index.js';
export * from './shapes-eval.js';
export * from './train-data.js';
