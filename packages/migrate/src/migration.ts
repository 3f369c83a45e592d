import type { DataLayer, TenantRepositories, UpgradeBatch, UpgradeBatchOptions } from '@caas-db/core';
import { z } from 'zod';
import { MigrationInvalidError } from './errors.js';
import type { StepCheckpoint } from './records.js';

/** One batch of a checkpointed step: where it ended and how many documents it handled. */
export interface BatchResult {
  /** The last `_id` this batch handled (the next batch starts after it); null when there is no more. */
  lastId: string | null;
  /** Documents this batch handled. */
  processed: number;
}

/** A repository whose stored documents can be upgraded to its model's version (every `Repository`). */
export interface UpgradableRepository {
  readonly name: string;
  upgradeStored(options?: UpgradeBatchOptions): Promise<UpgradeBatch>;
  count(filter?: Record<string, never>, options?: { includeDeleted?: boolean }): Promise<number>;
}

/** What a migration's `up` and `down` receive. */
export interface MigrationContext {
  /** The data layer (unbound: platform collections; use `repositories` for a tenant's data). */
  readonly data: DataLayer;
  /** The tenant this run is for (tenant-scoped migrations), else undefined. */
  readonly tenant: string | undefined;
  /** `data.forTenant(tenant)` for tenant-scoped migrations, else undefined. */
  readonly repositories: TenantRepositories | undefined;
  /** Aborted when the run should stop: checked by `batches` at every batch boundary. */
  readonly signal: AbortSignal;
  /** A line for the run's log. */
  log(message: string): void;
  /**
   * Runs a step in bounded batches with a checkpoint after each: `batch(after)` handles the
   * documents after `after` (an `_id` as a string, null at the start) and says where it ended.
   * A resumed run starts after the last recorded batch, so no finished batch runs twice; a step
   * already done is skipped. Make each batch idempotent (a crash between a batch and its
   * checkpoint repeats that one batch).
   * @param step - a name unique within the migration (letters, digits, `_`, `-`).
   * @param options.total - the number of documents expected, for progress and ETA.
   */
  batches(step: string, batch: (after: string | null) => Promise<BatchResult>, options?: { total?: number }): Promise<StepCheckpoint>;
  /**
   * Upgrades every stored document of `repository` older than its model's `schemaVersion` with the
   * model's upgrade functions, in checkpointed batches (see {@link batches}).
   */
  upgradeDocuments(repository: UpgradableRepository, options?: { batchSize?: number; step?: string }): Promise<StepCheckpoint>;
}

/** A migration: `up`, optionally `down`, and whether it runs once or once per tenant. */
export interface Migration {
  /** One line shown by `status`. */
  readonly description?: string;
  /** `platform` runs once; `tenant` runs once per tenant (in its own database under the database strategy). @default 'platform' */
  readonly scope?: 'platform' | 'tenant';
  up(context: MigrationContext): Promise<void>;
  down?(context: MigrationContext): Promise<void>;
}

const migrationSchema = z.object({
  description: z.string().max(1024).optional(),
  scope: z.enum(['platform', 'tenant']).optional(),
  up: z.custom<Migration['up']>((value) => typeof value === 'function', 'must be a function'),
  down: z.custom<NonNullable<Migration['down']>>((value) => typeof value === 'function', 'must be a function').optional(),
});

/**
 * Declares a migration (the default export of a migration file).
 * @throws {MigrationInvalidError} when `up` is missing or a field has the wrong type.
 *
 * @example
 * ```ts
 * // migrations/20261130-001-upgrade-users.ts
 * import { defineMigration } from '@caas-db/migrate';
 * export default defineMigration({
 *   scope: 'tenant',
 *   async up({ repositories, upgradeDocuments }) {
 *     await upgradeDocuments(repositories!.users);
 *   },
 * });
 * ```
 */
export function defineMigration(migration: Migration): Migration {
  return validateMigration(migration, 'migration');
}

/** Checks a loaded migration module's export. */
export function validateMigration(candidate: unknown, where: string): Migration {
  const result = migrationSchema.safeParse(candidate);
  if (!result.success) {
    const issues = result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
    throw new MigrationInvalidError(`${where} is not a migration: ${issues}`);
  }
  return candidate as Migration;
}
