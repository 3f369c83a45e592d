#!/usr/bin/env node
// `pnpm release:check`: every publishable package checked as it would be published. Per package:
// the registry metadata and dependency topology, then its packed tarball through publint,
// are-the-types-wrong and `npm publish --dry-run`; then the API reports against the committed ones,
// the typedoc reference (0 warnings) and the pending changesets. Prints one line per check and a
// table of packed sizes; exits 1 if anything failed.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pack, publishablePackages, root } from './packages.mjs';

const bin = (name) => join(root, 'node_modules/.bin', name);
/** Shared by every package of the model: a second copy breaks BSON types and error brands. */
const PEER_ONLY = ['mongodb', 'zod', 'ioredis', '@caas-db/core'];
const failures = [];
const sizes = [];

function check(label, fn) {
  const started = Date.now();
  let problem;
  try {
    problem = fn();
  } catch (error) {
    problem = error instanceof Error ? error.message : String(error);
  }
  const ms = Date.now() - started;
  if (problem) {
    failures.push(label);
    console.log(`✗ ${label} (${ms} ms)\n${String(problem).replace(/^/gm, '    ')}`);
  } else {
    console.log(`✓ ${label} (${ms} ms)`);
  }
}

/** Runs a command; returns its output as the problem when it exits non-zero. */
function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', cwd: root, ...options });
  if (result.status === 0) return undefined;
  return `${command} ${args.join(' ')} exited ${result.status}\n${result.stdout}${result.stderr}`.trim();
}

