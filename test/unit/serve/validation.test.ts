// attnkit serve's request validation: 30 malformed requests (wrong types, huge sizes, path-like model names and
// file names, oversized and broken bodies, unknown fields) each get a 4xx whose message names the problem, and
// the server keeps serving. Nothing here reaches the model worker: a refused request queues nothing.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { JobBoard, type JobQueue, type JobRecord } from '../../../src/serve/jobs.js';
import { buildServer } from '../../../src/serve/server.js';

const out = mkdtempSync(join(tmpdir(), 'attnkit-serve-validation-'));
const board = new JobBoard(out);
const submitted: JobRecord[] = [];
// a queue that only records: validation is what is under test
const queue: JobQueue = {
  submit: async (j) => {
    board.add(j);
    submitted.push(j);
  },
  cancel: async () => false,
  close: async () => {},
};
const app = buildServer({ board, queue, models: ['shapes-v1', 'tiny'] });
after(async () => {
  await app.close();
  rmSync(out, { recursive: true, force: true });
});

const ok = { prompt: 'a red circle' };
const id = '00000000-0000-4000-8000-000000000000';

/** [what, method, url, body (object → JSON; string → sent as is), status, words the message must contain] */
const CASES: [string, 'POST' | 'GET' | 'DELETE', string, unknown, number, RegExp][] = [
  ['prompt a number', 'POST', '/api/jobs/generate', { prompt: 5 }, 400, /body\/prompt must be string/],
  ['prompt missing', 'POST', '/api/jobs/generate', {}, 400, /body\/prompt is required/],
  [
    'prompt empty',
    'POST',
    '/api/jobs/generate',
    { prompt: '' },
    400,
    /body\/prompt must NOT have fewer than 1/,
  ],
  [
    'prompt huge',
    'POST',
    '/api/jobs/generate',
    { prompt: 'x'.repeat(401) },
    400,
    /body\/prompt must NOT have more than 400/,
  ],
  [
    'steps a string',
    'POST',
    '/api/jobs/generate',
    { ...ok, steps: '10' },
    400,
    /body\/steps must be integer/,
  ],
  ['steps huge', 'POST', '/api/jobs/generate', { ...ok, steps: 1e9 }, 400, /body\/steps must be <= 100/],
  ['steps zero', 'POST', '/api/jobs/generate', { ...ok, steps: 0 }, 400, /body\/steps must be >= 1/],
  [
    'steps fractional',
    'POST',
    '/api/jobs/generate',
    { ...ok, steps: 2.5 },
    400,
    /body\/steps must be integer/,
  ],
  ['width huge', 'POST', '/api/jobs/generate', { ...ok, width: 1 << 20 }, 400, /body\/width must be <= 1024/],
  [
    'width not a multiple of 8',
    'POST',
    '/api/jobs/generate',
    { ...ok, width: 63 },
    400,
    /body\/width must be multiple of 8/,
  ],
  ['seed negative', 'POST', '/api/jobs/generate', { ...ok, seed: -1 }, 400, /body\/seed must be >= 0/],
  [
    'guidance null',
    'POST',
    '/api/jobs/generate',
    { ...ok, guidance: null },
    400,
    /body\/guidance must be number/,
  ],
  [
    'model a path',
    'POST',
    '/api/jobs/generate',
    { ...ok, model: '../../etc' },
    400,
    /body\/model must be one of: shapes-v1, tiny/,
  ],
  [
    'model an absolute path',
    'POST',
    '/api/jobs/generate',
    { ...ok, model: '/home/x/model' },
    400,
    /body\/model must be one of/,
  ],
  [
    'unknown field',
    'POST',
    '/api/jobs/generate',
    { ...ok, out: '/tmp/x.png' },
    400,
    /body\/out is not a field/,
  ],
  [
    'attention unknown',
    'POST',
    '/api/jobs/generate',
    { ...ok, attention: 'magic' },
    400,
    /body\/attention must be one of: softmax/,
  ],
  ['tome 1', 'POST', '/api/jobs/generate', { ...ok, tome: 1 }, 400, /body\/tome must be < 1/],
  [
    'blockCache huge',
    'POST',
    '/api/jobs/generate',
    { ...ok, blockCache: 1000 },
    400,
    /body\/blockCache must be <= 50/,
  ],
  ['body an array', 'POST', '/api/jobs/generate', [ok], 400, /body must be object/],
  ['body not JSON', 'POST', '/api/jobs/generate', '{"prompt": ', 400, /JSON/],
  [
    'body over the limit',
    'POST',
    '/api/jobs/generate',
    { prompt: 'y'.repeat(70_000) },
    413,
    /over 65536 bytes/,
  ],
  [
    '__proto__ in the body',
    'POST',
    '/api/jobs/generate',
    '{"prompt":"a","__proto__":{"x":1}}',
    400,
    /Body is not valid JSON/,
  ],
  [
    'maps: mapSteps past the steps',
    'POST',
    '/api/jobs/maps',
    { ...ok, steps: 5, mapSteps: [2, 9] },
    400,
    /body\/mapSteps \[2, 9\) is not a range of the 5 steps/,
  ],
  [
    'maps: resolutions too many',
    'POST',
    '/api/jobs/maps',
    { ...ok, resolutions: Array(9).fill(8) },
    400,
    /body\/resolutions must NOT have more than 8/,
  ],
  [
    'maps: a place that is not a UNet place',
    'POST',
    '/api/jobs/maps',
    { ...ok, places: ['left'] },
    400,
    /body\/places\/0 must be one of: down, mid, up/,
  ],
  [
    'maps: places empty',
    'POST',
    '/api/jobs/maps',
    { ...ok, places: [] },
    400,
    /body\/places must NOT have fewer than 1/,
  ],
  ['maps: head negative', 'POST', '/api/jobs/maps', { ...ok, head: -1 }, 400, /body\/head must be >= 0/],
  [
    'maps: head a string',
    'POST',
    '/api/jobs/maps',
    { ...ok, head: 'mean' },
    400,
    /body\/head must be integer/,
  ],
  [
    'maps: a layer named by a path',
    'POST',
    '/api/jobs/maps',
    { ...ok, layers: ['../../etc/passwd'] },
    400,
    /body\/layers\/0 must match pattern/,
  ],
  [
    'maps: a layer outside the UNet blocks',
    'POST',
    '/api/jobs/maps',
    { ...ok, layers: ['transformer_blocks.0.attn2'] },
    400,
    /body\/layers: 'transformer_blocks.0.attn2' is not a layer of the down, mid or up blocks/,
  ],
  [
    'maps: a layer of a place the request leaves out',
    'POST',
    '/api/jobs/maps',
    { ...ok, places: ['up'], layers: ['down_blocks.0.attentions.0.transformer_blocks.0.attn2'] },
    400,
    /body\/layers: 'down_blocks.0.attentions.0.transformer_blocks.0.attn2' is in the down blocks, which body\/places \(up\) leaves out/,
  ],
  [
    'segment: word not in the prompt',
    'POST',
    '/api/jobs/segment',
    { ...ok, word: 'square' },
    400,
    /body\/word 'square' is not a word of the prompt; pick one of: a, red, circle/,
  ],
  [
    'segment: threshold 2',
    'POST',
    '/api/jobs/segment',
    { ...ok, word: 'circle', threshold: 2 },
    400,
    /body\/threshold must be <= 1/,
  ],
  [
    'edit: method unknown',
    'POST',
    '/api/jobs/edit',
    { source: 'a red circle', method: 'sdedit' },
    400,
    /body\/method must be one of: p2p, masactrl, pnp/,
  ],
  [
    'edit: reweight weight a string',
    'POST',
    '/api/jobs/edit',
    { source: 'a red circle', reweight: { red: 'x' } },
    400,
    /body\/reweight\/red must be number/,
  ],
  [
    'edit: p2p option with masactrl',
    'POST',
    '/api/jobs/edit',
    { source: 'a red circle', method: 'masactrl', blend: ['red'] },
    400,
    /body\/blend is a Prompt-to-Prompt option; it does nothing with method masactrl/,
  ],
  [
    'maps: flash never forms the maps it reads',
    'POST',
    '/api/jobs/maps',
    { ...ok, attention: 'flash' },
    400,
    /body\/attention: a maps job reads attention probabilities, which flash never forms; leave attention out/,
  ],
  [
    'edit: p2p with linear attention',
    'POST',
    '/api/jobs/edit',
    { source: 'a red circle', target: 'a blue circle', attention: 'linear-elu' },
    400,
    /body\/attention: a p2p edit reads attention probabilities, which linear-elu never forms/,
  ],
  [
    'edit: masactrl with too few steps',
    'POST',
    '/api/jobs/edit',
    { source: 'a red circle', target: 'a red square', method: 'masactrl', steps: 4 },
    400,
    /body\/steps: MasaCtrl starts at step 4; give at least 5 steps/,
  ],
  [
    'file name a path',
    'GET',
    `/api/jobs/${id}/files/..%2F..%2Fetc%2Fpasswd`,
    undefined,
    400,
    /params\/name must be one of: image.png/,
  ],
  ['job id not a uuid', 'GET', '/api/jobs/..%2Fsecret', undefined, 400, /params\/id must match pattern/],
  ['unknown job', 'DELETE', `/api/jobs/${id}`, undefined, 404, new RegExp(`no job ${id}`)],
];

