// The explorer in a real browser: Debian's Chromium, headless, driven by playwright-core. Load the page,
// generate with live progress, hover a word and check its heat-map changed the canvas's pixels, click it for its
// mask, switch the blocks and the head (the overlay changes, the image does not), run a reweight edit and check source and target both appear, cancel a running job. Screenshots of each
// step go to test-artifacts/serve/ (gitignored). Skipped with a message when Chromium is not installed.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { buildExplorer } from '../../../src/serve/explorer-bundle.js';
import { LocalQueue } from '../../../src/serve/local-queue.js';
import { repoRoot } from '../../helpers/fixtures.js';
import { MODELS, startServer, type TestServer } from './helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM)
  ? undefined
  : `${CHROMIUM} is not installed (apt-get install chromium; .ci/run does)`;
const SHOTS = join(repoRoot, 'test-artifacts', 'serve');
// the machine has no network: without these Chromium keeps trying to reach Google's services
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let server: TestServer;
let browser: Browser;
let page: Page;
const pageDir = mkdtempSync(join(tmpdir(), 'attnkit-explorer-'));

before(async () => {
  if (skip) return;
  mkdirSync(SHOTS, { recursive: true });
  await buildExplorer(pageDir);
  server = await startServer((board) => new LocalQueue(board, MODELS, 4), pageDir);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
});
after(async () => {
  await browser?.close();
  await server?.close();
  rmSync(pageDir, { recursive: true, force: true });
});

/** A hash of the image canvas's pixels. */
async function canvasPixels(): Promise<string> {
  return page.evaluate(() => {
    const c = document.getElementById('image') as HTMLCanvasElement;
    const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
    let h = 0;
    for (let i = 0; i < d.length; i++) h = (Math.imul(h, 31) + d[i]!) | 0;
    return `${h}:${d.reduce((a, b) => a + b, 0)}`;
  });
}

test('explorer: generate with progress, hover a word (the overlay changes the canvas), click it for a mask', {
  skip,
}, async () => {
  await page.goto(server.url);
  await page.fill('#prompt', 'a red circle on the left');
  await page.fill('#steps', '12');
  await page.click('#generate');
  await page.waitForSelector('#tokens button[data-word="circle"]', { timeout: 60_000 });
  await page.screenshot({ path: join(SHOTS, '1-generated.png') });
  assert.match((await page.textContent('#status'))!, /done: [\d.]+ s per image/);
  const plain = await canvasPixels();
  await page.hover('#tokens button[data-word="circle"]');
  const circle = await canvasPixels();
  assert.notEqual(circle, plain, 'hovering a word did not change the canvas');
  await page.hover('#tokens button[data-word="left"]');
  assert.notEqual(await canvasPixels(), circle, 'two words drew the same overlay');
  await page.hover('#tokens button[data-word="circle"]');
  await page.screenshot({ path: join(SHOTS, '2-hover-circle.png') });
  await page.click('#tokens button[data-word="circle"]');
  await page.waitForFunction(
    () => /covers [\d.]+%/.test(document.getElementById('status')!.textContent ?? ''),
    null,
    {
      timeout: 60_000,
    },
  );
  const maskLit = await page.evaluate(() => {
    const c = document.getElementById('mask') as HTMLCanvasElement;
    return c
      .getContext('2d')!
      .getImageData(0, 0, c.width, c.height)
      .data.some((v, i) => i % 4 !== 3 && v > 0);
  });
  assert.ok(maskLit, 'the mask canvas is empty');
  await page.screenshot({ path: join(SHOTS, '3-segment.png') });
});

/** Clicks a button that re-runs the maps job and waits until it has finished. */
async function remap(): Promise<void> {
  await page.evaluate(() => {
    document.getElementById('status')!.textContent = '';
  });
  await page.click('#remap');
  await page.waitForFunction(
    () => /^(done|failed)/.test(document.getElementById('status')!.textContent ?? ''),
    null,
    { timeout: 60_000 },
  );
  assert.match((await page.textContent('#status'))!, /^done/);
}

