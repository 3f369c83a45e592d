import { type ArchiveListing, type ArchiveTarget, type KeyProvider, listArchives, openArchive } from '@caas-db/archive';
import { ConfigError, type DataLayer, type Document, parseInput, tenantIdSchema, ValidationError } from '@caas-db/core';
import { z } from 'zod';
import { type BackupResult, createTenantBackup } from './backup.js';
import type { IdMode } from './id-remap.js';
import { enablePreImages } from './isolation.js';
import { TenantJournal } from './journal.js';
import { defaultCollections } from './model.js';
import { type PointInTime, type PointInTimeResult, restoreToPointInTime } from './pitr.js';
import { type RestoreMode, type RestoreResult, restoreTenantBackup } from './restore.js';
import { parseSelection, type RestoreSelection } from './selection.js';
import { tenantCollection } from './tenant-collection.js';
import { type BackupVerification, verifyTenantBackup } from './verify-backup.js';

/** Options of {@link createBackupService}. */
export interface BackupServiceOptions {
  /** The data layer backups read from and restores write to (with `@caas-db/tenancy` where you use it). */
  data: DataLayer;
  /** Where backups (and restore checkpoints) are stored. */
  target: ArchiveTarget;
  /** Where journal segments are stored. @default target */
  journalTarget?: ArchiveTarget;
  /** Wraps each backup's data key (your KMS). */
  keyProvider: KeyProvider;
  /** Collections to back up. @default every tenant-owned collection of the data model */
  collections?: string[];
  /**
   * The database holding a tenant's collections, for change streams (they are opened outside the
   * pipeline, which routes everything else): under database-per-tenant pass
   * `(tenant) => tenantDatabaseName(tenant)` from `@caas-db/tenancy`. @default the client's database
   */
  databaseOf?: (tenant: string) => string | undefined;
  /** Documents per read of a backup scan. @default 1000 */
  pageSize?: number;
  /** Plaintext bytes per archive chunk. @default 4 MiB */
  chunkBytes?: number;
  /** Key prefix of backups. @default 'backups' */
  prefix?: string;
  /** Key prefix of journals. @default 'journals' */
  journalPrefix?: string;
}

const prefixSchema = z.string().regex(/^[a-z][a-z0-9_-]{0,39}$/, 'must be 1-40 of a-z, 0-9, _ and -, starting with a letter');
const serviceOptionsSchema = z.strictObject({
  data: z.custom<DataLayer>(
    (value) => typeof value === 'object' && value !== null && 'forTenant' in value && 'repository' in value,
    'must be a DataLayer',
  ),
  target: z.custom<ArchiveTarget>((value) => typeof value === 'object' && value !== null && 'put' in value, 'must be an ArchiveTarget'),
  journalTarget: z
    .custom<ArchiveTarget>((value) => typeof value === 'object' && value !== null && 'put' in value, 'must be an ArchiveTarget')
    .optional(),
  keyProvider: z.custom<KeyProvider>((value) => typeof value === 'object' && value !== null && 'wrapKey' in value, 'must be a KeyProvider'),
  collections: z
    .array(z.string().regex(/^[A-Za-z0-9_.-]{1,120}$/))
    .min(1)
    .optional(),
  databaseOf: z.custom<(tenant: string) => string | undefined>((value) => typeof value === 'function').optional(),
  pageSize: z.number().int().min(1).max(10_000).optional(),
  chunkBytes: z
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .optional(),
  prefix: prefixSchema.optional(),
  journalPrefix: prefixSchema.optional(),
});

const createSchema = z.strictObject({
  tenant: tenantIdSchema,
  /** Name suffix; default: the time. */
  label: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,80}$/)
    .optional(),
  consistency: z.enum(['change-stream-catch-up', 'none']).optional(),
  onProgress: z
    .custom<(progress: { collection: string; documents: number }) => void | Promise<void>>((value) => typeof value === 'function')
    .optional(),
});

const restoreSchema = z.strictObject({
  name: z.string().min(1),
  tenant: tenantIdSchema.optional(),
  data: z.custom<DataLayer>((value) => typeof value === 'object' && value !== null && 'forTenant' in value).optional(),
  mode: z.enum(['replace', 'merge']).optional(),
  select: z.unknown().optional(),
  collections: z.array(z.string()).min(1).optional(),
  rewrite: z.custom<(document: Document, collection: string) => Document>((value) => typeof value === 'function').optional(),
  ids: z.enum(['keep', 'remap']).optional(),
  verify: z.boolean().optional(),
  resumable: z.boolean().optional(),
  preflight: z.boolean().optional(),
  onProgress: z.custom<(progress: { collection: string; documents: number }) => void>((value) => typeof value === 'function').optional(),
});

