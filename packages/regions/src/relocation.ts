import { createHash } from 'node:crypto';
import { BSON, type DataLayer, type Document, Repository, type RepositoryDefinition } from '@caas-db/core';
import { relocationGrant } from '@caas-db/core/unsafe';
import { z } from 'zod';

const anyDocument = z.looseObject({});

/** A definition that reaches one tenant-owned collection as raw documents, for copying them verbatim. */
function relocationDefinition(collection: string): RepositoryDefinition<typeof anyDocument> {
  return {
    collection,
    schema: anyDocument,
    tenantOwned: true,
    schemaVersion: 1,
    indexes: [],
    queries: [{ name: 'tenantMove (scan by _id)', equality: ['tenant_id'], range: ['_id'] }],
  };
}

const read = { name: 'tenantMove (read)', grant: relocationGrant };
const copy = { name: 'tenantMove (copy)', idempotent: true, grant: relocationGrant };
const remove = { name: 'tenantMove (delete)', idempotent: true, grant: relocationGrant };

/**
 * One tenant's documents of one collection on one cluster, as the move sees them: `_id`-ordered
 * batches, verbatim upserts and deletes, all through the cluster's pipeline with the relocation grant.
 */
export class RelocationRepository extends Repository<typeof anyDocument> {
  /** Up to `limit` documents after `after` (exclusive), by `_id`; `until` bounds the range (inclusive). */
  batch(after: unknown, limit: number, until?: unknown): Promise<Document[]> {
    const range: Document = {};
    if (after !== undefined) range.$gt = after;
    if (until !== undefined) range.$lte = until;
    return this.collection.find(read, Object.keys(range).length > 0 ? { _id: range } : {}, { sort: { _id: 1 }, limit });
  }

  /** Writes the documents as they are (replacing any with the same `_id`). */
  async put(documents: readonly Document[]): Promise<void> {
    if (documents.length === 0) return;
    await this.collection.bulkWrite(
      copy,
      documents.map((document) => ({ replaceOne: { filter: { _id: document._id }, replacement: document, upsert: true } })),
      false,
    );
  }

  /** Deletes the documents with these ids. */
  async removeIds(ids: readonly unknown[]): Promise<void> {
    if (ids.length > 0) await this.collection.deleteMany(remove, { _id: { $in: [...ids] } } as Document);
  }

  /** Deletes the tenant's documents after `after` (all of them when undefined). */
  async removeAfter(after: unknown): Promise<number> {
    const result = await this.collection.deleteMany(remove, after === undefined ? {} : ({ _id: { $gt: after } } as Document));
    return result.deletedCount;
  }
}

/** The relocation view of `tenant`'s documents of `collection` on a cluster's data layer. */
export function relocationOf(layer: DataLayer, collection: string, tenant: string): RelocationRepository {
  return layer.repository(relocationDefinition(collection), RelocationRepository, tenant);
}

/** A document in canonical Extended JSON: equal strings mean equal documents, field order included. */
export function canonical(document: Document): string {
  return BSON.EJSON.stringify(document, { relaxed: false });
}

/** Count and SHA-256 over a tenant's documents of one collection, in `_id` order. */
export async function digestOf(repository: RelocationRepository, batchSize: number): Promise<{ count: number; hash: string }> {
  const hash = createHash('sha256');
  let count = 0;
  let after: unknown;
  for (;;) {
    const documents = await repository.batch(after, batchSize);
    for (const document of documents) hash.update(canonical(document)).update('\n');
    count += documents.length;
    if (documents.length < batchSize) break;
    after = documents[documents.length - 1]?._id;
  }
  return { count, hash: hash.digest('hex') };
}
