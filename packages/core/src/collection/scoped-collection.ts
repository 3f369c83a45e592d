import { performance } from 'node:perf_hooks';
import type {
  AggregateOptions,
  AnyBulkWriteOperation,
  BulkWriteResult,
  ClientSession,
  Collection,
  CountDocumentsOptions,
  Db,
  DeleteResult,
  Document,
  Filter,
  FindOptions,
  InsertManyResult,
  InsertOneResult,
  ReadConcernLevel,
  ReadPreferenceMode,
  UpdateFilter,
  UpdateResult,
} from 'mongodb';
import type { DataClient } from '../connection/data-client.js';
import { currentSession } from '../transactions/transaction-context.js';
import {
  type CollectionCommand,
  type CollectionTarget,
  type CommandInterceptor,
  type CommandObserver,
  isIdempotentCommand,
} from './collection-command.js';
import { bindCommandToTenant } from './tenant-binding.js';

/** The layers every command passes through, shared by all scoped collections of a data layer. */
export interface CommandPipeline {
  readonly interceptors: readonly CommandInterceptor[];
  readonly observers: readonly CommandObserver[];
  /** The ambient tenant of the current call (e.g. from `runWithTenant`), for unbound repositories. */
  readonly resolveTenant?: () => string | undefined;
}

/** Read and write settings of one collection (an operation class), applied to every command on it. */
export interface CollectionPreset {
  readPreference?: ReadPreferenceMode;
  readConcern?: ReadConcernLevel;
  writeConcern?: { w?: number | 'majority'; journal?: boolean; wtimeoutMS?: number };
}

/** Options of a write that may be inside a transaction or carry array filters. */
export interface UpdateCommandOptions {
  upsert?: boolean;
  arrayFilters?: Document[];
}

/**
 * The one object that holds a driver collection. Repositories receive it and cannot reach the
 * driver around it: every command is built as data, passed through the interceptors (tenant
 * scoping, quotas), sent through the data client (retry, error translation, monitoring), within
 * the current transaction's session if there is one, and shown to the observers.
 */
export class ScopedCollection {
  readonly #client: DataClient;
  readonly #pipeline: CommandPipeline;
  readonly #name: string;
  readonly #tenantOwned: boolean;
  readonly #tenant: string | undefined;
  /** Driver collections by database: the driver builds a new Db and Collection on every lookup. */
  readonly #driverCollections = new Map<string, Collection>();

  /**
   * @param tenant - the tenant this collection is bound to: every command on a tenant-owned
   *   collection is scoped to it (see `bindCommandToTenant`).
   */
  readonly #preset: CollectionPreset | undefined;

  constructor(
    client: DataClient,
    pipeline: CommandPipeline,
    name: string,
    tenantOwned: boolean,
    tenant?: string,
    preset?: CollectionPreset,
  ) {
    this.#preset = preset;
    this.#client = client;
    this.#pipeline = pipeline;
    this.#name = name;
    this.#tenantOwned = tenantOwned;
    this.#tenant = tenant;
  }

  /** The tenant commands run for: the bound one, else the ambient one, if any. */
  get tenant(): string | undefined {
    return this.#tenant ?? this.#pipeline.resolveTenant?.();
  }

  /** The collection name. */
  get name(): string {
    return this.#name;
  }

  /** Whether its documents belong to tenants. */
  get tenantOwned(): boolean {
    return this.#tenantOwned;
  }

  find(operation: string, filter: Filter<Document>, options: FindOptions = {}): Promise<Document[]> {
    return this.#send(operation, { kind: 'find', filter, options }) as Promise<Document[]>;
  }

  count(operation: string, filter: Filter<Document>, options: CountDocumentsOptions = {}): Promise<number> {
    return this.#send(operation, { kind: 'count', filter, options }) as Promise<number>;
  }

  distinct(operation: string, field: string, filter: Filter<Document>): Promise<unknown[]> {
    return this.#send(operation, { kind: 'distinct', field, filter }) as Promise<unknown[]>;
  }

  insertOne(operation: string, document: Document): Promise<InsertOneResult> {
    return this.#send(operation, { kind: 'insertOne', document }) as Promise<InsertOneResult>;
  }

  insertMany(operation: string, documents: Document[], ordered: boolean): Promise<InsertManyResult> {
    return this.#send(operation, { kind: 'insertMany', documents, ordered }) as Promise<InsertManyResult>;
  }