/** Options of {@link BackupService.restore}. */
export interface RestoreOptions {
  /** The backup's archive name (from `create` or `list`). */
  name: string;
  /** The tenant to restore into. @default the backup's tenant */
  tenant?: string;
  /** Another data layer to restore into (another database or cluster). @default the service's */
  data?: DataLayer;
  /**
   * `replace` (default): the tenant's documents of each restored collection (or those the selection
   * names) are removed first, so the result equals the backup. `merge`: documents whose `_id`
   * exists are kept as they are, the others inserted.
   */
  mode?: RestoreMode;
  /** A partial restore: one conversation, one user, or a creation-time range. */
  select?: RestoreSelection;
  /** Only these collections of the backup. */
  collections?: string[];
  /** Your own rewrite of each document (after the tenant rewrite and id remapping), for references of your collections. */
  rewrite?: (document: Document, collection: string) => Document;
  /**
   * `keep` (default): documents keep their `_id`s (every reference stays valid as it is), so one
   * database holds one copy. `remap` (another tenant id only): every `_id` and every reference to one
   * (ObjectIds at any depth, and the ids the model embeds in strings) is mapped to ids of the target
   * tenant, deterministically, so a copy can live in the same shared collections as its source and a
   * rerun or a resumed run writes the same ids. Map ids of your own string references in `rewrite`
   * with `createIdRemap(sourceTenant, targetTenant)`.
   */
  ids?: IdMode;
  /** Verify the result against the backup (counts, contents, schemas, last_message). @default true */
  verify?: boolean;
  /** Keep a checkpoint so a rerun after a crash continues. @default true */
  resumable?: boolean;
  /**
   * Check the whole backup (every chunk) before the first write, so a damaged backup fails with
   * `ArchiveIntegrityError` and changes nothing. Costs one extra read of the archive. @default true
   */
  preflight?: boolean;
  onProgress?: (progress: { collection: string; documents: number }) => void;
}

/** Per-tenant backup, verification, restore and point-in-time recovery over one data layer. */
export interface BackupService {
  /** Takes a full backup of one tenant. See docs/backup-recovery.md. */
  create(options: {
    tenant: string;
    label?: string;
    consistency?: 'change-stream-catch-up' | 'none';
    /** Called after each page read; a returned promise is awaited before the next page. */
    onProgress?: (progress: { collection: string; documents: number }) => void | Promise<void>;
  }): Promise<BackupResult>;
  /** The backups (of one tenant, or all), oldest first. */
  list(tenant?: string): Promise<ArchiveListing[]>;
  /** Checks a backup without restoring it (archive integrity, recorded counts, model schemas). */
  verify(name: string): Promise<BackupVerification>;
  /** Restores a backup (whole or partial, same or other tenant, replace or merge), resumably, verified. */
  restore(options: RestoreOptions): Promise<RestoreResult>;
  /** Brings a tenant (or a copy under another tenant id) to its state at `to`: full backup + journal. */
  restoreToPointInTime(options: {
    tenant: string;
    to: PointInTime;
    into?: string;
    data?: DataLayer;
    ids?: IdMode;
  }): Promise<PointInTimeResult>;
  /** The continuous journal of one tenant (start it, keep it running, stop it). */
  journal(tenant: string, options?: { segmentEvents?: number; flushIntervalMS?: number }): TenantJournal;
  /** Creates the `{ tenant_id: 1, _id: 1 }` index backup scans use, in the tenant's database (or the shared one). */
  syncIndexes(tenant: string): Promise<void>;
  /**
   * Turns on change-stream pre-images (`changeStreamPreAndPostImages`, MongoDB 6.0+) for the backed-up
   * collections of the shared database, creating missing ones: journals of tenants in shared
   * collections need them to see their own deletes (and only theirs), and backups then catch up on
   * deletes too. Once per deployment; not needed under database-per-tenant.
   * @throws the server's error where it has no pre-images.
   */
  enablePreImages(): Promise<void>;
}

/**
 * Creates the backup service.
 * @throws {ConfigError} for invalid options.
 * @example
 * ```ts
 * const backups = createBackupService({ data, target: filesystemTarget('/var/backups/caas'), keyProvider });
 * const { name } = await backups.create({ tenant: 'acme' });
 * await backups.verify(name);
 * await backups.restore({ name, tenant: 'acme-restored' });
 * ```
 */
