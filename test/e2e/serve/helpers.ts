// Shared by the serve tests: a server on a free loopback port over a given queue, JSON requests, and a job's
// server-sent events read to the end.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUILTIN_MODEL } from '../../../src/cli/models.js';
import { JobBoard, type JobQueue, type JobRecord } from '../../../src/serve/jobs.js';
import { buildServer } from '../../../src/serve/server.js';

export const MODELS = { 'shapes-v1': BUILTIN_MODEL };

export interface TestServer {
  url: string;
  board: JobBoard;
  queue: JobQueue;
  close: () => Promise<void>;
}

/** A server on 127.0.0.1:<free port> whose queue `makeQueue` builds over its board. */
export async function startServer(
  makeQueue: (board: JobBoard) => JobQueue | Promise<JobQueue>,
  explorerDir?: string,
): Promise<TestServer> {
  const out = mkdtempSync(join(tmpdir(), 'attnkit-serve-test-'));
  const board = new JobBoard(out);
  const queue = await makeQueue(board);
  const app = buildServer({ board, queue, models: Object.keys(MODELS), explorerDir });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return {
    url,
    board,
    queue,
    close: async () => {
      await queue.close();
      await app.close();
      rmSync(out, { recursive: true, force: true });
    },
  };
}

export async function post(
  url: string,
  body: unknown,
): Promise<{ status: number; json: { id: string; error: string } }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

export interface SseEvent {
  type: string;
  job: JobRecord;
  preview?: string;
}

/** Every server-sent event of a job until the stream ends (the job finished); `onEvent` sees each as it comes. */
export async function followJob(
  base: string,
  id: string,
  onEvent: (e: SseEvent) => void = () => {},
): Promise<SseEvent[]> {
  const res = await fetch(`${base}/api/jobs/${id}/events`);
  const events: SseEvent[] = [];
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let at = buffer.indexOf('\n\n');
    while (at >= 0) {
      const block = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      const type = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
      const data = JSON.parse(/^data: (.*)$/m.exec(block)![1]!) as Omit<SseEvent, 'type'>;
      const e = { type, ...data };
      events.push(e);
      onEvent(e);
      at = buffer.indexOf('\n\n');
    }
  }
  return events;
}

/** Polls until `check` holds (every 50 ms, at most `ms`). */
export async function until(check: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!check()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
