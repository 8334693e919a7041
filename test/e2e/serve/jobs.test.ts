// attnkit serve end to end with the in-process queue and a real model worker: a generate job streams progress
// (steps in order, an ETA, decoded previews) and its image is the bits the pipeline gives directly; maps, segment
// and an edit return their files; maps by place, layer and head equal a hand aggregation of the stored maps; a
// running job is cancelled and the next still runs; a full queue answers 429, a closing one 503.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { decodePng, encodePng } from '../../../src/io/png.js';
import { AttentionStore } from '../../../src/methods/map/attention-store.js';
import { StableDiffusion } from '../../../src/pipelines/stable-diffusion.js';
import { LocalQueue } from '../../../src/serve/local-queue.js';
import { followJob, MODELS, post, startServer, type TestServer } from './helpers.js';

let server: TestServer;
before(async () => {
  server = await startServer((board) => new LocalQueue(board, MODELS, 2));
});
after(() => server.close());

async function file(id: string, name: string): Promise<Uint8Array> {
  const res = await fetch(`${server.url}/api/jobs/${id}/files/${name}`);
  assert.equal(res.status, 200, `${name}: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

test('serve: a generate job streams its steps with an ETA and previews; its image is the pipeline’s own', async () => {
  const spec = { prompt: 'a blue square on the right', seed: 3, steps: 6, guidance: 5 };
  const { status, json } = await post(`${server.url}/api/jobs/generate`, spec);
  assert.equal(status, 202);
  const events = await followJob(server.url, json.id);
  const last = events.at(-1)!;
  assert.equal(last.type, 'done', JSON.stringify(last.job.error));
  const steps = events.filter((e) => e.type === 'progress' && e.job.step > 0).map((e) => e.job.step);
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6]);
  assert.ok(events.some((e) => typeof e.job.etaSeconds === 'number'));
  const previews = events.filter((e) => e.preview);
  assert.ok(previews.length >= 2, `${previews.length} previews`);
  assert.deepEqual(decodePng(Buffer.from(previews[0]!.preview!, 'base64')).shape, [1, 3, 64, 64]);
  // the same run through the pipeline directly, in this process
  const sd = StableDiffusion.fromPretrained(MODELS['shapes-v1']);
  const direct = sd.generate({ prompt: spec.prompt, seed: 3, steps: 6, guidanceScale: 5 }).images;
  assert.deepEqual(await file(json.id, 'image.png'), encodePng(direct));
});

test('serve: maps, segment and a reweight edit return their files', async () => {
  const maps = await post(`${server.url}/api/jobs/maps`, {
    prompt: 'a red circle',
    steps: 4,
    mapSteps: [1, 4],
  });
  assert.equal(maps.status, 202, JSON.stringify(maps.json));
  assert.equal((await followJob(server.url, maps.json.id)).at(-1)!.type, 'done');
  const m = JSON.parse(new TextDecoder().decode(await file(maps.json.id, 'maps.json')));
  assert.deepEqual(
    m.words.map((w: { word: string }) => w.word),
    ['a', 'red', 'circle'],
  );
  assert.equal(m.steps, 3);
  assert.equal(m.words[2].map.length, m.size[0] * m.size[1]);

  const seg = await post(`${server.url}/api/jobs/segment`, {
    prompt: 'a red circle',
    word: 'circle',
    steps: 4,
  });
  const segEnd = (await followJob(server.url, seg.json.id)).at(-1)!;
  assert.equal(segEnd.type, 'done', segEnd.job.error);
  assert.ok((segEnd.job.meta.area as number) > 0 && (segEnd.job.meta.area as number) < 1);
  assert.ok((await file(seg.json.id, 'mask.png')).length > 0);

  const edit = await post(`${server.url}/api/jobs/edit`, {
    source: 'a red circle',
    p2p: 'reweight',
    reweight: { red: 4 },
    steps: 4,
  });
  const editEnd = (await followJob(server.url, edit.json.id)).at(-1)!;
  assert.equal(editEnd.type, 'done', editEnd.job.error);
  const source = decodePng(await file(edit.json.id, 'source.png'));
  const target = decodePng(await file(edit.json.id, 'target.png'));
  assert.deepEqual(source.shape, target.shape);
  assert.ok(source.sub(target).abs().max().item() > 0.05, 'the reweighting changed nothing');
});

test('serve: a running job is cancelled, the next one runs; past the queue bound requests get 429', async () => {
  const long = await post(`${server.url}/api/jobs/generate`, { prompt: 'a red circle', steps: 100 });
  let cancelled = false;
  const events = await followJob(server.url, long.json.id, (e) => {
    if (!cancelled && e.job.step >= 2) {
      cancelled = true;
      void fetch(`${server.url}/api/jobs/${long.json.id}`, { method: 'DELETE' });
    }
  });
  assert.equal(events.at(-1)!.type, 'cancelled');
  assert.ok(events.at(-1)!.job.step < 100);
  // one running and two waiting fill this queue (bound 2): the fourth is refused (25 steps: the first job must
  // still run when the fourth request comes)
  const jobs = [];
  for (let i = 0; i < 4; i++)
    jobs.push(await post(`${server.url}/api/jobs/generate`, { prompt: 'a red circle', steps: 25, seed: i }));
  assert.deepEqual(
    jobs.map((j) => j.status),
    [202, 202, 202, 429],
  );
  assert.match(jobs[3]!.json.error, /the queue is full \(2 jobs waiting\)/);
  for (const j of jobs.slice(0, 3))
    assert.equal((await followJob(server.url, j.json.id)).at(-1)!.type, 'done');
});

test('serve: maps by place and head differ, and each equals a hand aggregation of the stored maps', async () => {
  const prompt = 'a red circle';
  const base = { prompt, seed: 1, steps: 4, guidance: 5, resolutions: [16] };
  const choices = [
    {},
    { places: ['up'] },
    { places: ['down'] },
    { places: ['up'], head: 1 },
    { places: ['down', 'up'], layers: ['up_blocks.2.attentions.1.transformer_blocks.0.attn2'], head: 3 },
  ];
  const got: { size: number[]; words: { word: string; map: number[] }[]; layers: { path: string }[] }[] = [];
  for (const c of choices) {
    const { status, json } = await post(`${server.url}/api/jobs/maps`, { ...base, ...c });
    assert.equal(status, 202, JSON.stringify(json));
    const end = (await followJob(server.url, json.id)).at(-1)!;
    assert.equal(end.type, 'done', end.job.error);
    got.push(JSON.parse(new TextDecoder().decode(await file(json.id, 'maps.json'))));
  }
  // the stored maps of the same run, recorded here: (1, heads, 256, 32) per 16 × 16 cross-attention layer
  const sd = StableDiffusion.fromPretrained(MODELS['shapes-v1']);
  const store = new AttentionStore({
    kinds: ['cross'],
    maxTokens: 1 << 20,
    layers: (c) => c.size![0] === 16,
  });
  sd.generate({ prompt, seed: 1, steps: 4, guidanceScale: 5, controllers: [store] });
  const stored = store.maps();
  assert.deepEqual(
    got[0]!.layers.map((l) => l.path),
    stored.map((m) => m.path),
  );
  const ids = sd.tokenizer.call(prompt, { padding: false }).ids[0]!; // bos a red circle eos
  assert.equal(ids.length, 5);
  // by hand: mean over the chosen layers and heads of max(p, 0), each word its one token (positions 1..3)
  const hand = (keep: (path: string) => boolean, head?: number): number[][] => {
    const words = [1, 2, 3].map(() => new Float64Array(256));
    let n = 0;
    for (const m of stored.filter((m) => keep(m.path))) {
      const p = m.map.toArray();
      const heads = m.map.shape[1] as number;
      for (const h of head === undefined ? [...Array(heads).keys()] : [head]) {
        n++;
        for (let w = 0; w < 3; w++)
          for (let q = 0; q < 256; q++) {
            const sum = words[w]!;
            sum[q] = sum[q]! + Math.max(0, p[(h * 256 + q) * 32 + 1 + w]!);
          }
      }
    }
    return words.map((x) => [...x].map((v) => v / n));
  };
  const up = (p: string) => p.startsWith('up_blocks');
  const down = (p: string) => p.startsWith('down_blocks');
  const expected = [
    hand(() => true),
    hand(up),
    hand(down),
    hand(up, 1),
    hand((p) => p === 'up_blocks.2.attentions.1.transformer_blocks.0.attn2', 3),
  ];
  const maxDiff = (a: number[][], b: number[][]) =>
    Math.max(...a.flatMap((x, i) => x.map((v, j) => Math.abs(v - b[i]![j]!))));
  got.forEach((g, k) => {
    assert.deepEqual(g.size, [16, 16]);
    assert.deepEqual(
      g.words.map((w) => w.word),
      ['a', 'red', 'circle'],
    );
    const d = maxDiff(
      g.words.map((w) => w.map),
      expected[k]!,
    );
    assert.ok(d < 1e-5, `choice ${JSON.stringify(choices[k])}: ${d} from the hand aggregation`);
  });
  // and the choices change the maps (well past the tolerance above)
  const circle = (k: number) => [got[k]!.words[2]!.map];
  for (const [a, b] of [
    [1, 2],
    [1, 3],
    [0, 1],
    [3, 4],
  ] as const)
    assert.ok(maxDiff(circle(a), circle(b)) > 1e-3, `choices ${a} and ${b} gave the same 'circle' map`);
  // what only the model knows fails the job before it runs, naming the field
  for (const [bad, words] of [
    [
      { layers: ['up_blocks.7.attentions.0.transformer_blocks.0.attn2'] },
      /body\/layers: 'up_blocks.7[^']*' is not a cross-attention layer of this model; pick from: down_blocks.0/,
    ],
    [{ head: 4 }, /body\/head 4: the chosen layers have 4 heads; pick 0–3/],
  ] as const) {
    const { json } = await post(`${server.url}/api/jobs/maps`, { ...base, ...bad });
    const end = (await followJob(server.url, json.id)).at(-1)!;
    assert.equal(end.type, 'failed');
    assert.match(end.job.error!, words);
    assert.equal(end.job.step, 0, 'the model ran before the check');
  }
});

test('serve: a server shutting down answers 503 and cancels what waited', async () => {
  const waiting = [];
  for (let i = 0; i < 2; i++)
    waiting.push(
      await post(`${server.url}/api/jobs/generate`, { prompt: 'a red circle', steps: 50, seed: i }),
    );
  await server.queue.close();
  const late = await post(`${server.url}/api/jobs/generate`, { prompt: 'a red circle' });
  assert.equal(late.status, 503);
  assert.match(late.json.error, /shutting down/);
  assert.deepEqual(
    waiting.map((w) => server.board.get(w.json.id)!.status),
    ['cancelled', 'cancelled'],
  );
});