export function createBackupService(options: BackupServiceOptions): BackupService {
  const parsed = serviceOptionsSchema.safeParse(options);
  if (!parsed.success)
    throw new ConfigError(parsed.error.issues.map((issue) => ({ path: issue.path.join('.'), message: issue.message, code: issue.code })));
  const { data, target, keyProvider } = options;
  const journalTarget = options.journalTarget ?? target;
  const prefix = options.prefix ?? 'backups';
  const journalPrefixOption = options.journalPrefix ?? 'journals';
  const collectionsOf = () => options.collections ?? defaultCollections(data);
  const assertName = (name: string) => {
    if (!name.startsWith(`${prefix}/`))
      throw new ValidationError('backup name', [{ path: 'name', message: `must start with ${prefix}/`, code: 'invalid_value' }]);
  };

  return {
    async create(input) {
      const { tenant, label, consistency, onProgress } = parseInput(createSchema, input, 'backup options');
      const stamp = new Date().toISOString().replace(/[-:]/g, '');
      const name = `${prefix}/${tenant}/${label ?? stamp}`;
      return createTenantBackup({
        data,
        target,
        keyProvider,
        tenant,
        name,
        collections: collectionsOf(),
        database: options.databaseOf?.(tenant),
        pageSize: options.pageSize ?? 1000,
        chunkBytes: options.chunkBytes,
        consistency: consistency ?? 'change-stream-catch-up',
        onProgress,
      });
    },
    async list(tenant) {
      if (tenant !== undefined) parseInput(tenantIdSchema, tenant, 'tenant');
      const listings = await listArchives(target, tenant === undefined ? `${prefix}/` : `${prefix}/${tenant}/`);
      return listings.filter((listing) => listing.kind === 'backup');
    },
    async verify(name) {
      assertName(name);
      return verifyTenantBackup(await openArchive({ target, keyProvider, name }), data);
    },
    async restore(input) {
      const restore = parseInput(restoreSchema, input, 'restore options');
      assertName(restore.name);
      const selection = parseSelection(restore.select as RestoreSelection | undefined);
      const reader = await openArchive({ target, keyProvider, name: restore.name });
      const tenant = restore.tenant ?? (reader.manifest.metadata as { tenant?: string }).tenant ?? '';
      return restoreTenantBackup({
        data: restore.data ?? data,
        reader,
        checkpoints: restore.resumable === false ? undefined : target,
        tenant,
        mode: restore.mode ?? 'replace',
        selection,
        rewrite: restore.rewrite,
        collections: restore.collections,
        ids: restore.ids,
        verify: restore.verify ?? true,
        preflight: restore.preflight ?? true,
        pageSize: options.pageSize,
        onProgress: restore.onProgress,
      });
    },
    async restoreToPointInTime(input) {
      const pitr = parseInput(
        z.strictObject({
          tenant: tenantIdSchema,
          to: z.custom<PointInTime>(
            (value) => value instanceof Date || (typeof value === 'object' && value !== null && '_bsontype' in value),
          ),
          into: tenantIdSchema.optional(),
          data: z.custom<DataLayer>((value) => typeof value === 'object' && value !== null && 'forTenant' in value).optional(),
          ids: z.enum(['keep', 'remap']).optional(),
        }),
        input,
        'point-in-time options',
      );
      return restoreToPointInTime({
        data: pitr.data ?? data,
        backups: target,
        journals: journalTarget,
        keyProvider,
        backupPrefix: prefix,
        journalPrefix: journalPrefixOption,
        sourceTenant: pitr.tenant,
        tenant: pitr.into ?? pitr.tenant,
        to: pitr.to,
        checkpoints: target,
        ids: pitr.ids,
      });
    },
    journal(tenant, journalOptions = {}) {
      parseInput(tenantIdSchema, tenant, 'tenant');
      return new TenantJournal({
        data,
        target: journalTarget,
        keyProvider,
        tenant,
        collections: collectionsOf(),
        database: options.databaseOf?.(tenant),
        prefix: journalPrefixOption,
        segmentEvents: journalOptions.segmentEvents,
        flushIntervalMS: journalOptions.flushIntervalMS,
      });
    },
    async syncIndexes(tenant) {
      parseInput(tenantIdSchema, tenant, 'tenant');
      for (const collection of collectionsOf()) await tenantCollection(data, collection, tenant).ensureScanIndex();
    },
    async enablePreImages() {
      await enablePreImages(data, collectionsOf());
    },
  };
}
