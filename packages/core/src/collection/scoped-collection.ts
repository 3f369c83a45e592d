import type {
  AggregateOptions,
  AnyBulkWriteOperation,
  BulkWriteResult,
  CountDocumentsOptions,
  CreateCollectionOptions,
  CreateIndexesOptions,
  DeleteResult,
  Document,
  Filter,
  FindOptions,
  InsertManyResult,
  InsertOneResult,
  UpdateResult,
} from 'mongodb';
import type { CommandPipeline } from '../pipeline/command-pipeline.js';
import { type CollectionInfo, type OperationDeclaration, operationContext } from '../pipeline/operation.js';
import { currentSession } from '../transactions/transaction-context.js';
import type { CollectionCommand } from './collection-command.js';

/** What every scoped collection of a data layer shares. */
export interface CollectionEnvironment {
  readonly pipeline: CommandPipeline;
  /** The ambient tenant of the current call (e.g. from `runWithTenant`), for unbound repositories. */
  readonly resolveTenant: (() => string | undefined) | undefined;
  /** Whether a collection's documents belong to tenants (the data layer's registry). */
  readonly isTenantOwned: (collection: string) => boolean;
}

/** Options of a write that may carry array filters or upsert. */
export interface UpdateCommandOptions {
  upsert?: boolean;
  arrayFilters?: Document[];
}

/**
 * The one object a repository talks to its collection through. It holds no driver object: every
 * method builds its command as data, with the operation's declared aspects, and runs it through
 * the data layer's pipeline (tenant scoping, quotas, invalidation, tracing, retry, then the send).
 */
export class ScopedCollection {
  readonly #environment: CollectionEnvironment;
  readonly #info: CollectionInfo;
  readonly #tenant: string | undefined;

  /** @param tenant - the tenant this collection is bound to: every command is scoped to it. */
  constructor(environment: CollectionEnvironment, info: CollectionInfo, tenant?: string) {
    this.#environment = environment;
    this.#info = info;
    this.#tenant = tenant;
  }

  /** The tenant commands run for: the bound one, else the ambient one, if any. */
  get tenant(): string | undefined {
    return this.#tenant ?? this.#environment.resolveTenant?.();
  }

  /** The collection name. */
  get name(): string {
    return this.#info.name;
  }

  /** Whether its documents belong to tenants. */
  get tenantOwned(): boolean {
    return this.#info.tenantOwned;
  }

  find(operation: OperationDeclaration, filter: Filter<Document>, options: FindOptions = {}): Promise<Document[]> {
    return this.#send(operation, { kind: 'find', filter, options }) as Promise<Document[]>;
  }

  count(operation: OperationDeclaration, filter: Filter<Document>, options: CountDocumentsOptions = {}): Promise<number> {
    return this.#send(operation, { kind: 'count', filter, options }) as Promise<number>;
  }

  distinct(operation: OperationDeclaration, field: string, filter: Filter<Document>): Promise<unknown[]> {
    return this.#send(operation, { kind: 'distinct', field, filter }) as Promise<unknown[]>;
  }

  insertOne(operation: OperationDeclaration, document: Document): Promise<InsertOneResult> {
    return this.#send(operation, { kind: 'insertOne', document }) as Promise<InsertOneResult>;
  }

  insertMany(operation: OperationDeclaration, documents: Document[], ordered: boolean): Promise<InsertManyResult> {
    return this.#send(operation, { kind: 'insertMany', documents, ordered }) as Promise<InsertManyResult>;
  }

