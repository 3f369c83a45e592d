import { z } from 'zod';
import { InvariantError } from '../errors.js';
import type { IndexSyncReport, SyncIndexesOptions } from '../indexes/index-sync.js';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import type { RepositoryContext, RepositoryDefinition } from '../repository/repository.js';
import type { CreateInput, StoredDocument } from '../repository/repository-types.js';
import { dateSchema, freeFormSchema, type IdInput, tenantIdSchema, text } from '../schema/primitives.js';
import { AppendOnlyStore } from './append-only-store.js';

/**
 * The expiry grant of `audit_logs`: module-private, so `purgeExpired` is the only command that may
 * delete audit entries, and only those older than its cutoff.
 */
const expiryGrant = Symbol('audit_logs.expiry');

/** Options of {@link AuditLogRepository.purgeExpired}. */
export interface AuditPurgeOptions {
  /** Entries with `at` before this are removed. */
  before: Date;
  /** The configured minimum retention: a `before` later than now minus this many days is refused. */
  minimumRetentionDays: number;
  /** Who runs the purge, for the audit entry it leaves. @default { type: 'system', id: 'retention' } */
  actor?: { type: 'system' | 'operator'; id: string };
  /** Entries removed per command. @default 1000 */
  batchSize?: number;
}

const auditPurgeSchema = z.strictObject({
  before: dateSchema,
  minimumRetentionDays: z.number().int().min(1).max(36_500),
  actor: z.strictObject({ type: z.enum(['system', 'operator']), id: text(128, 1) }).optional(),
  batchSize: z.number().int().min(1).max(10_000).optional(),
});

/** The fields of an `audit_logs` entry: who did what to which record, when. A platform collection. */
export const auditLogSchema = z.strictObject({
  /** The tenant the action concerns (absent for platform-wide actions). */
  tenant_id: tenantIdSchema.optional(),
  actor: z.strictObject({ type: z.enum(['user', 'api_key', 'system', 'operator']), id: text(128, 1) }),
  /** What happened, e.g. `client.suspend`, `api_key.revoke`, `user.erase`. */
  action: z
    .string()
    .regex(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/, 'must be dotted lowercase words such as client.suspend')
    .max(128),
  target: z.strictObject({ collection: text(64, 1), id: text(128).optional() }),
  details: freeFormSchema.optional(),
  ip: z.union([z.ipv4(), z.ipv6()]).optional(),
  at: dateSchema,
});

/** A stored audit entry. */
export type AuditLog = StoredDocument<typeof auditLogSchema>;

/** The definition of `audit_logs`. */
export const auditLogsDefinition: RepositoryDefinition<typeof auditLogSchema> = {
  collection: 'audit_logs',
  schema: auditLogSchema,
  tenantOwned: false,
  schemaVersion: 1,
  invariants: { appendOnly: true, mayExpire: (presented) => presented === expiryGrant },
  sortable: ['at'],
  indexes: [
    { name: 'at', key: { at: 1, _id: 1 }, purpose: 'retention: the oldest entries first (purgeExpired)' },
    { name: 'tenant_at', key: { tenant_id: 1, at: -1, _id: -1 }, purpose: 'a tenant’s audit trail, newest first (listForTenant)' },
    {
      name: 'shard_key',
      key: { tenant_id: 1, _id: 'hashed' },
      purpose: 'supports the hashed shard key { tenant_id, _id: hashed } (docs/sharding.md)',
    },
    { name: 'action_at', key: { action: 1, at: -1, _id: -1 }, purpose: 'every occurrence of an action (listByAction)' },
    { name: 'target', key: { 'target.collection': 1, 'target.id': 1, _id: -1 }, purpose: 'the history of one record (listForTarget)' },
  ],
  queries: [
    {
      name: 'listForTenant',
      equality: ['tenant_id'],
      sort: [
        ['at', -1],
        ['_id', -1],
      ],
    },
    {
      name: 'listByAction',
      equality: ['action'],
      sort: [
        ['at', -1],
        ['_id', -1],
      ],
    },
    { name: 'listForTarget', equality: ['target.collection', 'target.id'], sort: [['_id', -1]] },
    { name: 'findById', equality: ['_id'] },
    {
      name: 'purgeExpired',
      equality: [],
      sort: [
        ['at', 1],
        ['_id', 1],
      ],
    },
  ],
};

