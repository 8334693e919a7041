// attnkit serve — the attention explorer in the browser and a JSON job API (src/serve/). Jobs run in this
// process's queue with one model worker, or with --redis on `attnkit worker` processes through BullMQ.

import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { BullQueue } from '../serve/bull-queue.js';
import { ensureExplorer } from '../serve/explorer-bundle.js';
import { JobBoard, type JobQueue } from '../serve/jobs.js';
import { LocalQueue } from '../serve/local-queue.js';
import { buildServer } from '../serve/server.js';
import { intIn } from './args.js';
import { packageRoot, resolveModel } from './models.js';
import { log } from './options.js';

interface ServeFlags {
  model?: string[];
  port: number;
  host: string;
  out?: string;
  queue: number;
  redis?: string;
}

/** The models a request may name: the built-in one, then each --model folder by its folder name. */
export function servedModels(folders: readonly string[] = []): Record<string, string> {
  const builtIn = resolveModel(undefined, log);
  const models: Record<string, string> = { [basename(builtIn)]: builtIn };
  for (const f of folders) {
    const dir = resolve(f);
    const name = basename(dir);
    if (!existsSync(join(dir, 'model_index.json')))
      throw new Error(
        `--model ${f}: not a diffusers folder (no model_index.json); serve takes model folders`,
      );
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name))
      throw new Error(
        `--model ${f}: its folder name '${name}' is the model's name in requests; rename it to letters, digits, . _ -`,
      );
    if (models[name])
      throw new Error(`--model ${f}: two models are named '${name}'; give the folders different names`);
    models[name] = dir;
  }
  return models;
}

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('the attention explorer in the browser and a JSON job API (docs/serve.md)')
    .option('-m, --model <dir...>', 'more diffusers model folders, named in requests by folder name')
    .option('--port <n>', 'TCP port', intIn('--port', { min: 0, max: 65_535 }), 8080)
    .option(
      '--host <addr>',
      'address to listen on (loopback by default: the API runs models for anyone who reaches it)',
      '127.0.0.1',
    )
    .option(
      '--out <dir>',
      "the server's output folder (default: a new folder under the system's temp folder)",
    )
    .option(
      '--queue <n>',
      'jobs that may wait before requests get 429',
      intIn('--queue', { min: 1, max: 10_000 }),
      16,
    )
    .option('--redis <url>', 'enqueue jobs on BullMQ at this Redis (redis://host:port) for `attnkit worker`s')
    .action(async (f: ServeFlags) => {
      const models = servedModels(f.model);
      const out = f.out ? resolve(f.out) : mkdtempSync(join(tmpdir(), 'attnkit-serve-'));
      const board = new JobBoard(out);
      const queue: JobQueue = f.redis
        ? await BullQueue.connect(board, f.redis, f.queue)
        : new LocalQueue(board, models, f.queue);
      const explorerDir = await ensureExplorer(join(packageRoot, 'dist', 'explorer'), log);
      const app = buildServer({ board, queue, models: Object.keys(models), explorerDir });
      const stop = async () => {
        await queue.close();
        await app.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const address = await app.listen({ port: f.port, host: f.host });
      if (!['127.0.0.1', '::1', 'localhost'].includes(f.host))
        log(`note: listening on ${f.host}, not loopback: anyone who reaches it can run jobs`);
      log(
        `attnkit serve: the explorer at ${address.replace('[::1]', 'localhost')}/, the API under /api/ (docs/serve.md)`,
      );
      log(
        `models: ${Object.keys(models).join(', ')}; jobs ${f.redis ? `on BullMQ at ${f.redis}` : 'in this process'}; files in ${out}`,
      );
    });
}
