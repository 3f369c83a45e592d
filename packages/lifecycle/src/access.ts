import { type AnyBulkWriteOperation, type Document, type QueryShape, Repository, type RepositoryDefinition } from '@caas-db/core';
import type { z } from 'zod';

/**
 * The lifecycle's own module-private grant. The hold guard lets commands that carry it through:
 * the engine and erasure have already excluded what a hold covers.
 */
export const lifecycleGrant: unique symbol = Symbol('caas-db.lifecycle');

/**
 * Raw commands on one collection, through the data layer's pipeline like every repository
 * (scoping, tenancy routing, invariants, cache invalidation). The lifecycle reads and writes the
 * data model with it; every query shape it sends is declared in {@link lifecycleQueryShapes}.
 */
export class CollectionAccess<S extends z.ZodObject = z.ZodObject> extends Repository<S> {
  /** Finds documents. */
  rawFind(
    operation: string,
    filter: Document,
    options: { sort?: Document; limit?: number; projection?: Document } = {},
  ): Promise<Document[]> {
    return this.collection.find({ name: operation, idempotent: true }, filter, options);
  }

  /** The distinct values of `field` among the documents of `filter`. */
  rawDistinct(operation: string, field: string, filter: Document): Promise<unknown[]> {
    return this.collection.distinct({ name: operation, idempotent: true }, field, filter);
  }

  /** Counts documents. */
  rawCount(operation: string, filter: Document): Promise<number> {
    return this.collection.count(operation, filter);
  }

  /** Updates every matching document. @returns how many changed. */
  async rawUpdateMany(operation: string, filter: Document, update: Document): Promise<number> {
    const result = await this.collection.updateMany({ name: operation, idempotent: true, grant: lifecycleGrant }, filter, update);
    return result.modifiedCount;
  }

  /** Deletes every matching document. @returns how many were deleted. */
  async rawDeleteMany(operation: string, filter: Document): Promise<number> {
    const result = await this.collection.deleteMany({ name: operation, idempotent: true, grant: lifecycleGrant }, filter);
    return result.deletedCount;
  }

  /** Runs a batch of writes, unordered. */
  async rawBulkWrite(operation: string, operations: AnyBulkWriteOperation<Document>[]): Promise<void> {
    if (operations.length > 0)
      await this.collection.bulkWrite({ name: operation, idempotent: true, grant: lifecycleGrant }, operations, false);
  }

  /** Inserts or replaces fields of the document matching `filter` (an equality on a unique key). */
  async rawUpsert(operation: string, filter: Document, update: Document): Promise<void> {
    await this.upsertOne(operation, filter, update);
  }

  /** Inserts one document as given (stamped with the tenant by the scoper). */
  async rawInsert(operation: string, document: Document): Promise<void> {
    await this.collection.insertOne({ name: operation, idempotent: true }, document);
  }
}

/**
 * The queries the lifecycle sends to the data model's collections, beyond the ones the core
 * repositories declare: each is served by a declared index (a test checks it with `indexServes`),
 * or, where marked, by the tenant prefix of one (erasure and export scan one tenant's documents).
 */
