// The attention explorer (runs in the browser; bundled by esbuild, explorer-bundle.ts). A prompt runs as a
// `maps` job: the image with live progress, then DAAM's per-word cross-attention maps, drawn over the image when
// a word of the token strip is hovered or clicked (a click also segments the word). The step range, the map
// resolution, the blocks (down / mid / up), one layer and one head (AttentionCall's fields) re-run the job with the
// same seed, so the image stays and the maps change. The edit panel runs
// Prompt-to-Prompt (word swap, refine, reweight, LocalBlend), MasaCtrl or Plug-and-Play and shows source | target.

interface JobRecord {
  id: string;
  status: 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
  step: number;
  numSteps?: number;
  etaSeconds?: number;
  files: string[];
  meta: { seconds?: number; area?: number };
  error?: string;
}

/** One recorded cross-attention layer, as maps.json lists it. */
interface LayerInfo {
  path: string;
  place: 'down' | 'mid' | 'up';
  size: [number, number];
  heads: number;
}

interface WordMaps {
  size: [number, number];
  steps: number;
  layers: LayerInfo[];
  words: { word: string; map: number[] }[];
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const value = (id: string) => $<HTMLInputElement>(id).value.trim();
const num = (id: string) => Number(value(id));

const canvas = $<HTMLCanvasElement>('image');
const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
ctx.imageSmoothingEnabled = false;

let image: HTMLImageElement | undefined;
let maps: WordMaps | undefined;
let pinned: number | undefined;
let running: string | undefined;

function status(text: string): void {
  $('status').textContent = text;
}

/** The efficient-attention toggles as job options (their time per image is shown when a job is done). */
function efficiency(): Record<string, unknown> {
  return {
    // flash is the default function; naming it would also claim the layers a map-level method reads
    ...($<HTMLInputElement>('flash').checked ? {} : { attention: 'softmax' }),
    ...($<HTMLInputElement>('tome').checked ? { tome: 0.5 } : {}),
    ...($<HTMLInputElement>('cache').checked ? { blockCache: 2 } : {}),
  };
}

/** Submits a job and follows its server-sent events until it finishes; previews are drawn as they come. */
async function runJob(kind: string, body: object, onPreview?: (png: string) => void): Promise<JobRecord> {
  const res = await fetch(`api/jobs/${kind}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(json.error ?? `HTTP ${res.status}`);
  running = (json as JobRecord).id;
  $<HTMLButtonElement>('cancel').disabled = false;
  try {
    return await new Promise<JobRecord>((resolve, reject) => {
      const events = new EventSource(`api/jobs/${running}/events`);
      const onEvent = (e: MessageEvent) => {
        const { job, preview } = JSON.parse(e.data) as { job: JobRecord; preview?: string };
        if (preview && onPreview) onPreview(preview);
        const p = $<HTMLProgressElement>('progress');
        p.max = job.numSteps ?? 1;
        p.value = job.step;
        if (job.status === 'running')
          status(
            `${kind}: step ${job.step}/${job.numSteps ?? '?'}, ETA ${(job.etaSeconds ?? 0).toFixed(1)} s`,
          );
        else if (job.status === 'queued') status(`${kind}: queued`);
        if (job.status === 'done') resolve(job);
        else if (job.status === 'failed') reject(new Error(job.error));
        else if (job.status === 'cancelled') reject(new Error('cancelled'));
        if (!['queued', 'running'].includes(job.status)) events.close();
      };
      for (const type of ['progress', 'done', 'failed', 'cancelled']) events.addEventListener(type, onEvent);
      events.onerror = () => {
        events.close();
        reject(new Error('lost the connection to the server'));
      };
    });
  } finally {
    running = undefined;
    $<HTMLButtonElement>('cancel').disabled = true;
  }
}

function loadImage(src: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${src}`));
    img.src = src;
  });
}

