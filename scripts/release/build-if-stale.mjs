#!/usr/bin/env node
// Builds each given package (default: every packages/*) only when its dist is older than what it is
// built from, so `pnpm demo`, `pnpm caas-db` and `prepack` skip the builds that are already up to date.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const shared = ['tsup.shared.ts', 'tsconfig.base.json', 'tsconfig.json'].map((file) => join(root, file));

/** Every file under `path` (a file or a folder), without descending into node_modules. */
function files(path) {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true })
    .filter((entry) => entry.name !== 'node_modules')
    .flatMap((entry) => files(join(path, entry.name)));
}

function isStale(dir) {
  const built = files(join(dir, 'dist'));
  if (built.length === 0) return true;
  const oldestOutput = Math.min(...built.map((file) => statSync(file).mtimeMs));
  const inputs = [...files(join(dir, 'src')), join(dir, 'package.json'), join(dir, 'tsup.config.ts'), ...shared];
  return inputs.some((file) => existsSync(file) && statSync(file).mtimeMs > oldestOutput);
}

/** Packages ordered so each comes after the workspace packages it depends on (their .d.ts feed its build). */
function dependencyOrder(dirs) {
  const manifest = (dir) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  const byName = new Map(dirs.map((dir) => [manifest(dir).name, dir]));
  const ordered = [];
  const visit = (dir, path = new Set()) => {
    if (ordered.includes(dir) || path.has(dir)) return;
    path.add(dir);
    const m = manifest(dir);
    for (const dep of Object.keys({ ...m.dependencies, ...m.peerDependencies, ...m.devDependencies })) {
      const inner = byName.get(dep);
      if (inner && inner !== dir) visit(inner, path);
    }
    ordered.push(dir);
  };
  for (const dir of dirs) visit(dir);
  return ordered;
}

const args = process.argv.slice(2);
const dirs =
  args.length > 0 ? args.map((dir) => resolve(dir)) : readdirSync(join(root, 'packages')).map((name) => join(root, 'packages', name));
for (const dir of dependencyOrder(dirs.filter((dir) => existsSync(join(dir, 'tsup.config.ts'))))) {
  const name = dir.slice(root.length + 1);
  if (!isStale(dir)) {
    console.log(`${name}: up to date`);
    continue;
  }
  console.log(`${name}: building`);
  execFileSync('pnpm', ['run', '--silent', 'build'], { cwd: dir, stdio: 'inherit' });
}