/** What a package must declare to be published and embedded (see docs/releasing.md). */
function metadataProblems(pkg) {
  const m = pkg.manifest;
  const problems = [];
  if (m.license !== 'MIT') problems.push(`license is ${m.license}, not MIT`);
  if (!existsSync(join(pkg.dir, 'LICENSE'))) problems.push('no LICENSE file');
  if (!existsSync(join(pkg.dir, 'README.md'))) problems.push('no README.md');
  for (const field of ['description', 'repository', 'homepage', 'bugs', 'keywords', 'engines', 'exports', 'files']) {
    if (m[field] === undefined) problems.push(`no "${field}"`);
  }
  // The README is the package's page on the registry, where a relative link leads nowhere.
  const readme = existsSync(join(pkg.dir, 'README.md')) ? readFileSync(join(pkg.dir, 'README.md'), 'utf8') : '';
  const relative = [...readme.matchAll(/\]\((?!https?:|mailto:|#)([^)\s]+)\)/g)].map((match) => match[1]);
  if (relative.length > 0) problems.push(`README.md has relative links (broken on the registry): ${relative.join(', ')}`);
  if (m.repository?.directory !== `packages/${pkg.folder}`) problems.push(`repository.directory is not packages/${pkg.folder}`);
  if (m.publishConfig?.access !== 'public') problems.push('publishConfig.access is not "public" (a first scoped publish would fail)');
  if (!m.scripts?.prepack) problems.push('no prepack script (a publish could ship a stale dist)');
  for (const dep of PEER_ONLY) {
    if (m.dependencies?.[dep]) problems.push(`${dep} is a dependency: it must be a peerDependency`);
  }
  // Every shared package the built code imports is declared as a peer.
  const built = join(pkg.dir, 'dist');
  if (existsSync(built)) {
    const imported = new Set();
    for (const file of execFileSync('find', [built, '-name', '*.js', '-o', '-name', '*.d.ts'], { encoding: 'utf8' }).split('\n')) {
      if (!file) continue;
      // Comments hold examples (`import { Redis } from 'ioredis'` in a TSDoc block): only code counts.
      const code = readFileSync(file, 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/^\s*\/\/.*$/gm, '');
      for (const match of code.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) imported.add(match[1]);
    }
    for (const dep of PEER_ONLY) {
      const used = [...imported].some((specifier) => specifier === dep || specifier.startsWith(`${dep}/`));
      if (used && dep !== m.name && !m.peerDependencies?.[dep]) problems.push(`imports ${dep} but has no peerDependency on it`);
    }
  }
  return problems.length > 0 ? problems.join('\n') : undefined;
}

const packages = publishablePackages();
// A checkout fresh from `pnpm test` is up to date and builds nothing here.
check('build of stale packages', () =>
  run(process.execPath, [join(root, 'scripts/release/build-if-stale.mjs'), ...packages.map((pkg) => pkg.dir)]),
);
const work = mkdtempSync(join(tmpdir(), 'caas-db-release-check-'));
try {
  console.log(`release:check of ${packages.map((pkg) => pkg.name).join(', ')}`);
  for (const pkg of packages) {
    check(`${pkg.name}: metadata and peer dependencies`, () => metadataProblems(pkg));
    let packed;
    check(`${pkg.name}: pack`, () => {
      packed = pack(pkg, work);
      const manifest = JSON.parse(execFileSync('tar', ['-xzOf', packed.tarball, 'package/package.json'], { encoding: 'utf8' }));
      const ranges = Object.entries({ ...manifest.dependencies, ...manifest.peerDependencies }).filter(([, range]) =>
        String(range).startsWith('workspace:'),
      );
      if (ranges.length > 0) return `workspace: ranges left in the packed manifest: ${ranges.map(([name]) => name).join(', ')}`;
      sizes.push({ name: pkg.name, ...packed });
    });
    if (!packed) continue;
    check(`${pkg.name}: publint`, () => run(bin('publint'), ['run', packed.tarball, '--strict']));
    // The packages are dual (ESM + CommonJS) for Node 20.19+: node16 from CJS and from ESM, and bundler
    // (node10 resolution predates "exports" and cannot see subpaths).
    // An ESM-only package (no "require" condition, e.g. a CLI) is checked as one.
    const esmOnly = !JSON.stringify(pkg.manifest.exports ?? {}).includes('"require"');
    check(`${pkg.name}: are-the-types-wrong`, () =>
      run(bin('attw'), [packed.tarball, '--profile', esmOnly ? 'esm-only' : 'node16', '--format', 'table-flipped', '--no-color']),
    );
    check(`${pkg.name}: npm publish --dry-run`, () =>
      run('npm', ['publish', packed.tarball, '--dry-run', '--access', 'public', '--tag', 'release-check', '--ignore-scripts'], {
        cwd: work,
      }),
    );
  }
  check('API reports match the committed ones (pnpm api:update regenerates them)', () =>
    run(process.execPath, [join(root, 'scripts/release/api-report.mjs'), '--check']),
  );
  check('API reference: typedoc builds it with 0 warnings (pnpm docs:api)', () =>
    run(process.execPath, [join(root, 'scripts/release/docs-api.mjs'), '--out', join(work, 'api-docs'), '--logLevel', 'Warn']),
  );
  // Every pending .changeset/*.md, assembled into the release plan `changeset version` would apply
  // (an unknown package, a bad bump type or bad front matter fails it).
  check('changesets', () => {
    const plan = join(work, 'release-plan.json');
    const problem = run(join(root, 'scripts/release/changeset.sh'), ['status', `--output=${plan}`]);
    if (problem) return problem;
    for (const release of JSON.parse(readFileSync(plan, 'utf8')).releases.filter((r) => r.type !== 'none')) {
      console.log(
        `    ${release.name} ${release.oldVersion} -> ${release.newVersion} (${release.type}: ${release.changesets.length} changesets)`,
      );
    }
  });
} finally {
  rmSync(work, { recursive: true, force: true });
}

console.log('\npacked sizes (npm pack):');
console.log('package'.padEnd(28), 'tarball'.padStart(10), 'unpacked'.padStart(10), 'files'.padStart(6));
for (const row of sizes) {
  const kb = (bytes) => `${(bytes / 1024).toFixed(1)} kB`;
  console.log(row.name.padEnd(28), kb(row.size).padStart(10), kb(row.unpackedSize).padStart(10), String(row.files).padStart(6));
}
if (failures.length > 0) {
  console.log(`\nrelease:check failed: ${failures.join('; ')}`);
  process.exit(1);
}
console.log('\nrelease:check passed');