test('serve: 30 and more malformed requests each get a 4xx naming the problem, and nothing is queued', async () => {
  assert.ok(CASES.length >= 30, `${CASES.length} cases`);
  for (const [what, method, url, body, status, words] of CASES) {
    const res = await app.inject({
      method,
      url,
      ...(body === undefined
        ? {}
        : {
            payload: typeof body === 'string' ? body : JSON.stringify(body),
            headers: { 'content-type': 'application/json' },
          }),
    });
    assert.equal(res.statusCode, status, `${what}: ${res.statusCode} ${res.body}`);
    const { error } = res.json() as { error: string };
    assert.match(error, words, `${what}: ${error}`);
  }
  assert.equal(submitted.length, 0);
});

test('serve: after the malformed requests the server still takes a good one, with the defaults filled in', async () => {
  const health = await app.inject({ method: 'GET', url: '/api/health' });
  assert.equal(health.statusCode, 200);
  const res = await app.inject({
    method: 'POST',
    url: '/api/jobs/generate',
    payload: { prompt: 'a red circle', steps: 3 },
  });
  assert.equal(res.statusCode, 202, res.body);
  const job = res.json() as JobRecord;
  assert.equal(job.status, 'queued');
  assert.equal(job.spec.model, 'shapes-v1');
  assert.deepEqual(
    submitted.map((j) => j.id),
    [job.id],
  );
  const got = await app.inject({ method: 'GET', url: `/api/jobs/${job.id}` });
  assert.equal((got.json() as JobRecord).id, job.id);
  // a file the job does not have (yet) is a 404 that says so
  const file = await app.inject({ method: 'GET', url: `/api/jobs/${job.id}/files/image.png` });
  assert.equal(file.statusCode, 404);
  assert.match((file.json() as { error: string }).error, /has no file image.png \(queued/);
});
