import { type Page, Repository, type RepositoryDefinition } from '@caas-db/core';
import { z } from 'zod';

/** Where a batched step of a migration stands: resumed after `after` by the next run. */
export const checkpointSchema = z.strictObject({
  /** The last `_id` (as a string) of the last finished batch; null before the first or after the last. */
  after: z.string().max(256).nullable(),
  batches: z.number().int().min(0),
  documents: z.number().int().min(0),
  done: z.boolean(),
});

/** A checkpoint of one step. */
export type StepCheckpoint = z.output<typeof checkpointSchema>;

/** States of one migration on one target (the platform, or one tenant). */
export const recordStatuses = ['running', 'applied', 'interrupted', 'failed', 'rolled_back'] as const;

/** The fields of a `caas_migrations` document: one migration on one target. */
export const migrationRecordSchema = z.strictObject({
  /** The migration's id (its file name without extension). */
  migration: z.string().min(1).max(256),
  /** The tenant it ran for; '' for platform migrations. */
  tenant: z.string().max(64),
  scope: z.enum(['platform', 'tenant']),
  /** SHA-256 of the file when it ran: `status` reports `changed` when the file differs now. */
  checksum: z.string().regex(/^[0-9a-f]{64}$/),
  status: z.enum(recordStatuses),
  /** Who ran it (user@host, or the runner's `runBy`). */
  ran_by: z.string().min(1).max(512),
  started_at: z.date(),
  finished_at: z.date().optional(),
  duration_ms: z.number().min(0).optional(),
  checkpoints: z.record(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), checkpointSchema).default({}),
  error: z.string().max(4096).optional(),
});

/** A stored migration record. */
export type MigrationRecord = z.output<typeof migrationRecordSchema> & { _id: unknown; updated_at: Date };

/** The definition of `caas_migrations` (a platform collection). */
export const migrationRecordsDefinition: RepositoryDefinition<typeof migrationRecordSchema> = {
  collection: 'caas_migrations',
  schema: migrationRecordSchema,
  tenantOwned: false,
  schemaVersion: 1,
  indexes: [{ name: 'migration_tenant', key: { migration: 1, tenant: 1 }, unique: true, purpose: 'one record per migration and target' }],
  queries: [
    { name: 'record of a migration', equality: ['migration', 'tenant'] },
    { name: 'findMany', equality: [], sort: [['_id', -1]] },
  ],
};

/** The records of migrations run. */
export class MigrationRecordRepository extends Repository<typeof migrationRecordSchema> {
  /** Every record, oldest first. */
  async all(): Promise<MigrationRecord[]> {
    const records: MigrationRecord[] = [];
    let cursor: string | null = null;
    do {
      const page: Page<unknown> = await this.findMany(
        {},
        { limit: 500, sort: { field: '_id', direction: 'asc' }, ...(cursor && { cursor }) },
      );
      records.push(...(page.items as MigrationRecord[]));
      cursor = page.nextCursor;
    } while (cursor);
    return records;
  }
}
