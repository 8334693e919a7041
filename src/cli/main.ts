#!/usr/bin/env node
// The `attnkit` command. It re-launches itself once with glibc's allocator tuned
// (src/process/malloc-tuning.ts) before loading anything heavy, then runs the parser.

import { relaunchWithMallocTuning } from '../process/malloc-tuning.js';

await relaunchWithMallocTuning();
await import('./program.js');
