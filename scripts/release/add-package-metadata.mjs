#!/usr/bin/env node
// Gives packages the registry metadata release:check asks for, leaving what they already declare:
// repository (with its directory), homepage, bugs, keywords, publishConfig.access public, a prepack
// build, LICENSE in `files` and a copy of the root LICENSE.
//   node scripts/release/add-package-metadata.mjs packages/archive [packages/backup ...]
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { root } from './packages.mjs';

const REPOSITORY = 'https://github.com/caas-db/caas-db';

for (const argument of process.argv.slice(2)) {
  const dir = resolve(argument);
  const folder = basename(dir);
  const file = join(dir, 'package.json');
  const manifest = JSON.parse(readFileSync(file, 'utf8'));
  const added = {
    author: 'caas-db contributors',
    repository: { type: 'git', url: `git+${REPOSITORY}.git`, directory: `packages/${folder}` },
    homepage: `${REPOSITORY}/tree/main/packages/${folder}#readme`,
    bugs: { url: `${REPOSITORY}/issues` },
    keywords: ['mongodb', 'caas-db', folder],
  };
  // The new fields go right after `license`, where the other packages have them.
  const out = {};
  for (const [key, value] of Object.entries(manifest)) {
    out[key] = value;
    if (key === 'license') for (const [name, field] of Object.entries(added)) out[name] ??= manifest[name] ?? field;
  }
  for (const [name, field] of Object.entries(added)) out[name] ??= field;
  out.files = [...new Set([...(out.files ?? ['dist', 'README.md']), 'LICENSE'])];
  out.publishConfig = { ...out.publishConfig, access: 'public' };
  out.scripts = { ...out.scripts, prepack: out.scripts?.prepack ?? 'node ../../scripts/release/build-if-stale.mjs .' };
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  if (!existsSync(join(dir, 'LICENSE'))) copyFileSync(join(root, 'LICENSE'), join(dir, 'LICENSE'));
  console.log(`${manifest.name}: metadata added`);
}