  updateOne(
    operation: OperationDeclaration,
    filter: Filter<Document>,
    update: Document,
    options: UpdateCommandOptions = {},
  ): Promise<UpdateResult> {
    return this.#send(operation, {
      kind: 'updateOne',
      filter,
      update,
      upsert: options.upsert ?? false,
      ...arrayFiltersOf(options),
    }) as Promise<UpdateResult>;
  }

  updateMany(
    operation: OperationDeclaration,
    filter: Filter<Document>,
    update: Document,
    options: UpdateCommandOptions = {},
  ): Promise<UpdateResult> {
    return this.#send(operation, {
      kind: 'updateMany',
      filter,
      update,
      upsert: options.upsert ?? false,
      ...arrayFiltersOf(options),
    }) as Promise<UpdateResult>;
  }

  findOneAndUpdate(
    operation: OperationDeclaration,
    filter: Filter<Document>,
    update: Document,
    options: UpdateCommandOptions & { returnDocument?: 'before' | 'after'; projection?: Document } = {},
  ): Promise<Document | null> {
    return this.#send(operation, {
      kind: 'findOneAndUpdate',
      filter,
      update,
      upsert: options.upsert ?? false,
      returnDocument: options.returnDocument ?? 'after',
      ...(options.projection && { projection: options.projection }),
      ...arrayFiltersOf(options),
    }) as Promise<Document | null>;
  }

  deleteOne(operation: OperationDeclaration, filter: Filter<Document>): Promise<DeleteResult> {
    return this.#send(operation, { kind: 'deleteOne', filter }) as Promise<DeleteResult>;
  }

  deleteMany(operation: OperationDeclaration, filter: Filter<Document>): Promise<DeleteResult> {
    return this.#send(operation, { kind: 'deleteMany', filter }) as Promise<DeleteResult>;
  }

  bulkWrite(operation: OperationDeclaration, operations: AnyBulkWriteOperation<Document>[], ordered: boolean): Promise<BulkWriteResult> {
    return this.#send(operation, { kind: 'bulkWrite', operations, ordered }) as Promise<BulkWriteResult>;
  }

  aggregate(operation: OperationDeclaration, pipeline: Document[], options: AggregateOptions = {}): Promise<Document[]> {
    return this.#send(operation, { kind: 'aggregate', pipeline, options }) as Promise<Document[]>;
  }

  // ---------------------------------------------------------------- admin commands

  /** The collection's indexes (none when it does not exist yet). */
  listIndexes(operation: OperationDeclaration): Promise<Document[]> {
    return this.#send(operation, { kind: 'listIndexes' }) as Promise<Document[]>;
  }

  createIndex(operation: OperationDeclaration, key: Document, options: CreateIndexesOptions): Promise<string> {
    return this.#send(operation, { kind: 'createIndex', key, options }) as Promise<string>;
  }

  dropIndex(operation: OperationDeclaration, name: string): Promise<unknown> {
    return this.#send(operation, { kind: 'dropIndex', name });
  }

  /** The server's `executionStats` plan of a find (scoped like the find itself). */
  explain(operation: OperationDeclaration, filter: Filter<Document>, options: FindOptions = {}): Promise<Document> {
    return this.#send(operation, { kind: 'explain', filter, options }) as Promise<Document>;
  }

  /** `$indexStats` of the collection; refused in tenant scope on a tenant-owned collection. */
  indexStats(operation: OperationDeclaration): Promise<Document[]> {
    return this.#send(operation, { kind: 'indexStats' }) as Promise<Document[]>;
  }

  /** Collections of the database (where this collection's commands go) matching `filter`. */
  listCollections(operation: OperationDeclaration, filter: Document): Promise<Document[]> {
    return this.#send(operation, { kind: 'listCollections', filter }) as Promise<Document[]>;
  }

  /** Creates this collection with options (time series, validators). */
  createCollection(operation: OperationDeclaration, options: CreateCollectionOptions): Promise<unknown> {
    return this.#send(operation, { kind: 'createCollection', options });
  }

  #send(operation: OperationDeclaration, command: CollectionCommand): Promise<unknown> {
    const environment = this.#environment;
    return environment.pipeline.run(
      operationContext({
        declaration: operation,
        collection: this.#info,
        tenant: this.tenant,
        session: currentSession(),
        command,
        isTenantOwned: environment.isTenantOwned,
      }),
    );
  }
}

function arrayFiltersOf(options: UpdateCommandOptions): { arrayFilters?: Document[] } {
  return options.arrayFilters ? { arrayFilters: options.arrayFilters } : {};
}
