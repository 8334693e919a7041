// The explorer page's build: src/serve/explorer/main.ts bundled by esbuild (a dev dependency, loaded only
// here) into one script beside its index.html and stylesheet. `npm run build` writes dist/explorer; a server
// started from source rebuilds it, so the page always matches the code.

import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFolderAtomic } from '../io/atomic.js';
import { EXPLORER_CSS, EXPLORER_HTML } from './explorer/page.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/** The explorer's TypeScript entry, present in a clone (src/), not in the npm package. */
const ENTRY = resolve(HERE, '..', '..', 'src', 'serve', 'explorer', 'main.ts');

/** Bundles the explorer into `outDir` (index.html, explorer.js, explorer.css), written as one unit. */
export async function buildExplorer(outDir: string): Promise<void> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [ENTRY],
    bundle: true,
    write: false,
    format: 'esm',
    target: 'es2022',
    minify: true,
    logLevel: 'silent',
  });
  const js = result.outputFiles[0]!.contents;
  writeFolderAtomic(outDir, (dir) => {
    writeFileSync(join(dir, 'index.html'), EXPLORER_HTML);
    writeFileSync(join(dir, 'explorer.css'), EXPLORER_CSS);
    writeFileSync(join(dir, 'explorer.js'), js);
  });
}

/**
 * The folder to serve the explorer from: `outDir`, rebuilt first when the sources are here (a clone); as built
 * by `npm run build` otherwise. Undefined (and a note) when there is neither.
 */
export async function ensureExplorer(outDir: string, log: (s: string) => void): Promise<string | undefined> {
  if (existsSync(ENTRY)) {
    try {
      await buildExplorer(outDir);
      return outDir;
    } catch (e) {
      if (existsSync(join(outDir, 'index.html'))) return outDir;
      log(`note: the explorer page could not be built (${(e as Error).message}); serving the API alone`);
      return undefined;
    }
  }
  if (existsSync(join(outDir, 'index.html'))) return outDir;
  log('note: the explorer page is not built (run npm run build); serving the API alone');
  return undefined;
}

// `node dist/serve/explorer-bundle.js <dir>` (the build script)
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildExplorer(resolve(process.argv[2] ?? join(HERE, '..', 'explorer')));
}