  updateOne(operation: string, filter: Filter<Document>, update: Document, options: UpdateCommandOptions = {}): Promise<UpdateResult> {
    return this.#send(operation, {
      kind: 'updateOne',
      filter,
      update,
      upsert: options.upsert ?? false,
      ...arrayFiltersOf(options),
    }) as Promise<UpdateResult>;
  }

  updateMany(operation: string, filter: Filter<Document>, update: Document, options: UpdateCommandOptions = {}): Promise<UpdateResult> {
    return this.#send(operation, {
      kind: 'updateMany',
      filter,
      update,
      upsert: options.upsert ?? false,
      ...arrayFiltersOf(options),
    }) as Promise<UpdateResult>;
  }

  findOneAndUpdate(
    operation: string,
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

  deleteOne(operation: string, filter: Filter<Document>): Promise<DeleteResult> {
    return this.#send(operation, { kind: 'deleteOne', filter }) as Promise<DeleteResult>;
  }

  deleteMany(operation: string, filter: Filter<Document>): Promise<DeleteResult> {
    return this.#send(operation, { kind: 'deleteMany', filter }) as Promise<DeleteResult>;
  }

  bulkWrite(operation: string, operations: AnyBulkWriteOperation<Document>[], ordered: boolean): Promise<BulkWriteResult> {
    return this.#send(operation, { kind: 'bulkWrite', operations, ordered }) as Promise<BulkWriteResult>;
  }

  aggregate(operation: string, pipeline: Document[], options: AggregateOptions = {}): Promise<Document[]> {
    return this.#send(operation, { kind: 'aggregate', pipeline, options }) as Promise<Document[]>;
  }

  /**
   * Index administration (list, create, drop) for index sync. It goes through the data client too,
   * but is not a data command: interceptors do not rewrite it.
   */
  administer<T>(operation: string, action: (collection: Collection) => Promise<T>): Promise<T> {
    const target = this.#target(operation);
    return this.#databaseFor(target).then((database) =>
      this.#client.execute({ name: target.operation, idempotent: true, collection: this.#name }, (db) =>
        action(this.#driverCollection(db, database)),
      ),
    );
  }

  #driverCollection(db: Db, database: string | undefined): Collection {
    const name = database ?? db.databaseName;
    let collection = this.#driverCollections.get(name);
    if (!collection) {
      const source = name === db.databaseName ? db : db.client.db(name);
      const preset = this.#preset;
      collection = preset
        ? source.collection(this.#name, {
            ...(preset.readPreference && { readPreference: preset.readPreference }),
            ...(preset.readConcern && { readConcern: { level: preset.readConcern } }),
            ...(preset.writeConcern && { writeConcern: preset.writeConcern }),
          })
        : source.collection(this.#name);
      // Bounded: database-per-tenant reaches many databases through one repository.
      if (this.#driverCollections.size >= 1000) this.#driverCollections.clear();
      this.#driverCollections.set(name, collection);
    }
    return collection;
  }

  #target(operation: string): CollectionTarget {
    return { name: this.#name, tenantOwned: this.#tenantOwned, operation: `${this.#name}.${operation}`, tenant: this.tenant };
  }

  async #databaseFor(target: CollectionTarget): Promise<string | undefined> {
    for (const interceptor of this.#pipeline.interceptors) {
      const database = await interceptor.databaseFor?.(target);
      if (database !== undefined) return database;
    }
    return undefined;
  }

  async #send(operation: string, original: CollectionCommand): Promise<unknown> {
    const target = this.#target(operation);
    const { interceptors } = this.#pipeline;
    let command = target.tenant === undefined ? original : bindCommandToTenant(original, target, target.tenant);
    for (const interceptor of interceptors) command = await interceptor.intercept(command, target);
    const database = await this.#databaseFor(target);
    const session = currentSession();
    const started = performance.now();
    let result: unknown;
    try {
      result = await this.#client.execute(
        {
          name: target.operation,
          idempotent: isIdempotentCommand(command),
          collection: this.#name,
          // Inside a transaction the driver's withTransaction owns retries.
          ...(session && { retry: false }),
        },
        (db) => dispatch(this.#driverCollection(db, database), command, session),
      );
    } catch (error) {
      this.#notify(command, target, started, error);
      for (const interceptor of interceptors) await interceptor.afterFailure?.(command, target, error);
      throw error;
    }
    this.#notify(command, target, started);
    for (const interceptor of interceptors) await interceptor.afterSuccess?.(command, target, result);
    return result;
  }

  #notify(command: CollectionCommand, target: CollectionTarget, started: number, error?: unknown): void {
    const durationMS = performance.now() - started;
    for (const observer of this.#pipeline.observers)
      observer.observe({ command, target, durationMS, ...(error !== undefined && { error }) });
  }
}

function arrayFiltersOf(options: UpdateCommandOptions): { arrayFilters?: Document[] } {
  return options.arrayFilters ? { arrayFilters: options.arrayFilters } : {};
}

async function dispatch(collection: Collection, command: CollectionCommand, activeSession: ClientSession | undefined): Promise<unknown> {
  const session = activeSession ? { session: activeSession } : {};
  switch (command.kind) {
    case 'find':
      return collection.find(command.filter, { ...command.options, ...session }).toArray();
    case 'count':
      return collection.countDocuments(command.filter, { ...command.options, ...session });
    case 'distinct':
      return collection.distinct(command.field, command.filter, session);
    case 'insertOne':
      return collection.insertOne(command.document, session);
    case 'insertMany':
      return collection.insertMany(command.documents, { ordered: command.ordered, ...session });
    case 'updateOne':
    case 'updateMany': {
      const options = { upsert: command.upsert, ...(command.arrayFilters && { arrayFilters: command.arrayFilters }), ...session };
      return command.kind === 'updateOne'
        ? collection.updateOne(command.filter, command.update as UpdateFilter<Document>, options)
        : collection.updateMany(command.filter, command.update as UpdateFilter<Document>, options);
    }
    case 'findOneAndUpdate':
      return collection.findOneAndUpdate(command.filter, command.update as UpdateFilter<Document>, {
        upsert: command.upsert,
        returnDocument: command.returnDocument,
        ...(command.projection && { projection: command.projection }),
        ...(command.arrayFilters && { arrayFilters: command.arrayFilters }),
        ...session,
      });
    case 'deleteOne':
      return collection.deleteOne(command.filter, session);
    case 'deleteMany':
      return collection.deleteMany(command.filter, session);
    case 'bulkWrite':
      return collection.bulkWrite(command.operations, { ordered: command.ordered, ...session });
    case 'aggregate':
      return collection.aggregate(command.pipeline, { ...command.options, ...session }).toArray();
  }
}
