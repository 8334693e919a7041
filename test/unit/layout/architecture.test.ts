// The layering rules of docs/design.md, checked on the source tree: the runtime never imports the lab, training
// or the CLI; the lab and training import only the runtime's public entry (src/index.ts) besides their own
// files; the server (src/serve) imports the runtime, the lab and its own files, and only the CLI imports it;
// nothing outside the CLI is part of an import cycle; no source file is over 600 lines.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { repoRoot } from '../../helpers/fixtures.js';

const SRC = join(repoRoot, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** src-relative path → the src-relative paths it imports (relative specifiers only; `.js` read as `.ts`). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const deps = importedFiles
      .map((i) => i.fileName)
      .filter((s) => s.startsWith('.'))
      .map((s) =>
        relative(SRC, resolve(dirname(file), s.replace(/\.js$/, '.ts')))
          .split(sep)
          .join('/'),
      );
    graph.set(relative(SRC, file).split(sep).join('/'), deps);
  }
  return graph;
}

/** Which part of the package a src-relative path belongs to. */
function partOf(path: string): 'lab' | 'train' | 'cli' | 'serve' | 'runtime' {
  const top = path.split('/')[0];
  return top === 'lab' || top === 'train' || top === 'cli' || top === 'serve' ? top : 'runtime';
}

const graph = importGraph();

test('architecture: the import graph is read (it is not empty, and it sees the edge index.ts → pipelines)', () => {
  assert.ok(graph.size > 50, `only ${graph.size} source files found under ${SRC}`);
  assert.ok(graph.get('index.ts')?.includes('pipelines/stable-diffusion.ts'));
});

test('architecture: the runtime never imports the lab, training or the CLI', () => {
  const wrong = [...graph].flatMap(([from, deps]) =>
    partOf(from) === 'runtime'
      ? deps.filter((d) => partOf(d) !== 'runtime').map((d) => `${from} → ${d}`)
      : [],
  );
  assert.deepEqual(wrong, []);
});

test('architecture: the lab and training import only their own files and the runtime’s public entry', () => {
  const wrong = [...graph].flatMap(([from, deps]) => {
    const part = partOf(from);
    if (part !== 'lab' && part !== 'train') return [];
    return deps.filter((d) => partOf(d) !== part && d !== 'index.ts').map((d) => `${from} → ${d}`);
  });
  assert.deepEqual(wrong, []);
});

test('architecture: the server imports the runtime, the lab and its own files; only the CLI imports it', () => {
  const wrong = [...graph].flatMap(([from, deps]) =>
    deps
      .filter((d) =>
        partOf(from) === 'serve'
          ? partOf(d) === 'cli' || partOf(d) === 'train'
          : partOf(d) === 'serve' && partOf(from) !== 'cli' && partOf(from) !== 'serve',
      )
      .map((d) => `${from} → ${d}`),
  );
  assert.deepEqual(wrong, []);
});

/** Strongly connected components with more than one file (Tarjan). */
function cycles(g: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) found.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!index.has(v)) visit(v);
  return found;
}

test('architecture: the cycle finder finds a hand-made cycle and nothing in a chain', () => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a']],
    ['d', ['a']],
  ]);
  assert.deepEqual(cycles(g), [['a', 'b', 'c']]);
  assert.deepEqual(
    cycles(
      new Map([
        ['x', ['y']],
        ['y', []],
      ]),
    ),
    [],
  );
});

test('architecture: no import cycle anywhere in src/ (the CLI included)', () => {
  assert.deepEqual(cycles(graph), []);
});

test('architecture: no source file is over 600 lines', () => {
  const long = sourceFiles(SRC)
    .map((f) => [relative(SRC, f), readFileSync(f, 'utf8').split('\n').length - 1] as const)
    .filter(([, n]) => n > 600);
  assert.deepEqual(long, []);
});
