import { existsSync, readFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { ConfigError, toValidationIssues } from '@caas-db/core';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** The configuration every command runs with. */
export const cliConfigSchema = z.strictObject({
  /** MongoDB connection string. */
  uri: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, 'must be a mongodb:// or mongodb+srv:// connection string')
    .optional(),
  /** The platform database. */
  database: z.string().regex(/^[^/\\. "$*<>:|?]{1,63}$/, 'must be a valid database name'),
  /** The folder of migration files. */
  migrations: z.string().min(1),
  /** Tenancy strategy: `shared` (one database, `tenant_id` on every document) or `database` (one per tenant). */
  strategy: z.enum(['shared', 'database']),
  /** Prefix of tenant databases under the database strategy. */
  databasePrefix: z.string().max(32).optional(),
  /** Recorded as who ran migrations. */
  runBy: z.string().min(1).max(256).optional(),
  /** The migration lock's lease in milliseconds. */
  leaseMS: z.number().int().min(1000).max(3_600_000),
  /** Documents per batch of document migrations. */
  batchSize: z.number().int().min(1).max(10_000),
});

/** A resolved configuration. */
export type CliConfig = z.output<typeof cliConfigSchema>;

/** Where each setting can come from, highest precedence first: flags, environment, file, defaults. */
export interface ConfigSources {
  /** `--config <file>`; else `CAAS_DB_CONFIG`; else `caas-db.config.{json,yaml,yml}` in the working directory when present. */
  file?: string | undefined;
  flags: Partial<Record<keyof CliConfig, unknown>>;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

const DEFAULTS = { database: 'caas', migrations: 'migrations', strategy: 'shared', leaseMS: 60_000, batchSize: 1000 } as const;

const ENVIRONMENT: Array<[keyof CliConfig, string, (value: string) => unknown]> = [
  ['uri', 'MONGODB_URI', String],
  ['database', 'CAAS_DB_DATABASE', String],
  ['migrations', 'CAAS_DB_MIGRATIONS', String],
  ['strategy', 'CAAS_DB_STRATEGY', String],
  ['databasePrefix', 'CAAS_DB_DATABASE_PREFIX', String],
  ['runBy', 'CAAS_DB_RUN_BY', String],
  ['leaseMS', 'CAAS_DB_LEASE_MS', Number],
  ['batchSize', 'CAAS_DB_BATCH_SIZE', Number],
];

function readFile(path: string): Record<string, unknown> {
  const text = readFileSync(path, 'utf8');
  const parsed: unknown = ['.yaml', '.yml'].includes(extname(path)) ? parseYaml(text) : JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError([{ path: path, message: 'must hold an object of settings', code: 'invalid_type' }]);
  }
  return parsed as Record<string, unknown>;
}

/**
 * Resolves the configuration: flags over environment over the config file over defaults.
 * @throws {ConfigError} naming every invalid or missing setting and where it came from.
 */
export function resolveConfig(sources: ConfigSources): CliConfig {
  const explicit = sources.file ?? sources.env.CAAS_DB_CONFIG;
  const candidates = explicit
    ? [resolve(sources.cwd, explicit)]
    : ['json', 'yaml', 'yml'].map((ext) => resolve(sources.cwd, `caas-db.config.${ext}`));
  const path = candidates.find((candidate) => existsSync(candidate));
  if (explicit && !path) throw new ConfigError([{ path: 'config', message: `file ${candidates[0]} does not exist`, code: 'not_found' }]);
  let fromFile: Record<string, unknown> = {};
  try {
    fromFile = path ? readFile(path) : {};
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError([{ path: path ?? 'config', message: `cannot be read: ${(error as Error).message}`, code: 'invalid_format' }]);
  }
  const fromEnv: Record<string, unknown> = {};
  for (const [key, variable, convert] of ENVIRONMENT) {
    const value = sources.env[variable];
    if (value !== undefined && value !== '') fromEnv[key] = convert(value);
  }
  const fromFlags = Object.fromEntries(Object.entries(sources.flags).filter(([, value]) => value !== undefined));
  const merged: Record<string, unknown> = { ...DEFAULTS, ...fromFile, ...fromEnv, ...fromFlags };
  if (path && merged.migrations === fromFile.migrations && typeof merged.migrations === 'string') {
    // A relative migrations folder in a config file is relative to that file.
    merged.migrations = resolve(path, '..', merged.migrations);
  }
  const result = cliConfigSchema.safeParse(merged);
  if (!result.success) {
    throw new ConfigError(toValidationIssues(result.error.issues));
  }
  return result.data;
}
