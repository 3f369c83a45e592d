#!/usr/bin/env node
// `pnpm docs:api`: the API reference of every publishable package (typedoc, into docs/api), one
// module per entry point of its `exports`, built from the sources. Fails on any warning (a broken
// link, a public type referring to one that is not exported), so the reference stays whole.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { publishablePackages, root } from './packages.mjs';

/** `./dist/vitest/index.d.ts` is built from `src/vitest/index.ts` (see each tsup.config.ts). */
const entryPoints = publishablePackages().flatMap((pkg) =>
  Object.entries(pkg.manifest.exports ?? {})
    .filter(([subpath]) => subpath !== './package.json')
    .map(([, target]) => target?.import?.types)
    .filter((types) => typeof types === 'string')
    .map((types) => join(pkg.dir, types.replace(/^\.\/dist\//, 'src/').replace(/\.d\.ts$/, '.ts')))
    .filter((source) => existsSync(source)),
);
const args = [
  ...entryPoints.flatMap((entry) => ['--entryPoints', entry]),
  '--tsconfig',
  join(root, 'tsconfig.json'),
  '--out',
  join(root, 'docs/api'),
  '--name',
  'caas-db',
  '--readme',
  'none',
  '--excludeInternal',
  '--excludePrivate',
  // The sources are type-checked by pnpm typecheck; typedoc only documents them.
  '--skipErrorChecking',
  '--treatWarningsAsErrors',
  // No source links: they would depend on the checkout's git remote (a fresh clone's is a local
  // path, which typedoc warns about, and warnings fail the check).
  '--disableSources',
  ...process.argv.slice(2),
];
const result = spawnSync(join(root, 'node_modules/.bin/typedoc'), args, { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
