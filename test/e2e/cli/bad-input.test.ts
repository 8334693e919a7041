// docs/bad-input.md, run: every row of its table is an `attnkit` command with a bad input and the message it
// must give. Each runs as its own process on the built-in model; it must exit non-zero, show the message on
// stderr and write none of its outputs. The table is the list of cases, so the doc and the checks stay one.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { writePng } from '../../../src/io/png.js';
import '../../../src/tensor/index.js'; // the chained ops (mul) on Tensor
import { randn } from '../../../src/tensor/random.js';
import { goldenDir, repoRoot } from '../../helpers/fixtures.js';

interface Row {
  command: string;
  args: string[];
  message: string;
}

/** The rows of the doc's table: `attnkit …` | `message`. */
function tableRows(doc: string): Row[] {
  const rows: Row[] = [];
  for (const line of doc.split('\n')) {
    const m = /^\| `attnkit ([^`]+)` \| `(.+)` \|$/.exec(line);
    if (m) rows.push({ command: m[1] as string, args: shellWords(m[1] as string), message: m[2] as string });
  }
  return rows;
}

/** Splits a command line at spaces, keeping "double-quoted words" together. */
function shellWords(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? (m[2] as string));
}

const tmp = mkdtempSync(join(tmpdir(), 'attnkit-bad-input-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The scratch folder the doc calls <tmp>: a folder, a file, a non-PNG, a PNG of a wrong size, a pickled model. */
function makeFixtures(): void {
  mkdirSync(join(tmp, 'folder'));
  mkdirSync(join(tmp, 'out'));
  writeFileSync(join(tmp, 'afile'), 'a file\n');
  writeFileSync(join(tmp, 'bad.png'), 'not a png\n');
  writePng(join(tmp, 'odd.png'), randn([1, 3, 33, 33], 4).mul(0.3));
  const tiny = goldenDir();
  const pickled = join(tmp, 'pickled');
  for (const part of ['scheduler', 'text_encoder', 'tokenizer', 'vae', 'unet']) {
    mkdirSync(join(pickled, part), { recursive: true });
    for (const f of readdirSync(join(tiny, part))) {
      if (!f.endsWith('.safetensors') || part !== 'unet')
        writeFileSync(join(pickled, part, f), readFileSync(join(tiny, part, f)));
    }
  }
  writeFileSync(join(pickled, 'model_index.json'), readFileSync(join(tiny, 'model_index.json')));
  writeFileSync(join(pickled, 'unet', 'diffusion_pytorch_model.bin'), 'PK\x03\x04 pickled\n');
}

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** Runs attnkit in the scratch folder (so a default output would land there), without the malloc re-launch. */
function attnkit(args: string[]): Promise<Result> {
  const tsx = import.meta.resolve('tsx');
  return new Promise((done) => {
    execFile(
      process.execPath,
      ['--import', tsx, join(repoRoot, 'src/cli/main.ts'), ...args],
      { cwd: tmp, encoding: 'utf8', timeout: 30_000, env: { ...process.env, ATTNKIT_MALLOC_TUNING: '0' } },
      (error, _stdout, stderr) => {
        const e = error as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
        done({
          code: typeof e?.code === 'number' ? e.code : e ? null : 0,
          signal: e?.signal ?? null,
          stderr,
        });
      },
    );
  });
}

const rows = tableRows(readFileSync(join(repoRoot, 'docs', 'bad-input.md'), 'utf8'));
makeFixtures();

test('docs/bad-input.md has its table', () => {
  assert.ok(rows.length >= 30, `only ${rows.length} rows read`);
});

describe('every bad input of docs/bad-input.md fails with its message', { concurrency: 3 }, () => {
  for (const row of rows) {
    test(row.command, async () => {
      const args = row.args.map((a) => a.replaceAll('<tmp>', tmp));
      const r = await attnkit(args);
      const stderr = r.stderr.replaceAll(tmp, '<tmp>');
      assert.ok(r.signal === null, `killed by ${r.signal} (over 30 s?): ${stderr.slice(-400)}`);
      assert.notEqual(r.code, 0, `exited 0: ${stderr.slice(-400)}`);
      assert.ok(stderr.includes(row.message), `message not given; stderr:\n${stderr.slice(-1000)}`);
      for (const [i, a] of args.entries()) {
        const out = ['-o', '--out', '--preview', '--grid'].includes(args[i - 1] ?? '') ? a : undefined;
        if (out?.startsWith(join(tmp, 'out'))) assert.ok(!existsSync(out), `${out} was written`);
      }
    });
  }
});
