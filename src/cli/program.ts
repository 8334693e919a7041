// The `attnkit` command's parser and subcommands (main.ts launches it).

import { Command } from 'commander';
import { registerBench } from './bench.js';
import { registerCompose } from './compose.js';
import { registerEdit } from './edit.js';
import { registerEval } from './eval.js';
import { registerExport } from './export.js';
import { registerGenerate } from './generate.js';
import { registerMaps } from './maps.js';
import { registerMeasure } from './measure.js';
import { registerSegment } from './segment.js';
import { registerServe } from './serve.js';
import { registerTrain } from './train.js';
import { registerVideo, registerVideoEval } from './video.js';
import { registerWorker } from './worker.js';

const program = new Command()
  .name('attnkit')
  .description('Stable Diffusion in Node.js with every attention layer open to change')
  .showHelpAfterError();

registerGenerate(program);
registerBench(program);
registerExport(program);
registerEdit(program);
registerCompose(program);
registerMaps(program);
registerEval(program);
registerMeasure(program);
registerSegment(program);
registerTrain(program);
registerVideo(program);
registerVideoEval(program);
registerServe(program);
registerWorker(program);

program.parseAsync(process.argv).catch((e: unknown) => {
  process.stderr.write(`attnkit: ${(e as Error).message}\n`);
  process.exit(1);
});
