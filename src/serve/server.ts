// `attnkit serve`'s HTTP server (fastify): the JSON job API, server-sent progress, the jobs' files and the
// explorer page. Requests are checked against JSON schemas before anything runs; a request names models and
// files from fixed lists, never a path, so nothing outside the server's output folder can be read or written.

import { randomUUID } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { HttpError, JOB_FILES, type JobBoard, type JobEvent, type JobQueue, type JobRecord } from './jobs.js';
import { checkSpec, JOB_KINDS, type JobSpec, jobSchema, LIMITS } from './spec.js';

/** What `buildServer` serves: the job board, the queue jobs go to, the model names and the explorer page. */
export interface ServerOptions {
  board: JobBoard;
  queue: JobQueue;
  /** The model names a request may choose (the first is the default). */
  models: readonly string[];
  /** The bundled explorer page (index.html, explorer.js); left out, the server offers the API alone. */
  explorerDir?: string;
  /** Log requests (fastify's logger). */
  logger?: boolean;
}

const JOB_ID = { type: 'string', pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' };
const ID_PARAMS = { type: 'object', required: ['id'], properties: { id: JOB_ID } };

interface ValidationIssue {
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/** A schema error as one sentence naming the field: `body/steps must be <= 100`, `body/colour is not a field`. */
function describeIssue(context: string, e: ValidationIssue): string {
  const at = `${context}${e.instancePath}`;
  if (e.params.additionalProperty !== undefined)
    return `${at}/${String(e.params.additionalProperty)} is not a field of this request; leave it out`;
  if (e.params.missingProperty !== undefined) return `${at}/${String(e.params.missingProperty)} is required`;
  if (Array.isArray(e.params.allowedValues))
    return `${at} must be one of: ${(e.params.allowedValues as unknown[]).join(', ')}`;
  return `${at} ${e.message ?? 'is not valid'}`;
}

/** The fastify app; `listen` is the caller's. */
export function buildServer(o: ServerOptions): FastifyInstance {
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: LIMITS.bodyBytes,
    // wrong types are errors, not coerced; unknown fields are errors, not dropped
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    schemaErrorFormatter: (errors, context) =>
      new Error(describeIssue(context, errors[0] as ValidationIssue)),
  });

  app.setErrorHandler((err: FastifyError, _req, reply) => {
    const status = err.statusCode ?? 500;
    const message =
      err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
        ? `the request body is over ${LIMITS.bodyBytes} bytes; send a smaller request`
        : err.message;
    if (status >= 500) app.log.error(err);
    return reply.code(status).send({ error: message });
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ error: `no route ${req.method} ${req.url.slice(0, 200)}; see docs/serve.md` }),
  );

  app.get('/api/health', async () => ({ ok: true, models: o.models, jobs: o.board.counts() }));

  for (const kind of JOB_KINDS) {
    app.post(`/api/jobs/${kind}`, { schema: { body: jobSchema(kind, o.models) } }, async (req, reply) => {
      const spec = { ...(req.body as object), kind } as JobSpec;
      const problem = checkSpec(spec);
      if (problem) return reply.code(400).send({ error: problem });
      const job: JobRecord = {
        id: randomUUID(),
        kind,
        status: 'queued',
        spec: { ...spec, model: spec.model ?? o.models[0] },
        createdAt: Date.now(),
        step: 0,
        files: [],
        meta: {},
      };
      await o.queue.submit(job);
      return reply.code(202).send(job);
    });
  }

  app.get('/api/jobs/:id', { schema: { params: ID_PARAMS } }, async (req) => job(o.board, req.params));

  app.delete('/api/jobs/:id', { schema: { params: ID_PARAMS } }, async (req, reply) => {
    const j = job(o.board, req.params);
    if (j.finishedAt !== undefined)
      return reply
        .code(409)
        .send({ error: `job ${j.id} has already finished (${j.status}); nothing to cancel` });
    await o.queue.cancel(j.id);
    return o.board.get(j.id);
  });

  app.get(
    '/api/jobs/:id/files/:name',
    {
      schema: {
        params: {
          type: 'object',
          required: ['id', 'name'],
          properties: { id: JOB_ID, name: { type: 'string', enum: [...JOB_FILES] } },
        },
      },
    },
    async (req, reply) => {
      const j = job(o.board, req.params);
      const { name } = req.params as { name: string };
      if (!j.files.includes(name))
        throw new HttpError(
          404,
          `job ${j.id} has no file ${name} (${j.status}; files: ${j.files.join(', ') || 'none yet'})`,
        );
      const type = name.endsWith('.json') ? 'application/json' : 'image/png';
      return reply.type(type).send(createReadStream(join(o.board.outDir, j.id, name)));
    },
  );

  // server-sent events: the job's record now, then after every change until it finishes
  app.get('/api/jobs/:id/events', { schema: { params: ID_PARAMS } }, (req, reply) => {
    const j = job(o.board, req.params);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    const send = (e: JobEvent) => {
      res.write(
        `event: ${e.job.finishedAt === undefined ? 'progress' : e.job.status}\ndata: ${JSON.stringify(e)}\n\n`,
      );
      if (e.job.finishedAt !== undefined) {
        stop();
        res.end();
      }
    };
    const stop = o.board.listen(j.id, send);
    res.on('close', stop); // the client went away
    send({ job: { ...j } });
  });

  if (o.explorerDir && existsSync(join(o.explorerDir, 'index.html')))
    app.register(fastifyStatic, { root: o.explorerDir, index: 'index.html', wildcard: false });
  else
    app.get('/', async (_req, reply) =>
      reply
        .type('text/plain')
        .send('attnkit serve: the explorer page is not built (npm run build); the JSON API is under /api/'),
    );
  return app;
}

function job(board: JobBoard, params: unknown): JobRecord {
  const { id } = params as { id: string };
  const j = board.get(id);
  if (!j) throw new HttpError(404, `no job ${id} on this server (jobs are kept while the server runs)`);
  return j;
}
