// The efficient-attention options of `attnkit generate`: the attention function, token merging and block
// caching, as a user of diffusers + xformers, tomesd or DeepCache switches them on for one run.

import type { Command } from 'commander';
import type { Controller } from '../attention/index.js';
import { BlockCaching } from '../methods/application/block-caching.js';
import { TokenMerging } from '../methods/application/token-merging.js';
import {
  agentAttention,
  builtInAttentionFunctions,
  useAttention,
  windowAttention,
} from '../methods/function/index.js';
import { float, int } from './args.js';

export interface EfficiencyFlags {
  attention?: string;
  tome?: number;
  blockCache?: number;
}

/** Attention functions by name; agent and window attention act on self-attention layers with a grid. */
const PER_CALL = { agent: agentAttention, window: windowAttention } as const;
export const ATTENTION_NAMES = [
  'softmax',
  'flash',
  'chunked',
  'sliced',
  'linear-elu',
  'linear-relu',
  'agent',
  'window',
];

export function addEfficiencyOptions(cmd: Command): Command {
  return cmd
    .option('--attention <fn>', `attention function: ${ATTENTION_NAMES.join(' | ')} (default: flash)`)
    .option(
      '--tome <ratio>',
      'token merging on self-attention (tomesd semantics), ratio in [0, 1)',
      float('--tome'),
    )
    .option(
      '--block-cache <n>',
      'reuse every attention block for n − 1 of each n steps (block caching; 1 = off)',
      int('--block-cache'),
    );
}

/** The controllers the flags ask for (none for the defaults). */
export function efficiencyControllers(f: EfficiencyFlags): Controller[] {
  const controllers: Controller[] = [];
  if (f.attention !== undefined) {
    if (!ATTENTION_NAMES.includes(f.attention))
      throw new Error(`--attention: unknown function '${f.attention}'; known: ${ATTENTION_NAMES.join(', ')}`);
    const make = PER_CALL[f.attention as keyof typeof PER_CALL];
    controllers.push(useAttention(make ? make() : builtInAttentionFunctions().get(f.attention)));
  }
  if (f.tome !== undefined) {
    if (!(f.tome >= 0 && f.tome < 1)) throw new Error(`--tome: the ratio must be in [0, 1), got ${f.tome}`);
    controllers.push(new TokenMerging({ ratio: f.tome }));
  }
  if (f.blockCache !== undefined) {
    const n = f.blockCache;
    if (n < 1) throw new Error(`--block-cache: expected a step interval ≥ 1, got ${n}`);
    if (n > 1) controllers.push(new BlockCaching({ plan: (c) => c.step % n !== 0 }));
  }
  return controllers;
}