/**
 * The audit log: append-only. It offers no update and no delete; entries are kept until a
 * retention job (outside this library) drops whole time ranges.
 */
export class AuditLogRepository {
  readonly #store: AppendOnlyStore<typeof auditLogSchema>;

  constructor(definition: RepositoryDefinition<typeof auditLogSchema>, context: RepositoryContext) {
    this.#store = new AppendOnlyStore(definition, context);
  }

  /** The collection name. */
  get name(): string {
    return this.#store.name;
  }

  /** The definition this repository was built from. */
  get definition(): RepositoryDefinition<typeof auditLogSchema> {
    return this.#store.definition;
  }

  /** Appends one entry. */
  async append(entry: CreateInput<typeof auditLogSchema>): Promise<AuditLog> {
    return this.#store.create(entry);
  }

  /** Appends entries in order; one invalid entry appends none. */
  async appendMany(entries: readonly CreateInput<typeof auditLogSchema>[]): Promise<AuditLog[]> {
    return this.#store.createMany(entries);
  }

  /** One entry, or null. */
  async findById(id: IdInput): Promise<AuditLog | null> {
    return this.#store.findById(id);
  }

  /** A tenant's entries, newest first. */
  async listForTenant(tenantId: string, options: PageOptions = {}): Promise<Page<AuditLog>> {
    const filter = { tenant_id: this.#store.check(tenantIdSchema, tenantId, 'tenantId') };
    return this.#store.list('listForTenant', filter, { ...options, sort: { field: 'at', direction: 'desc' } });
  }

  /** Every entry of one action, newest first. */
  async listByAction(action: string, options: PageOptions = {}): Promise<Page<AuditLog>> {
    const filter = { action: this.#store.check(auditLogSchema.shape.action, action, 'action') };
    return this.#store.list('listByAction', filter, { ...options, sort: { field: 'at', direction: 'desc' } });
  }

  /** The history of one record, newest first. */
  async listForTarget(collection: string, id: string, options: PageOptions = {}): Promise<Page<AuditLog>> {
    const filter = {
      'target.collection': this.#store.check(text(64, 1), collection, 'collection'),
      'target.id': this.#store.check(text(128, 1), id, 'id'),
    };
    return this.#store.list('listForTarget', filter, { ...options, sort: { field: '_id', direction: 'desc' } });
  }

  /**
   * Removes the entries older than `before`, oldest first in batches, and appends an
   * `audit_logs.purge` entry saying how many it removed. The only path that deletes audit entries.
   * @throws {InvariantError} when `before` is later than now minus `minimumRetentionDays`; nothing is removed.
   * @returns how many entries it removed.
   */
  async purgeExpired(options: AuditPurgeOptions): Promise<number> {
    const { before, minimumRetentionDays, actor, batchSize } = this.#store.check(auditPurgeSchema, options, 'options');
    const latest = new Date(this.#store.clock().getTime() - minimumRetentionDays * 86_400_000);
    if (before.getTime() > latest.getTime())
      throw new InvariantError(
        'audit_logs.purgeExpired.before',
        `entries are kept at least ${minimumRetentionDays} days: a purge before ${before.toISOString()} would remove younger ones (latest allowed ${latest.toISOString()})`,
      );
    let removed = 0;
    for (;;) {
      const batch = await this.#store.expiredIds('purgeExpired', 'at', before, batchSize ?? 1000);
      if (batch.length === 0) break;
      removed += await this.#store.deleteExpired(
        'purgeExpired',
        'at',
        batch.map((entry) => entry._id),
        before,
        expiryGrant,
      );
    }
    await this.#store.create({
      actor: actor ?? { type: 'system', id: 'retention' },
      action: 'audit_logs.purge',
      target: { collection: 'audit_logs' },
      details: { before: before.toISOString(), removed, minimum_retention_days: minimumRetentionDays },
      at: this.#store.clock(),
    });
    return removed;
  }

  /** Creates missing indexes and reports drift. */
  async syncIndexes(options: SyncIndexesOptions = {}): Promise<IndexSyncReport> {
    return this.#store.syncIndexes(options);
  }
}
