// The publishable packages of the workspace, found on disk (every packages/* without `private`), so a
// new package is released, packed and checked without being listed anywhere.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * @returns {{ name: string, dir: string, folder: string, manifest: Record<string, any> }[]} sorted by name
 */
export function publishablePackages() {
  const base = join(root, 'packages');
  return readdirSync(base)
    .filter((folder) => existsSync(join(base, folder, 'package.json')))
    .map((folder) => {
      const dir = join(base, folder);
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
      return { name: manifest.name, dir, folder, manifest };
    })
    .filter((pkg) => pkg.manifest.private !== true)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Packs a package the way `pnpm publish` would (workspace ranges replaced by versions, `prepack`
 * run) into `destination`, and returns the tarball's path and sizes.
 * @returns {{ tarball: string, size: number, unpackedSize: number, files: number }}
 */
export function pack(pkg, destination = mkdtempSync(join(tmpdir(), 'caas-db-pack-'))) {
  const output = execFileSync('pnpm', ['pack', '--json', '--pack-destination', destination], {
    cwd: pkg.dir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // prepack output comes first on stdout; the JSON report is the last top-level object.
  const report = JSON.parse(output.slice(output.lastIndexOf('\n{') + 1));
  const tarball = resolve(destination, report.filename.split('/').pop());
  const npm = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', tarball], { encoding: 'utf8', cwd: destination }))[0];
  return { tarball, size: npm.size, unpackedSize: npm.unpackedSize, files: npm.entryCount };
}
