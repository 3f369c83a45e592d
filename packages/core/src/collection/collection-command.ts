import type {
  AggregateOptions,
  AnyBulkWriteOperation,
  CountDocumentsOptions,
  CreateCollectionOptions,
  CreateIndexesOptions,
  Document,
  Filter,
  FindOptions,
} from 'mongodb';

/** A data command: what repositories send to read and write documents. */
export type DataCommand =
  | { kind: 'find'; filter: Filter<Document>; options: FindOptions }
  | { kind: 'count'; filter: Filter<Document>; options: CountDocumentsOptions }
  | { kind: 'distinct'; field: string; filter: Filter<Document> }
  | { kind: 'insertOne'; document: Document }
  | { kind: 'insertMany'; documents: Document[]; ordered: boolean }
  | { kind: 'updateOne' | 'updateMany'; filter: Filter<Document>; update: Document; upsert: boolean; arrayFilters?: Document[] }
  | {
      kind: 'findOneAndUpdate';
      filter: Filter<Document>;
      update: Document;
      upsert: boolean;
      returnDocument: 'before' | 'after';
      projection?: Document;
      arrayFilters?: Document[];
    }
  | { kind: 'deleteOne' | 'deleteMany'; filter: Filter<Document> }
  | { kind: 'bulkWrite'; operations: AnyBulkWriteOperation<Document>[]; ordered: boolean }
  | { kind: 'aggregate'; pipeline: Document[]; options: AggregateOptions };

/**
 * An admin command: schema and server work the library itself needs (index sync, explain, index
 * usage, collection creation, databases for tests). They pass the same pipeline as data commands,
 * so tenancy scopes (`explain`) or refuses (`indexStats` in tenant scope) each.
 */
export type AdminCommand =
  | { kind: 'listIndexes' }
  | { kind: 'createIndex'; key: Document; options: CreateIndexesOptions }
  | { kind: 'dropIndex'; name: string }
  | { kind: 'explain'; filter: Filter<Document>; options: FindOptions }
  | { kind: 'indexStats' }
  | { kind: 'listCollections'; filter: Document }
  | { kind: 'createCollection'; options: CreateCollectionOptions }
  | { kind: 'dropDatabase' }
  | { kind: 'listDatabases' }
  /** A server command on a named database (`admin` for sharding commands): `data.admin.runCommand`. */
  | { kind: 'serverCommand'; database: string; command: Document };

/**
 * One command as plain data. Middlewares (tenant scoping, quotas, invalidation) read and rewrite
 * it; only the innermost step turns it into a driver call.
 */
export type CollectionCommand = DataCommand | AdminCommand;

/** The kinds of {@link CollectionCommand}. */
export type CommandKind = CollectionCommand['kind'];

/** What a command addressed and who sent it, as observers see it. */
export interface CollectionTarget {
  /** The collection name (`''` for database commands). */
  readonly name: string;
  /** True when every document carries `tenant_id` and must only be reached within one tenant. */
  readonly tenantOwned: boolean;
  /** The repository operation that sent the command, e.g. `messages.markAsRead`. */
  readonly operation: string;
  /** The tenant the command runs for: the repository's binding, else the ambient one (`runWithTenant`). */
  readonly tenant: string | undefined;
}

/** Sees every command after the pipeline ran it (as scoped and sent), with its outcome. */
export interface CommandObserver {
  observe(event: { command: CollectionCommand; target: CollectionTarget; durationMS: number; error?: unknown }): void;
}
