// Moving Shapes: clips of the Shapes world with straight-line motion, their captions and the clip metrics.
export * from './caption.js';
export * from './clip.js';
export * from './edit.js';
export * from './measure.js';
export * from './metrics.js';