test('explorer: the blocks and the head change the overlay, not the image', { skip }, async () => {
  await page.mouse.move(1000, 880); // off the token strip: the image alone (the pinned word is unpinned by a run)
  await page.click('#tokens button[data-word="circle"]'); // unpin
  await page.mouse.move(1000, 880);
  const plain = await canvasPixels();
  await page.hover('#tokens button[data-word="circle"]');
  const downUp = await canvasPixels();
  await page.uncheck('#place-down');
  await remap();
  await page.mouse.move(1000, 880);
  assert.equal(await canvasPixels(), plain, 'the image changed with the blocks');
  await page.hover('#tokens button[data-word="circle"]');
  const up = await canvasPixels();
  assert.notEqual(up, downUp, 'the up blocks alone drew the same overlay as down and up');
  await page.screenshot({ path: join(SHOTS, '3b-up-blocks.png') });
  // the layer and head lists filled in from the run: up blocks only, 4 heads (the built-in model)
  const layers = await page.$$eval('#layer option', (o) => o.map((x) => (x as HTMLOptionElement).value));
  assert.ok(layers.length > 1 && layers.slice(1).every((p) => p.startsWith('up_blocks.')), layers.join());
  await page.selectOption('#head', '0');
  await remap();
  await page.hover('#tokens button[data-word="circle"]');
  assert.notEqual(await canvasPixels(), up, 'head 0 drew the same overlay as the mean');
  // back to DAAM's choice for the steps that follow
  await page.selectOption('#head', '');
  await page.check('#place-down');
  await remap();
});

test('explorer: a reweight edit shows source and target side by side', { skip }, async () => {
  await page.selectOption('#p2p', 'reweight');
  await page.fill('#rwWord', 'red');
  await page.fill('#rwScale', '4');
  await page.click('#runEdit');
  await page.waitForFunction(
    () =>
      /failed/.test(document.getElementById('status')!.textContent ?? '') ||
      ['src', 'tgt'].every((id) => {
        const img = document.getElementById(id) as HTMLImageElement;
        return img.complete && img.naturalWidth > 0;
      }),
    null,
    { timeout: 60_000 },
  );
  assert.match((await page.textContent('#status'))!, /edit done/);
  await page.hover('#tokens button[data-word="circle"]');
  await page.screenshot({ path: join(SHOTS, '4-edit.png') });
});

test('explorer: a word swap with LocalBlend (the screenshot of docs/explorer.png)', { skip }, async () => {
  await page.selectOption('#p2p', 'replace');
  await page.fill('#rwWord', '');
  await page.fill('#target', 'a red square on the left');
  await page.fill('#blend', 'circle square');
  // the last edit's 'edit done' must not count for this one
  await page.evaluate(() => {
    document.getElementById('status')!.textContent = '';
  });
  await page.click('#runEdit');
  await page.waitForFunction(
    () => /edit (done|failed)/.test(document.getElementById('status')!.textContent ?? ''),
    null,
    {
      timeout: 60_000,
    },
  );
  assert.match((await page.textContent('#status'))!, /edit done/);
  await page.hover('#tokens button[data-word="circle"]');
  await page.screenshot({
    path: join(SHOTS, 'explorer.png'),
    clip: { x: 0, y: 0, width: 1040, height: 860 },
  });
});

test('explorer: cancel a running job', { skip }, async () => {
  await page.fill('#steps', '100');
  await page.click('#generate');
  await page.waitForFunction(
    () => /step \d+\/100/.test(document.getElementById('status')!.textContent ?? ''),
    null,
    {
      timeout: 60_000,
    },
  );
  await page.click('#cancel');
  await page.waitForFunction(
    () => /cancelled/.test(document.getElementById('status')!.textContent ?? ''),
    null,
    {
      timeout: 30_000,
    },
  );
  await page.screenshot({ path: join(SHOTS, '5-cancelled.png') });
  assert.equal(server.board.counts().cancelled, 1);
});
