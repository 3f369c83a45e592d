import { type DataLayer, type Document, type Filter, Repository, type RepositoryDefinition } from '@caas-db/core';
import { relocationGrant } from '@caas-db/core/unsafe';
import { z } from 'zod';

const anyDocument = z.looseObject({});

/** The index a tenant's backup scans by: `_id` order within the tenant. */
export const BACKUP_SCAN_INDEX = 'tenant_id_1__id_1';

/** The definition of one tenant-owned collection as backup and restore see it. */
export function backupDefinitionOf(collection: string): RepositoryDefinition<typeof anyDocument> {
  return {
    collection,
    schema: anyDocument,
    tenantOwned: true,
    schemaVersion: 1,
    indexes: [{ name: BACKUP_SCAN_INDEX, key: { tenant_id: 1, _id: 1 }, purpose: 'per-tenant backup scans in _id order' }],
    queries: [
      { name: 'backup.scan', equality: ['tenant_id'], range: ['_id'], sort: [['_id', 1]] },
      { name: 'restore.existing', equality: ['tenant_id', '_id'] },
      {
        name: 'verify.newestLive',
        equality: ['tenant_id', 'conversation_id', 'deleted_at'],
        sort: [
          ['created_at', -1],
          ['_id', -1],
        ],
      },
    ],
  } as RepositoryDefinition<typeof anyDocument>;
}

/**
 * Writes a restore sends: verbatim copies of documents that passed the model's invariants when they
 * were first written. They carry the relocation grant (from `@caas-db/core/unsafe`), which lets the
 * `invariants` layer admit exactly inserts, deletes and whole-document replacements by `_id` (guarded
 * fields and terminal states as they were stored; deletes of append-only entries when a restore
 * replaces them); updates stay checked. Every command still passes tenant scoping, quotas and the
 * isolation auditor.
 */
const VERBATIM_INSERT = { name: 'restore.insert', idempotent: true, grant: relocationGrant } as const;
const VERBATIM_DELETE = { name: 'restore.delete', idempotent: true, grant: relocationGrant } as const;

/**
 * One tenant's documents of one collection, through the data layer's pipeline (scoped to the
 * tenant, routed to its database under database-per-tenant, quotas and auditing as configured).
 */
export class TenantCollection extends Repository<typeof anyDocument> {
  /**
   * The next page in `_id` order after `afterId`, with exact BSON types (`promoteValues: false`
   * keeps Int32, Double and Long apart, so a restore writes back the same types).
   */
  scanPage(afterId: unknown, limit: number): Promise<Document[]> {
    const filter = (afterId === undefined ? {} : { _id: { $gt: afterId } }) as Filter<Document>;
    return this.collection.find({ name: 'backup.scan', idempotent: true }, filter, {
      sort: { _id: 1 },
      limit,
      promoteValues: false,
      promoteLongs: false,
    });
  }

  /** Documents of the tenant matching `filter` (a restore's selection), with exact types. */
  findExact(filter: Filter<Document>, limit?: number): Promise<Document[]> {
    return this.collection.find({ name: 'restore.read', idempotent: true }, filter, {
      sort: { _id: 1 },
      ...(limit !== undefined && { limit }),
      promoteValues: false,
      promoteLongs: false,
    });
  }

  /** The newest live message of a conversation (what its `last_message` must name), read-only. */
  async newestLiveMessage(conversationId: unknown): Promise<Document | undefined> {
    const filter = { conversation_id: conversationId, deleted_at: null } as Filter<Document>;
    const [newest] = await this.collection.find({ name: 'verify.newestLive', idempotent: true }, filter, {
      sort: { created_at: -1, _id: -1 },
      limit: 1,
      projection: { _id: 1 },
    });
    return newest;
  }

  /** Which of `ids` the tenant has. */
  async existingIds(ids: unknown[]): Promise<unknown[]> {
    const filter = { _id: { $in: ids } } as Filter<Document>;
    if (ids.length === 0) return [];
    const found = await this.collection.find({ name: 'restore.existing', idempotent: true }, filter, { projection: { _id: 1 } });
    return found.map((document) => document._id as unknown);
  }

  /** The tenant's documents here, counted (soft-deleted ones included). */
  countAll(filter: Filter<Document> = {}): Promise<number> {
    return this.collection.count({ name: 'restore.count', idempotent: true }, filter);
  }

  /** Inserts documents verbatim (unordered). */
  async insertVerbatim(documents: Document[]): Promise<number> {
    if (documents.length === 0) return 0;
    const result = await this.collection.insertMany(VERBATIM_INSERT, documents, false);
    return result.insertedCount;
  }

  /** Replaces documents by `_id`, inserting those missing (journal replay of post-images). */
  async replaceVerbatim(documents: Document[]): Promise<void> {
    if (documents.length === 0) return;
    await this.collection.deleteMany(VERBATIM_DELETE, { _id: { $in: documents.map((document) => document._id) } });
    await this.collection.insertMany(VERBATIM_INSERT, documents, false);
  }

  /** Deletes the tenant's documents matching `filter` here. */
  async deleteVerbatim(filter: Filter<Document>): Promise<number> {
    const result = await this.collection.deleteMany(VERBATIM_DELETE, filter);
    return result.deletedCount;
  }

  /** Ensures the backup scan index (`{ tenant_id: 1, _id: 1 }`). */
  ensureScanIndex(): Promise<unknown> {
    return this.syncIndexes();
  }
}

/** The tenant's view of `collection` on `data`. */
export function tenantCollection(data: DataLayer, collection: string, tenant: string): TenantCollection {
  return data.repository(backupDefinitionOf(collection), TenantCollection, tenant);
}
