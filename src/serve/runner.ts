// The model worker: a child process that loads models by name and runs one job at a time, talking to its parent
// over the IPC channel. Generation is synchronous (kernels run on the main thread only, docs/design.md), so it
// cannot share a process with the HTTP server: the server's event loop must keep turning to stream progress,
// and a BullMQ worker's to renew its job's lock. Cancelling a running job ends this process; the parent starts
// another. Started by RunnerClient (runner-client.ts), never by hand.

import { setThreads } from '../kernels/ort.js';
import { StableDiffusion } from '../pipelines/stable-diffusion.js';
import { runJob } from './run-job.js';
import type { JobSpec } from './spec.js';

/** Parent → runner. */
export interface RunMessage {
  type: 'run';
  id: string;
  spec: JobSpec;
}

/** Runner → parent (binary data as base64: the IPC channel carries JSON). */
export type RunnerMessage =
  | { type: 'ready' }
  | { type: 'progress'; id: string; step: number; numSteps: number; preview?: string }
  | { type: 'done'; id: string; files: Record<string, string>; meta: Record<string, unknown> }
  | { type: 'failed'; id: string; error: string };

function main(): void {
  const send = process.send?.bind(process);
  if (!send)
    throw new Error('src/serve/runner is a child process of attnkit serve / worker; it needs an IPC channel');
  const models = JSON.parse(process.env.ATTNKIT_SERVE_MODELS ?? '{}') as Record<string, string>;
  if (process.env.ATTNKIT_SERVE_THREADS) setThreads(Number(process.env.ATTNKIT_SERVE_THREADS));
  const loaded = new Map<string, StableDiffusion>();
  const model = (name: string): StableDiffusion => {
    const dir = models[name];
    if (!dir) throw new Error(`unknown model '${name}'; known: ${Object.keys(models).join(', ')}`);
    let sd = loaded.get(name);
    if (!sd) {
      sd = StableDiffusion.fromPretrained(dir);
      loaded.set(name, sd);
    }
    return sd;
  };
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
  process.on('message', (m: RunMessage) => {
    if (m.type !== 'run') return;
    try {
      const sd = model(m.spec.model ?? Object.keys(models)[0]!);
      const out = runJob(sd, m.spec, (p) =>
        send({
          type: 'progress',
          id: m.id,
          step: p.step,
          numSteps: p.numSteps,
          ...(p.preview ? { preview: b64(p.preview) } : {}),
        } satisfies RunnerMessage),
      );
      const files = Object.fromEntries(Object.entries(out.files).map(([k, v]) => [k, b64(v)]));
      send({ type: 'done', id: m.id, files, meta: out.meta } satisfies RunnerMessage);
    } catch (e) {
      send({ type: 'failed', id: m.id, error: (e as Error).message } satisfies RunnerMessage);
    }
  });
  // the parent is gone (ended, or killed): nothing will read our results
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' } satisfies RunnerMessage);
}

main();
