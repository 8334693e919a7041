#!/usr/bin/env bash
# attnkit as a dependency (issue 34): pack the package and check what it ships; install the tarball into a fresh
# project with no network and no project .npmrc, using only what README's "Use as a library" says; type-check
# the consumer file and examples/ against the shipped .d.ts (tsc --noEmit), then run them on the built-in model.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/attnkit-consumer.XXXXXX")
trap 'rm -rf "$work"' EXIT
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
steps=${ATTNKIT_EXAMPLE_STEPS:-4}

# 1. the tarball (npm pack builds dist/ through "prepare") and its contents
cd "$root"
npm pack --json --pack-destination "$work" >"$work/pack.json"
node "$here/check-contents.mjs" "$work/pack.json"
tarball=$(ls "$work"/attnkit-*.tgz)

# 2. the registry's answers for the dependencies into npm's cache: the one step with network, no script runs
ts=$(node -p "require('$root/node_modules/typescript/package.json').version")
types=$(node -p "require('$root/node_modules/@types/node/package.json').version")
mkdir "$work/warm"
cd "$work/warm"
echo '{"private": true}' >package.json
npm install --ignore-scripts --no-save --silent "$tarball" "typescript@$ts" "@types/node@$types"

# 3. the consumer's project: fresh, no .npmrc, no network (a network namespace of its own where the kernel
#    allows one), install scripts running; the install flag is README's
grep -q 'ONNXRUNTIME_NODE_INSTALL=skip npm install attnkit' "$root/README.md" || {
  echo "README's 'Use as a library' no longer installs with ONNXRUNTIME_NODE_INSTALL=skip; make this check follow it" >&2
  exit 1
}
mkdir "$work/app"
cd "$work/app"
printf '{"name": "app", "private": true, "type": "module"}\n' >package.json
cp "$here/consumer.ts" "$here/tsconfig.json" .
cp -r "$root/examples" .
offline=()
if unshare -rn true 2>/dev/null; then
  offline=(unshare -rn)
else
  echo 'note: no network namespace here (unshare -rn); the install runs with --offline only'
fi
ONNXRUNTIME_NODE_INSTALL=skip "${offline[@]}" npm install --offline --silent "$tarball" "typescript@$ts" "@types/node@$types"
[ ! -e .npmrc ] || { echo 'the consumer project must have no .npmrc' >&2; exit 1; }

# 4. type-check against the shipped .d.ts, compile, run
npx tsc --noEmit -p .
npx tsc -p .
node build/consumer.js
test -s consumer.png
for example in build/examples/*.js; do
  name=$(basename "$example" .js)
  start=$EPOCHREALTIME
  ATTNKIT_EXAMPLE_STEPS=$steps node "$example" >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
  test -s "out/$name.png" || { cat "$work/$name.log"; echo "examples/$name.ts wrote no out/$name.png" >&2; exit 1; }
  printf 'examples/%s.ts: out/%s.png (%.1f s)\n' "$name" "$name" "$(awk "BEGIN { print $EPOCHREALTIME - $start }")"
done
