// Writing ONNX models to disk; initializers go to an external data file when the model would pass
// protobuf's 2 GB limit (ONNX's external data format: `<file>.data` beside the model).

import { closeSync, mkdirSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { buildModel, buildModelWithExternalData, type GraphSpec } from '../kernels/graph.js';

const INLINE_LIMIT = 1.8e9;

export function initializerBytes(g: GraphSpec): number {
  return (g.initializers ?? []).reduce((n, t) => n + t.data.byteLength, 0);
}

function writeChunks(path: string, chunks: readonly Uint8Array[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) off += writeSync(fd, c, off);
    }
  } catch (e) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
}

/** Writes `g` as an .onnx file; returns the files written. */
export function writeOnnx(path: string, g: GraphSpec, opts: { external?: boolean } = {}): string[] {
  if (!(opts.external ?? initializerBytes(g) > INLINE_LIMIT)) {
    writeChunks(path, [buildModel(g)]);
    return [path];
  }
  const dataPath = `${path}.data`;
  const built = buildModelWithExternalData(g, basename(dataPath));
  writeChunks(dataPath, built.chunks);
  writeChunks(path, [built.model]);
  return [path, dataPath];
}