/** jet, as the CLI's heat-maps (io/render.ts). */
function jet(v: number): [number, number, number] {
  const c = (x: number) => Math.round(255 * Math.min(1, Math.max(0, x)));
  return [c(1.5 - Math.abs(4 * v - 3)), c(1.5 - Math.abs(4 * v - 2)), c(1.5 - Math.abs(4 * v - 1))];
}

/** The image, and over it the word's map (min–max normalised, smoothly upsampled), more opaque where higher. */
function draw(word?: number): void {
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (image) ctx.drawImage(image, 0, 0, canvas.width, canvas.height);
  const m = word !== undefined ? maps?.words[word] : undefined;
  if (!m || !maps) return;
  const [h, w] = maps.size;
  const lo = Math.min(...m.map);
  const hi = Math.max(...m.map);
  const small = document.createElement('canvas');
  small.width = w;
  small.height = h;
  const px = small.getContext('2d')!.createImageData(w, h);
  m.map.forEach((v, i) => {
    const t = hi > lo ? (v - lo) / (hi - lo) : 0;
    const [r, g, b] = jet(t);
    // opaque where the word attends, so the image shows through elsewhere
    px.data.set([r, g, b, Math.round(255 * (0.15 + 0.7 * t))], 4 * i);
  });
  small.getContext('2d')!.putImageData(px, 0, 0);
  ctx.save();
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(small, 0, 0, canvas.width, canvas.height);
  ctx.restore();
}

/** The token strip: one button per word of the prompt. */
function showTokens(): void {
  const strip = $('tokens');
  strip.replaceChildren();
  maps?.words.forEach((w, i) => {
    const b = document.createElement('button');
    b.textContent = w.word;
    b.dataset.word = w.word;
    b.onmouseenter = () => draw(i);
    b.onmouseleave = () => draw(pinned);
    b.onclick = () => {
      pinned = pinned === i ? undefined : i;
      for (const other of strip.children) other.classList.toggle('on', other === b && pinned === i);
      draw(pinned);
      if (pinned === i) void segment(w.word);
    };
    strip.append(b);
  });
}

const PLACES = ['down', 'mid', 'up'] as const;

/** The checked blocks. */
function places(): string[] {
  return PLACES.filter((p) => $<HTMLInputElement>(`place-${p}`).checked);
}

/** Offers the last run's layers of the checked blocks and their heads, keeping a choice that is still offered. */
function offerLayers(): void {
  const layers = (maps?.layers ?? []).filter((l) => places().includes(l.place));
  const fill = (id: string, first: string, options: [string, string][]) => {
    const select = $<HTMLSelectElement>(id);
    const keep = select.value;
    select.replaceChildren(new Option(first, ''), ...options.map(([v, text]) => new Option(text, v)));
    select.value = options.some(([v]) => v === keep) ? keep : '';
  };
  fill(
    'layer',
    'all of those blocks',
    layers.map((l) => [l.path, `${l.path} (${l.size.join('×')})`]),
  );
  const chosen = layers.filter((l) => !value('layer') || l.path === value('layer'));
  const heads = chosen.length ? Math.min(...chosen.map((l) => l.heads)) : 0;
  fill(
    'head',
    'mean',
    Array.from({ length: heads }, (_, h) => [String(h), String(h)]),
  );
}

