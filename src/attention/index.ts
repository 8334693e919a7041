export * from './attention.js';
export * from './call.js';
export * from './functions.js';
export * from './hooks.js';
export * from './joint-view.js';
export * from './tokens.js';
