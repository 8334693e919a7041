// What the npm package ships (issue 34): `npm pack --json`'s file list holds package.json, README.md, dist/ and
// the built-in model in models/ — no tests, fixtures, checkpoints, benches or sources — and every entry point
// of package.json "exports" has its JavaScript and its types in it.
// Usage: node check-contents.mjs <npm pack --json output>

import { readFileSync } from 'node:fs';

const [pack] = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const files = new Set(pack.files.map((f) => f.path));
const problems = [];
for (const path of files) {
  const shipped =
    path === 'package.json' || path === 'README.md' || path.startsWith('dist/') || path.startsWith('models/');
  if (!shipped) problems.push(`ships ${path} (only dist/, models/, README.md and package.json belong in it)`);
}
for (const need of ['models/shapes-v1/model_index.json', 'models/shapes-v1/unet/config.json']) {
  if (!files.has(need)) problems.push(`lacks ${need} (the built-in model)`);
}
const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
for (const [entry, target] of Object.entries(manifest.exports)) {
  if (typeof target === 'string') continue; // ./package.json
  if (!target.types) problems.push(`exports["${entry}"] has no "types"`);
  for (const file of [target.types, target.default]) {
    if (file && !files.has(file.replace(/^\.\//, '')))
      problems.push(`exports["${entry}"] names ${file}, not in the tarball`);
  }
}
if (problems.length > 0) {
  console.error(`package contents (${pack.filename}):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
const mb = (n) => `${(n / 1e6).toFixed(1)} MB`;
console.log(
  `package contents: ${pack.entryCount} files, tarball ${mb(pack.size)}, unpacked ${mb(pack.unpackedSize)}`,
);
