// attnkit worker --redis <url> — runs jobs that `attnkit serve --redis <url>` enqueues (BullMQ), one at a time.

import type { Command } from 'commander';
import { runWorker } from '../serve/bull-queue.js';
import { intIn } from './args.js';
import { THREADS } from './limits.js';
import { log } from './options.js';
import { servedModels } from './serve.js';

interface WorkerFlags {
  redis: string;
  model?: string[];
  lockMs: number;
  threads?: number;
}

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('run the jobs `attnkit serve --redis` enqueues, from a BullMQ queue in Redis')
    .requiredOption('--redis <url>', 'the Redis the server enqueues on (redis://host:port)')
    .option('-m, --model <dir...>', 'the model folders the server was given (the same names)')
    .option(
      '--lock-ms <ms>',
      "a job's lock: when this worker dies, its job goes to another worker this long after",
      intIn('--lock-ms', { min: 1000, max: 600_000 }),
      30_000,
    )
    .option(
      '--threads <n>',
      'onnxruntime threads of this worker (default: all cores; give 1 each to workers sharing a machine)',
      intIn('--threads', THREADS),
    )
    .action(async (f: WorkerFlags) => {
      const models = servedModels(f.model);
      const worker = await runWorker(f.redis, models, {
        lockDuration: f.lockMs,
        threads: f.threads,
        onActive: (id) => log(`running ${id}`),
        onCompleted: (id) => log(`completed ${id}`),
      });
      const stop = async () => {
        await worker.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      log(
        `attnkit worker: taking jobs from ${f.redis} (pid ${process.pid}); models: ${Object.keys(models).join(', ')}`,
      );
    });
}
