import type { AggregateOptions, AnyBulkWriteOperation, CountDocumentsOptions, Document, Filter, FindOptions } from 'mongodb';

/**
 * One command a repository asks a scoped collection to send, as plain data. Interceptors (tenant
 * scoping, quotas) rewrite or refuse it, observers (monitoring, the tenant auditor, query-shape
 * recording) see it; only then does it reach the driver.
 */
export type CollectionCommand =
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

/** The kinds of {@link CollectionCommand}. */
export type CommandKind = CollectionCommand['kind'];

/** What a scoped collection is, and who sends a command to it. */
export interface CollectionTarget {
  /** The collection name. */
  readonly name: string;
  /** True when every document carries `tenant_id` and must only be reached within one tenant. */
  readonly tenantOwned: boolean;
  /** The repository operation that sent the command, e.g. `messages.markAsRead`. */
  readonly operation: string;
  /** The tenant the command runs for: the repository's binding, else the ambient one (`runWithTenant`). */
  readonly tenant: string | undefined;
}

/**
 * Rewrites or refuses a command before it is sent. Throw a `CaasDbError` to refuse; nothing is
 * sent then. Interceptors run in order, each on the previous one's output.
 */
export interface CommandInterceptor {
  intercept(command: CollectionCommand, target: CollectionTarget): CollectionCommand | Promise<CollectionCommand>;
  /** The database for this command, when the interceptor chooses it (database-per-tenant). */
  databaseFor?(target: CollectionTarget): string | undefined | Promise<string | undefined>;
  /** Called after the server accepted the command, with its result (quota accounting). */
  afterSuccess?(command: CollectionCommand, target: CollectionTarget, result: unknown): void | Promise<void>;
  /** Called after the command failed (to release what `intercept` reserved). */
  afterFailure?(command: CollectionCommand, target: CollectionTarget, error: unknown): void | Promise<void>;
}

/** Sees every command after interception, with its outcome. */
export interface CommandObserver {
  observe(event: { command: CollectionCommand; target: CollectionTarget; durationMS: number; error?: unknown }): void;
}

/** The update operators that leave a document the same when applied twice. */
const IDEMPOTENT_UPDATE_OPERATORS = new Set(['$set', '$unset', '$setOnInsert', '$addToSet', '$pull', '$max', '$min', '$currentDate']);

/** True when sending `command` twice has the effect of sending it once (it may then be retried after a network error). */
export function isIdempotentCommand(command: CollectionCommand): boolean {
  switch (command.kind) {
    case 'find':
    case 'count':
    case 'distinct':
    case 'deleteOne':
    case 'deleteMany':
      return true;
    case 'aggregate':
      return !command.pipeline.some((stage) => '$out' in stage || '$merge' in stage);
    case 'updateOne':
    case 'updateMany':
    case 'findOneAndUpdate':
      return Object.keys(command.update).every((operator) => IDEMPOTENT_UPDATE_OPERATORS.has(operator));
    default:
      // Inserts carry client-generated ids; a retry after an unknown outcome could report a
      // duplicate key for a write that did succeed, so they are retried only when never sent.
      return false;
  }
}