export const lifecycleQueryShapes: Readonly<Record<string, readonly QueryShape[]>> = {
  conversations: [
    { name: 'lifecycle: conversations of a tenant by id (purge, export)', equality: ['tenant_id'], sort: [['_id', 1]] },
    { name: 'lifecycle: last_message of an erased sender (tenant prefix)', equality: ['tenant_id'], residual: ['last_message.sender_id'] },
    {
      name: 'lifecycle: memberships of a user (equality prefix; one user’s conversations, sorted in memory)',
      equality: ['tenant_id', 'participants.user_id'],
      sort: [['_id', 1]],
    },
  ],
  messages: [
    {
      name: 'lifecycle: expired messages of a conversation, oldest first',
      equality: ['tenant_id', 'conversation_id'],
      sort: [
        ['created_at', 1],
        ['_id', 1],
      ],
      residual: ['sender_id'],
    },
    {
      name: 'lifecycle: soft-deleted messages whose content is not purged yet',
      equality: ['tenant_id', 'conversation_id'],
      sort: [['_id', 1]],
      residual: ['deleted_at', 'content.encrypted_data', 'created_at', 'sender_id'],
    },
    { name: 'lifecycle: a sender’s messages (export, erase)', equality: ['tenant_id', 'sender_id'], sort: [['_id', 1]] },
    {
      name: 'lifecycle: messages of a conversation by id (tenant export, orphans)',
      equality: ['tenant_id', 'conversation_id'],
      sort: [['_id', 1]],
    },
    { name: 'lifecycle: distinct conversations of a tenant’s messages (orphans; tenant prefix)', equality: ['tenant_id'] },
    {
      name: 'lifecycle: traces of a user on others’ messages (tenant prefix)',
      equality: ['tenant_id'],
      sort: [['_id', 1]],
      residual: ['reactions.user_id', 'read_by.user_id'],
    },
  ],
  events: [
    { name: 'lifecycle: a tenant’s documents by id (tenant export; tenant prefix)', equality: ['tenant_id'], sort: [['_id', 1]] },
    {
      name: 'lifecycle: expired events, oldest first',
      equality: ['tenant_id'],
      sort: [
        ['occurred_at', 1],
        ['_id', 1],
      ],
      residual: ['user_id', 'expire_at'],
    },
    {
      name: 'lifecycle: a user’s or conversation’s events (tenant prefix)',
      equality: ['tenant_id'],
      residual: ['user_id', 'conversation_id', 'expire_at'],
    },
  ],
  metrics: [
    { name: 'lifecycle: metric names of a tenant (purge; tenant prefix)', equality: ['tenant_id'] },
    { name: 'lifecycle: expired measurements of a metric (dry run)', equality: ['tenant_id', 'name'], range: ['timestamp'] },
  ],
  files: [
    { name: 'lifecycle: a tenant’s documents by id (tenant export; tenant prefix)', equality: ['tenant_id'], sort: [['_id', 1]] },
    {
      name: 'lifecycle: expired shares',
      equality: ['tenant_id', 'sharing.type'],
      residual: ['sharing.expiry', 'sharing.conversation_id', 'uploader_id', '_id'],
    },
    { name: 'lifecycle: a user’s uploads', equality: ['tenant_id', 'uploader_id'], sort: [['_id', 1]] },
    {
      name: 'lifecycle: shares in missing conversations (orphans; tenant prefix)',
      equality: ['tenant_id'],
      residual: ['sharing.conversation_id', 'uploader_id'],
    },
  ],
  users: [
    { name: 'lifecycle: relationships naming a user (tenant prefix)', equality: ['tenant_id'], residual: ['relationships.user_id'] },
    { name: 'lifecycle: users of a tenant by id', equality: ['tenant_id'], sort: [['_id', 1]] },
  ],
  groups: [
    { name: 'lifecycle: a tenant’s documents by id (tenant export; tenant prefix)', equality: ['tenant_id'], sort: [['_id', 1]] },
    { name: 'lifecycle: groups a user owns', equality: ['tenant_id', 'owner_id'], sort: [['_id', 1]] },
    { name: 'lifecycle: groups a user belongs to', equality: ['tenant_id', 'member_ids'], sort: [['_id', 1]] },
  ],
  settings: [
    { name: 'lifecycle: a tenant’s documents by id (tenant export; tenant prefix)', equality: ['tenant_id'], sort: [['_id', 1]] },
    { name: 'lifecycle: a user’s settings', equality: ['tenant_id', 'owner_key'] },
  ],
};

/** `definition` with the lifecycle's query shapes of its collection added. */
export function withLifecycleShapes<S extends z.ZodObject>(definition: RepositoryDefinition<S>): RepositoryDefinition<S> {
  return { ...definition, queries: [...definition.queries, ...(lifecycleQueryShapes[definition.collection] ?? [])] };
}
