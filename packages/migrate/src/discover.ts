import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { MigrationInvalidError } from './errors.js';
import { type Migration, validateMigration } from './migration.js';

/** Migration files: a sortable prefix of digits, then a name; TypeScript or JavaScript. */
const MIGRATION_FILE = /^(\d{3,})[-_][A-Za-z0-9_.-]+\.(ts|mts|js|mjs|cjs)$/;

/** A migration file found in the folder, not yet loaded. */
export interface MigrationFile {
  /** The file name without extension: the migration's id, and its order. */
  readonly id: string;
  readonly path: string;
  /** SHA-256 of the file's bytes. */
  readonly checksum: string;
}

/**
 * The migration files of `directory`, in id order. Other files (helpers, README) are ignored.
 * @throws {MigrationInvalidError} when the folder does not exist or two files share an id.
 */
export async function discoverMigrations(directory: string): Promise<MigrationFile[]> {
  const folder = resolve(directory);
  const info = await stat(folder).catch(() => undefined);
  if (!info?.isDirectory()) throw new MigrationInvalidError(`Migrations folder ${folder} does not exist`);
  const names = (await readdir(folder)).filter((name) => MIGRATION_FILE.test(name) && !name.endsWith('.d.ts')).sort();
  const files: MigrationFile[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    const id = basename(name, extname(name));
    if (seen.has(id)) throw new MigrationInvalidError(`Two migration files have the id ${id} in ${folder}`);
    seen.add(id);
    const path = join(folder, name);
    files.push({
      id,
      path,
      checksum: createHash('sha256')
        .update(await readFile(path))
        .digest('hex'),
    });
  }
  return files;
}

/**
 * Imports a migration file: its default export (from `defineMigration`), or its named `up` and
 * `down` exports. TypeScript files need a loader in the running process (the CLI registers tsx;
 * vitest and tsx have their own).
 * @throws {MigrationInvalidError} when the file exports no migration.
 */
export async function loadMigration(file: MigrationFile): Promise<Migration> {
  const module = (await import(pathToFileURL(file.path).href)) as { default?: unknown } & Record<string, unknown>;
  const candidate = module.default !== undefined && typeof module.default === 'object' ? module.default : module;
  return validateMigration(candidate, `Migration file ${file.path}`);
}

/** Characters of a migration name given to {@link migrationFileName}. */
const NAME = /^[a-z0-9][a-z0-9-]{0,80}$/;

/**
 * The file name of a new migration: a UTC timestamp (so files from different branches sort by
 * creation) and the name.
 * @throws {MigrationInvalidError} for a name that is not lower-case words joined by `-`.
 */
export function migrationFileName(name: string, now: Date = new Date()): string {
  if (!NAME.test(name)) throw new MigrationInvalidError(`Migration name ${JSON.stringify(name)} must be lower-case words joined by -`);
  const stamp = now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return `${stamp}-${name}.ts`;
}

/** The contents of a new migration file. */
export function migrationTemplate(scope: 'platform' | 'tenant'): string {
  return `import { defineMigration } from '@caas-db/migrate';

export default defineMigration({
  description: 'TODO: what this migration changes',
  scope: '${scope}',
  async up(context) {
    // Batched and resumable: context.batches('step-name', async (after) => ({ lastId, processed }))
    // or context.upgradeDocuments(context.repositories!.messages) for a model's schema_version.
  },
  async down(context) {},
});
`;
}