/** The prompt as a maps job over the chosen steps, resolution, blocks, layer and head. */
async function generate(): Promise<void> {
  const steps = num('steps');
  const from = Math.min(num('stepFrom'), steps - 1);
  const to = Math.min(Math.max(num('stepTo'), from + 1), steps);
  const res = value('res');
  const blocks = places();
  const layer = value('layer');
  const head = value('head');
  try {
    const job = await runJob(
      'maps',
      {
        prompt: value('prompt'),
        seed: num('seed'),
        steps,
        ...(from > 0 || to < steps ? { mapSteps: [from, to] } : {}),
        ...(res ? { resolutions: [Number(res)] } : {}),
        ...(blocks.join() === 'down,up' ? {} : { places: blocks }),
        ...(layer ? { layers: [layer] } : {}),
        ...(head ? { head: Number(head) } : {}),
        ...efficiency(),
      },
      async (png) => {
        image = await loadImage(`data:image/png;base64,${png}`);
        draw();
      },
    );
    image = await loadImage(`api/jobs/${job.id}/files/image.png`);
    maps = (await (await fetch(`api/jobs/${job.id}/files/maps.json`)).json()) as WordMaps;
    pinned = undefined;
    offerLayers();
    showTokens();
    draw();
    status(
      `done: ${(job.meta.seconds ?? 0).toFixed(2)} s per image (${describe(efficiency())}); hover a word`,
    );
  } catch (e) {
    status(`failed: ${(e as Error).message}`);
  }
}

function describe(o: Record<string, unknown>): string {
  const parts = Object.entries(o).map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(', ') : 'flash';
}

/** A click on a word: its mask (DAAM map + threshold), as `attnkit segment`. */
async function segment(word: string): Promise<void> {
  try {
    const job = await runJob('segment', {
      prompt: value('prompt'),
      word,
      seed: num('seed'),
      steps: num('steps'),
      ...efficiency(),
    });
    const mask = await loadImage(`api/jobs/${job.id}/files/mask.png`);
    const m = $<HTMLCanvasElement>('mask').getContext('2d')!;
    m.imageSmoothingEnabled = false;
    m.drawImage(mask, 0, 0, 192, 192);
    status(`'${word}' covers ${(100 * (job.meta.area ?? 0)).toFixed(1)}% of the image`);
  } catch (e) {
    status(`segment failed: ${(e as Error).message}`);
  }
}

async function runEdit(): Promise<void> {
  const method = value('method');
  const rw = value('rwWord');
  const blend = value('blend').split(/\s+/).filter(Boolean);
  const body = {
    source: value('prompt'),
    ...(value('target') ? { target: value('target') } : {}),
    method,
    seed: num('seed'),
    steps: num('steps'),
    ...efficiency(),
    ...(method === 'p2p'
      ? {
          p2p: value('p2p'),
          ...(rw ? { reweight: { [rw]: num('rwScale') } } : {}),
          ...(blend.length ? { blend } : {}),
        }
      : {}),
  };
  try {
    const job = await runJob('edit', body);
    $<HTMLImageElement>('src').src = `api/jobs/${job.id}/files/source.png`;
    $<HTMLImageElement>('tgt').src = `api/jobs/${job.id}/files/target.png`;
    status(`edit done: ${(job.meta.seconds ?? 0).toFixed(2)} s for the pair`);
  } catch (e) {
    status(`edit failed: ${(e as Error).message}`);
  }
}

function syncSliders(): void {
  const steps = Math.max(1, num('steps'));
  for (const id of ['stepFrom', 'stepTo']) $<HTMLInputElement>(id).max = String(steps);
  $('stepFromV').textContent = value('stepFrom');
  $('stepToV').textContent = value('stepTo');
  $('rwScaleV').textContent = value('rwScale');
}

$('generate').onclick = () => void generate();
$('remap').onclick = () => void generate();
$('runEdit').onclick = () => void runEdit();
$('cancel').onclick = () => {
  if (running) void fetch(`api/jobs/${running}`, { method: 'DELETE' });
};
for (const id of ['steps', 'stepFrom', 'stepTo', 'rwScale']) $(id).addEventListener('input', syncSliders);
for (const id of [...PLACES.map((p) => `place-${p}`), 'layer']) $(id).addEventListener('change', offerLayers);
$('steps').addEventListener('change', () => {
  $<HTMLInputElement>('stepTo').value = value('steps');
  syncSliders();
});
fetch('api/health')
  .then((r) => r.json())
  .then(
    (h: { models: string[] }) => {
      $('model').textContent = `model: ${h.models[0]}`;
    },
    () => status('the server does not answer'),
  );
