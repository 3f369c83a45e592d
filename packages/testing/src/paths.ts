import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The root folder of this package (it holds `java/`), from the built `dist/` or from `src/`. */
export function packageRoot(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(folder, 'java', 'pom.xml'))) {
    const parent = dirname(folder);
    if (parent === folder) throw new Error('@caas-db/testing: cannot find its java/ folder');
    folder = parent;
  }
  return folder;
}

/** Where fixtures keep what they resolve once (classpaths, compiled launcher, probe results). */
export function cacheDir(): string {
  const folder = process.env.CAAS_DB_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'caas-db');
  mkdirSync(folder, { recursive: true });
  return folder;
}

/** A short hash of the contents of files, to key cached artefacts. */
export function contentHash(...files: string[]): string {
  const hash = createHash('sha256');
  for (const file of files) hash.update(readFileSync(file));
  return hash.digest('hex').slice(0, 16);
}

/** The first executable called `name` on PATH, if any. */
export function findOnPath(name: string): string | undefined {
  for (const folder of (process.env.PATH ?? '').split(delimiter)) {
    if (!folder) continue;
    const candidate = join(folder, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}
