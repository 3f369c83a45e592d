import { type Document, ObjectId, type UpdateResult } from 'mongodb';
import { z } from 'zod';
import { type IndexUsage, indexUsageOf } from '../analysis/index-usage.js';
import { type PlanSummary, summarizePlan } from '../analysis/query-plan.js';
import { type BatchBounds, Coalescer, type ItemOutcome } from '../batching/coalescer.js';
import { type CachedRead, cacheTags, type ReadCache } from '../cache/read-cache.js';
import type { ScopedCollection } from '../collection/scoped-collection.js';
import { ConcurrencyError, DuplicateKeyError, NotFoundError, TenantContextError, ValidationError } from '../errors.js';
import type { IndexDeclaration, QueryShape } from '../indexes/index-declaration.js';
import { type IndexSyncReport, type SyncIndexesOptions, syncIndexes } from '../indexes/index-sync.js';
import type { ModelInvariants } from '../invariants/model-invariants.js';
import {
  type DocumentUpgrades,
  type UpgradeBatch,
  type UpgradeBatchOptions,
  upgradeStoredBatch,
  versionedCollection,
} from '../model/versioning.js';
import type { KeysetCursorCodec, Page } from '../pagination/keyset-cursor.js';
import { type StreamOptions, streamPages } from '../pagination/stream-pages.js';
import type { OperationDeclaration } from '../pipeline/operation.js';
import { assertSafeFilter } from '../schema/input-guard.js';
import { type IdInput, objectIdSchema } from '../schema/primitives.js';
import { markVetted, markVettedBatch } from '../scoping/vetted-documents.js';
import { currentSession } from '../transactions/transaction-context.js';
import { parseInput } from '../validation-issues.js';
import { prepareBulkWrites, sendBulkWrites } from './bulk-writes.js';
import { readKeysetPage } from './keyset-page.js';
import { parseReadOptions } from './read-options.js';
import type {
  BulkOperation,
  BulkWriteSummary,
  CreateInput,
  DocumentFilter,
  ListOptions,
  Patch,
  Projected,
  Projection,
  ReadOptions,
  StoredDocument,
  WriteOptions,
} from './repository-types.js';
import { sameContent, WritePreparation } from './write-preparation.js';

/** What a repository is: its collection, schema, indexes and behaviours. */
export interface RepositoryDefinition<S extends z.ZodObject> {
  /** The collection name. */
  collection: string;
  /** The domain fields (system fields `_id`, timestamps, `schema_version`, ... are added). Use `z.strictObject`. */
  schema: S;
  /** True when every document carries `tenant_id` and belongs to one tenant. */
  tenantOwned: boolean;
  /** Written into `schema_version` of every new document. */
  schemaVersion: number;
  indexes: IndexDeclaration[];
  /** Every query shape the repository sends, each served by one of `indexes`. */
  queries: QueryShape[];
  /** Reads hide documents with `deleted_at` set; `softDelete` / `restore` are available. @default false */
  softDelete?: boolean;
  /** Documents carry `version`; writes may pass `expectedVersion`. @default false */
  versioned?: boolean;
  /** Fields lists may be sorted by (besides `_id`). Each must be required, so every document has a value. */
  sortable?: readonly string[];
  /** What no command may do to the documents (append-only, guarded fields, forward-only states). */
  invariants?: ModelInvariants;
  /**
   * The fields a caller may give to `create`; the others (counters, states) take their defaults.
   * All schema fields when omitted.
   */
  creatable?: readonly string[];
  /** Upgrade functions per older `schema_version`: reads upgrade old documents (see docs/migrations.md). */
  upgrades?: DocumentUpgrades;
  /** Write a document a read upgraded back to the collection. @default false */
  writeBackUpgrades?: boolean;
}

/** What the data layer gives each repository. */
export interface RepositoryContext {
  /** The only way to the collection. */
  collection: ScopedCollection;
  /** Signs and checks pagination cursors. */
  cursors: KeysetCursorCodec;
  /** Validate writes with zod. Turning it off skips schema parsing, never the key and operator guards. @default true */
  validate?: boolean;
  /** The clock. @default () => new Date() */
  now?: () => Date;
  /** A read-through cache for the methods it is configured to cache (`@caas-db/cache`). */
  cache?: ReadCache;
  /** Admits a cached read for its tenant before the cache serves it (the plugins' `admitCachedRead`). */
  admitCachedRead?: (read: CachedRead) => Promise<void>;
  /** Coalescing of concurrent calls (see `createDataLayer`'s `batching`). */
  batching?: {
    /** Concurrent `findById` calls become one `$in` query. */
    findById?: BatchBounds;
    /** Concurrent inserts become one unordered `insertMany` (repositories that support it: messages). */
    inserts?: BatchBounds;
  };
}

const NOT_DELETED = { deleted_at: null } as const;

/**
 * A typed repository over one collection, generic over a zod schema: validation on every write
 * (compiled once per repository), timestamps, `schema_version`, optional soft delete and
 * optimistic concurrency, keyset pagination, bulk writes with per-item results, and index sync.
 * Every command goes through the {@link ScopedCollection} it was given.
 *
 * Domain repositories extend it and add their own methods; see `docs/repositories.md`.
 */
export class Repository<S extends z.ZodObject, CreateArgument = CreateInput<S>> {
  /** The definition this repository was built from. */
  readonly definition: RepositoryDefinition<S>;
  protected readonly collection: ScopedCollection;
  protected readonly cursors: KeysetCursorCodec;
  protected readonly validates: boolean;
  protected readonly now: () => Date;
  /** How concurrent inserts may be coalesced, for repositories that support it. */
  protected readonly insertBatching: BatchBounds | undefined;
  readonly #cache: ReadCache | undefined;
  readonly #admitCachedRead: ((read: CachedRead) => Promise<void>) | undefined;
  readonly #readBatcher: Coalescer<{ id: ObjectId; options: ReadOptions<unknown> }, Document | null> | undefined;
  /** Validation and stamping of everything this repository writes. */
  readonly #writes: WritePreparation;
  readonly #sortable: ReadonlySet<string>;

  constructor(definition: RepositoryDefinition<S>, context: RepositoryContext) {
    this.definition = definition;
    this.collection = versionedCollection(context.collection, definition);
    this.cursors = context.cursors;
    this.validates = context.validate ?? true;
    this.now = context.now ?? (() => new Date());
    this.#cache = context.cache;
    this.#admitCachedRead = context.admitCachedRead;
    this.insertBatching = context.batching?.inserts;
    const readBounds = context.batching?.findById;
    this.#readBatcher = readBounds ? new Coalescer(readBounds, (items) => this.#findByIds(items)) : undefined;
    this.#writes = new WritePreparation(definition, { validates: this.validates, now: this.now, tenant: () => this.collection.tenant });
    this.#sortable = new Set(['_id', ...(definition.sortable ?? [])]);
  }

  /** The collection name. */
  get name(): string {
    return this.definition.collection;
  }

  // ---------------------------------------------------------------- validation helpers

  /** Parses `value` with `schema` or throws a `ValidationError` naming `subject`. */
  protected parse<T extends z.ZodType>(schema: T, value: unknown, subject: string): z.output<T> {
    return parseInput(schema, value, subject);
  }

  /** Parses an id given as an ObjectId or its hex string. */
  protected parseId(id: unknown, subject = 'id'): ObjectId {
    // Already typed: nothing for zod to check (an ObjectId of another bson copy goes through zod).
    if (id instanceof ObjectId) return id;
    return this.parse(objectIdSchema, id, subject);
  }

  #liveFilter(includeDeleted: boolean | undefined): Document {
    return this.definition.softDelete && !includeDeleted ? NOT_DELETED : {};
  }

  /** `filter` restricted to live documents unless `includeDeleted`. */
  #live(filter: DocumentFilter<StoredDocument<S>> | Document, includeDeleted: boolean | undefined): Document {
    return { ...(filter as Document), ...this.#liveFilter(includeDeleted) };
  }

  #projectionOf(projection: Document | undefined): Document | undefined {
    if (!projection) return undefined;
    const fields = Object.keys(projection);
    const unknown = fields.filter((field) => field !== '_id' && !(field in this.#writes.documentSchema.shape));
    if (unknown.length > 0) {
      throw new ValidationError(
        'projection',
        unknown.map((field) => ({ path: field, message: 'is not a field of this document', code: 'unrecognized_keys' })),
      );
    }
    return Object.fromEntries(fields.map((field) => [field, 1]));
  }

  /** The tenant this repository is bound to, if any. */
  get tenant(): string | undefined {
    return this.collection.tenant;
  }

  /**
   * The bound tenant, for operations that only make sense within one (lists served by indexes that
   * start with `tenant_id`).
   * @throws {TenantContextError} when the repository is not bound to a tenant.
   */
  protected requireTenant(operation: string): string {
    const tenant = this.collection.tenant;
    if (tenant === undefined) {
      throw new TenantContextError(`${this.name}.${operation} needs a tenant: use dataLayer.forTenant(tenantId).${this.name}`);
    }
    return tenant;
  }

  /**
   * Runs a read through the cache when one is configured for `method`, tagging the result with
   * the documents it contains (so any write to one of them invalidates it) and the collection. The
   * cache admits the read for its tenant (the plugins' `admitCachedRead`) before serving a hit.
   */
  protected cachedRead<T>(method: string, args: unknown, listTags: string[], load: () => Promise<T>): Promise<T> {
    if (!this.#cache) return load();
    const tenant = this.collection.tenant;
    const collection = this.name;
    const request: CachedRead = {
      method: `${collection}.${method}`,
      collection,
      tenant,
      tenantOwned: this.collection.tenantOwned,
      args,
      tags: [...listTags, cacheTags.collection(tenant, collection), cacheTags.collection('*', collection)],
    };
    const admit = this.#admitCachedRead;
    if (admit) request.admit = () => admit(request);
    return this.#cache.read<T>(request, load, (value) => {
      if (value === null || value === undefined) return [];
      const page = value as unknown as { items?: Document[] };
      const items = Array.isArray(page.items) ? page.items : [value as unknown as Document];
      return items.flatMap((item) => this.#documentTags(item._id, item.tenant_id));
    });
  }

  /**
   * The cache tags of one document: its tenant's (the document's own `tenant_id`, else the read's
   * tenant; none for platform collections) and the any-tenant form (see `cacheTags.document`).
   */
  #documentTags(id: unknown, documentTenant?: unknown): string[] {
    const tenant = this.collection.tenantOwned ? (typeof documentTenant === 'string' ? documentTenant : this.collection.tenant) : undefined;
    return [cacheTags.document(tenant, this.name, id), cacheTags.document('*', this.name, id)];
  }

  /** Validates a full new document and adds the system fields (and the bound tenant). */
  protected prepareInsert(input: unknown, subject = `${this.name} document`): Document {
    return markVetted(this.#writes.insert(input, subject));
  }

  /**
   * Called with the prepared documents of `createMany` and of a `bulkWrite`'s inserts before they
   * are sent: a model refuses what its references do not allow (messages: their conversation and
   * sender). A refusal writes nothing.
   */
  protected async checkInserts(_documents: readonly Document[]): Promise<void> {}

  /** Validates raw update operators and adds `updated_at` (and the version bump). */
  protected prepareUpdate(update: unknown, subject = `${this.name} update`): Document {
    return this.#writes.update(update, subject);
  }

  /** Adds `updated_at` and, for versioned repositories, `$inc: { version: 1 }` to an update. */
  protected stampUpdate(update: Document): Document {
    return this.#writes.stamp(update);
  }

  /** Turns a deep-partial patch into a validated `$set` update. */
  protected preparePatch(patch: unknown, subject = `${this.name} patch`): Document {
    return this.#writes.patch(patch, subject);
  }

  // ---------------------------------------------------------------- writes

  /**
   * Inserts one document.
   * @throws {ValidationError} when `input` does not match the schema; nothing is written.
   * @throws {DuplicateKeyError} when a unique index refuses it.
   */
  async create(input: CreateArgument): Promise<StoredDocument<S>> {
    const document = this.prepareInsert(input);
    const stored = await this.insertOnce('create', document, (input as { _id?: unknown } | null)?._id !== undefined);
    return stored as StoredDocument<S>;
  }

  /**
   * Inserts `document`, idempotent by its `_id` across calls: when the caller chose the `_id` (to
   * re-send a write whose outcome was unknown) and a document with that `_id` is already stored
   * with the same content (timestamps aside), that document is the result, not a duplicate-key
   * error. An insert with a generated `_id` cannot meet its own earlier attempt from another call.
   * @returns the stored document.
   */
  protected async insertOnce(operation: OperationDeclaration, document: Document, callerChoseId: boolean): Promise<Document> {
    try {
      await this.collection.insertOne(operation, document);
      return document;
    } catch (error) {
      if (!callerChoseId || !(error instanceof DuplicateKeyError) || !('_id' in error.key)) throw error;
      const [stored] = await this.collection.find('insertOnce (same _id)', { _id: document._id }, { limit: 1 });
      if (!stored || !sameContent(stored, document)) throw error;
      return stored;
    }
  }

  /**
   * Inserts many documents. Every input is validated first: one invalid input writes nothing.
   * @param options.ordered - stop at the first failure (default) or try every document.
   * @throws {DuplicateKeyError} for the first duplicate; use {@link bulkWrite} for per-item outcomes.
   */
  async createMany(inputs: readonly CreateInput<S>[], options: { ordered?: boolean } = {}): Promise<StoredDocument<S>[]> {
    if (!Array.isArray(inputs) || inputs.length === 0 || inputs.length > 10_000) {
      throw new ValidationError(`${this.name} documents`, [
        { path: '', message: 'must be an array of 1 to 10000 documents', code: 'invalid_type' },
      ]);
    }
    const documents = markVettedBatch(inputs.map((input, index) => this.#writes.insert(input, `${this.name} document ${index}`)));
    await this.checkInserts(documents);
    await this.collection.insertMany('createMany', documents, options.ordered ?? true);
    return documents as StoredDocument<S>[];
  }

  /**
   * Applies a deep-partial patch (`$set` of the given fields; nested objects merged) to one document.
   * @returns the updated document.
   * @throws {NotFoundError} when no live document has this id.
   * @throws {ConcurrencyError} when `expectedVersion` is stale; nothing is overwritten.
   */
  async update(id: IdInput, patch: Patch<z.input<S>>, options: WriteOptions = {}): Promise<StoredDocument<S>> {
    const objectId = this.parseId(id);
    // A patch is a $set: applying it twice leaves what applying it once does, unless a version is bumped.
    const operation = { name: 'update', idempotent: !this.definition.versioned };
    return this.#updateOneById(operation, objectId, this.preparePatch(patch), options);
  }

  /**
   * Applies raw update operators (`$set`, `$inc`, `$push`, `$addToSet`, `$pull`, `$unset`, ...) to one
   * document; every path and value is validated against the schema.
   * @returns the updated document.
   */
  async updateWith(id: IdInput, update: Document, options: WriteOptions & { arrayFilters?: Document[] } = {}): Promise<StoredDocument<S>> {
    const objectId = this.parseId(id);
    if (options.arrayFilters !== undefined) assertSafeFilter({ arrayFilters: options.arrayFilters }, 'arrayFilters');
    return this.#updateOneById('updateWith', objectId, this.prepareUpdate(update), options);
  }

  async #updateOneById(
    operation: OperationDeclaration,
    id: ObjectId,
    update: Document,
    options: WriteOptions & { arrayFilters?: Document[] },
  ): Promise<StoredDocument<S>> {
    const filter: Document = this.#live({ _id: id }, false);
    if (options.expectedVersion !== undefined) {
      if (!this.definition.versioned)
        throw new ValidationError('options', [
          { path: 'expectedVersion', message: `${this.name} is not versioned`, code: 'invalid_option' },
        ]);
      filter.version = this.parse(z.number().int().min(1), options.expectedVersion, 'expectedVersion');
    }
    const updated = await this.collection.findOneAndUpdate(operation, filter, update, {
      returnDocument: 'after',
      ...(options.arrayFilters && { arrayFilters: options.arrayFilters }),
    });
    if (updated) return updated as StoredDocument<S>;
    if (options.expectedVersion !== undefined && (await this.exists({ _id: id } as DocumentFilter<StoredDocument<S>>))) {
      throw new ConcurrencyError(
        `${this.name} ${id.toHexString()} changed since version ${options.expectedVersion}; reload it and try again`,
      );
    }
    throw new NotFoundError(this.name, id.toHexString());
  }

  /**
   * Applies validated raw update operators to every live document matching `filter`.
   * @returns how many documents matched and how many changed.
   */
  async updateMany(filter: DocumentFilter<StoredDocument<S>>, update: Document): Promise<{ matched: number; modified: number }> {
    assertSafeFilter(filter);
    const result = await this.collection.updateMany('updateMany', this.#live(filter, false), this.prepareUpdate(update));
    return { matched: result.matchedCount, modified: result.modifiedCount };
  }

  /**
   * Inserts `input` when no document matches `filter` (an equality filter on a unique key), otherwise
   * sets the given fields on the match. Safe under concurrent calls: a race on the unique key is retried once as an update.
   */
  async upsert(
    filter: DocumentFilter<StoredDocument<S>>,
    input: CreateInput<S>,
  ): Promise<{ document: StoredDocument<S>; created: boolean }> {
    assertSafeFilter(filter);
    const prepared = this.prepareInsert(input);
    const { _id, created_at, schema_version, deleted_at, version, updated_at, tenant_id, ...fields } = prepared;
    // A document never changes tenant: the tenant is matched and set on insert only, where the
    // scoper expects it (a tenant_id in $set is refused in tenant scope).
    const scopedFilter: Document = tenant_id === undefined ? (filter as Document) : { ...(filter as Document), tenant_id };
    const update: Document = {
      $set: { ...fields, updated_at },
      $setOnInsert: {
        _id,
        ...(tenant_id !== undefined && { tenant_id }),
        created_at,
        schema_version,
        ...(this.definition.softDelete && { deleted_at }),
        ...(this.definition.versioned && { version }),
      },
    };
    if (this.definition.versioned) {
      delete update.$setOnInsert.version;
      update.$inc = { version: 1 };
    }
    const result = await this.upsertOne('upsert', scopedFilter, update);
    const created = result.upsertedCount > 0;
    const document = await this.findOne((created ? { _id } : scopedFilter) as DocumentFilter<StoredDocument<S>>, {
      includeDeleted: true,
    });
    if (!document) throw new NotFoundError(this.name, JSON.stringify(filter));
    return { document: document as StoredDocument<S>, created };
  }

  /**
   * Sends an upsert, retried once as an update when a concurrent upsert of the same unique key won
   * the insert: MongoDB reports that race as a duplicate key, and the document exists either way.
   */
  protected async upsertOne(operation: string, filter: Document, update: Document): Promise<UpdateResult> {
    try {
      return await this.collection.updateOne(operation, filter, update, { upsert: true });
    } catch (error) {
      if (!(error instanceof DuplicateKeyError)) throw error;
      return this.collection.updateOne(operation, filter, update, { upsert: true });
    }
  }

  /**
   * Atomically finds one live document and applies validated update operators to it.
   * @returns the document before or after the update, or null when none matched (and `upsert` is off).
   */
  async findOneAndUpdate(
    filter: DocumentFilter<StoredDocument<S>>,
    update: Document,
    options: { returnDocument?: 'before' | 'after'; arrayFilters?: Document[] } = {},
  ): Promise<StoredDocument<S> | null> {
    assertSafeFilter(filter);
    if (options.arrayFilters !== undefined) assertSafeFilter({ arrayFilters: options.arrayFilters }, 'arrayFilters');
    const result = await this.collection.findOneAndUpdate('findOneAndUpdate', this.#live(filter, false), this.prepareUpdate(update), {
      returnDocument: options.returnDocument ?? 'after',
      ...(options.arrayFilters && { arrayFilters: options.arrayFilters }),
    });
    return result as StoredDocument<S> | null;
  }

  /**
   * Deletes a document for good (soft-deleted or not).
   * @returns true when a document was deleted.
   */
  async delete(id: IdInput): Promise<boolean> {
    const result = await this.collection.deleteOne({ name: 'delete', idempotent: true }, { _id: this.parseId(id) });
    return result.deletedCount === 1;
  }

  /**
   * Hides a document from every default read by setting `deleted_at`.
   * @returns true when this call deleted it, false when it already was.
   * @throws {NotFoundError} when there is no such document at all.
   */
  async softDelete(id: IdInput): Promise<boolean> {
    this.#requireSoftDelete();
    const objectId = this.parseId(id);
    const result = await this.collection.updateOne(
      'softDelete',
      { _id: objectId, deleted_at: null },
      this.stampUpdate({ $set: { deleted_at: this.now() } }),
    );
    if (result.matchedCount === 1) return true;
    if (await this.exists({ _id: objectId } as DocumentFilter<StoredDocument<S>>, { includeDeleted: true })) return false;
    throw new NotFoundError(this.name, objectId.toHexString());
  }

  /**
   * Makes a soft-deleted document visible again.
   * @returns true when this call restored it, false when it was not deleted.
   * @throws {NotFoundError} when there is no such document at all.
   */
  async restore(id: IdInput): Promise<boolean> {
    this.#requireSoftDelete();
    const objectId = this.parseId(id);
    const result = await this.collection.updateOne(
      'restore',
      { _id: objectId, deleted_at: { $ne: null } },
      this.stampUpdate({ $set: { deleted_at: null } }),
    );
    if (result.matchedCount === 1) return true;
    if (await this.exists({ _id: objectId } as DocumentFilter<StoredDocument<S>>)) return false;
    throw new NotFoundError(this.name, objectId.toHexString());
  }

  #requireSoftDelete(): void {
    if (!this.definition.softDelete) {
      throw new ValidationError('operation', [{ path: '', message: `${this.name} has no soft delete`, code: 'invalid_operation' }]);
    }
  }

  /**
   * Runs inserts, patches, raw updates and deletes in one round trip. Every operation is validated
   * first: one invalid operation writes nothing. With `ordered` (the default) the server stops at
   * the first failure and later items are `skipped`; unordered, every item is tried.
   * @returns one result per operation, at its index.
   */
  async bulkWrite(operations: readonly BulkOperation<S>[], options: { ordered?: boolean } = {}): Promise<BulkWriteSummary> {
    const { writes, ids } = prepareBulkWrites(operations as readonly unknown[], {
      insert: (input, subject) => this.prepareInsert(input, subject),
      id: (value, subject) => this.parseId(value, subject),
      liveById: (id) => this.#live({ _id: id }, false),
      patch: (patch, subject) => this.preparePatch(patch, subject),
      update: (update, subject) => this.prepareUpdate(update, subject),
    });
    await this.checkInserts(writes.flatMap((write) => ('insertOne' in write ? [write.insertOne.document] : [])));
    return sendBulkWrites((prepared, ordered) => this.collection.bulkWrite('bulkWrite', prepared, ordered), writes, ids, {
      ordered: options.ordered ?? true,
      collection: this.name,
    });
  }

  // ---------------------------------------------------------------- reads

  /** Finds a live document by id, or null. A projection narrows the result type. */
  async findById<P extends Projection<StoredDocument<S>> = Record<never, never>>(
    id: IdInput,
    options: ReadOptions<P> = {},
  ): Promise<Projected<StoredDocument<S>, P> | null> {
    const objectId = this.parseId(id);
    const load = () => {
      if (!this.#readBatcher || currentSession()) return this.findOne({ _id: objectId } as DocumentFilter<StoredDocument<S>>, options);
      parseReadOptions(options);
      // One batch per tenant and read options: the batch runs in the first caller's context.
      const key = `${this.collection.tenant ?? ''}|${JSON.stringify(options)}`;
      return this.#readBatcher.add(key, { id: objectId, options }) as Promise<Projected<StoredDocument<S>, P> | null>;
    };
    return this.cachedRead('findById', { id: objectId.toHexString(), options }, this.#documentTags(objectId), load);
  }

  /** Reads many documents by id in one `$in` query, for the read batcher. */
  async #findByIds(items: Array<{ id: ObjectId; options: ReadOptions<unknown> }>): Promise<ItemOutcome<Document | null>[]> {
    const options = parseReadOptions(items[0]?.options ?? {});
    const projection = this.#projectionOf(options.projection);
    const ids = [...new Map(items.map((item) => [item.id.toHexString(), item.id])).values()];
    const rows = await this.collection.find(
      'findById',
      this.#live({ _id: { $in: ids } }, options.includeDeleted),
      projection ? { projection: { ...projection, _id: 1 } } : {},
    );
    const byId = new Map(rows.map((row) => [String(row._id), row]));
    return items.map((item) => ({ ok: true, value: byId.get(item.id.toHexString()) ?? null }));
  }

  /** Like {@link findById}, but throws `NotFoundError` instead of returning null. */
  async getById<P extends Projection<StoredDocument<S>> = Record<never, never>>(
    id: IdInput,
    options: ReadOptions<P> = {},
  ): Promise<Projected<StoredDocument<S>, P>> {
    const found = await this.findById(id, options);
    if (!found) throw new NotFoundError(this.name, String(id));
    return found;
  }

  /** Finds the first live document matching `filter`, or null. */
  async findOne<P extends Projection<StoredDocument<S>> = Record<never, never>>(
    filter: DocumentFilter<StoredDocument<S>>,
    options: ReadOptions<P> = {},
  ): Promise<Projected<StoredDocument<S>, P> | null> {
    assertSafeFilter(filter);
    const parsed = parseReadOptions(options);
    const projection = this.#projectionOf(parsed.projection);
    const [found] = await this.collection.find('findOne', this.#live(filter, parsed.includeDeleted), {
      limit: 1,
      ...(projection && { projection }),
    });
    return (found ?? null) as Projected<StoredDocument<S>, P> | null;
  }

  /**
   * One page of the live documents matching `filter`, in keyset order: pass `nextCursor` back as
   * `cursor` for the next page. Pages stay exact while documents are inserted concurrently: no
   * document appears twice, none present when the listing started is skipped.
   * @throws {CursorError} for a tampered cursor or one issued for another query.
   */
  async findMany<P extends Projection<StoredDocument<S>> = Record<never, never>>(
    filter: DocumentFilter<StoredDocument<S>>,
    options: ListOptions<P, Extract<keyof z.output<S>, string> | 'created_at' | 'updated_at'> = {},
  ): Promise<Page<Projected<StoredDocument<S>, P>>> {
    assertSafeFilter(filter);
    return this.page('findMany', this.#live(filter, options.includeDeleted), options);
  }

  /**
   * Every live document matching `filter` as an async iteration, read `batchSize` at a time in
   * keyset order (each page one operation, see `streamPages`): exports and jobs run in bounded memory.
   * @throws {ValidationError} for an invalid filter or options, when iteration starts.
   */
  stream<P extends Projection<StoredDocument<S>> = Record<never, never>>(
    filter: DocumentFilter<StoredDocument<S>>,
    options: Omit<ListOptions<P, Extract<keyof z.output<S>, string> | 'created_at' | 'updated_at'>, 'limit' | 'cursor'> &
      StreamOptions = {},
  ): AsyncGenerator<Projected<StoredDocument<S>, P>, void, undefined> {
    const { batchSize, ...list } = options;
    return streamPages((page) => this.findMany<P>(filter, { ...list, ...page }), batchSize === undefined ? {} : { batchSize });
  }

  /**
   * Reads one keyset page of `filter` (already scoped and validated by the caller). Domain
   * repositories use it for their list methods.
   */
  protected async page<T>(operation: string, filter: Document, options: unknown): Promise<Page<T>> {
    const parsed = parseReadOptions(options);
    return readKeysetPage<T>(
      {
        find: (query, findOptions) => this.collection.find(operation, query, findOptions),
        cursors: this.cursors,
        // Bound to the tenant too: a cursor issued to one tenant is refused for every other.
        cursorScope: `${this.name}\u0000${this.collection.tenant ?? ''}`,
        sortable: this.#sortable,
      },
      filter,
      { ...parsed, projection: this.#projectionOf(parsed.projection) },
    );
  }

  /** Counts live documents matching `filter`. */
  async count(filter: DocumentFilter<StoredDocument<S>> = {}, options: { includeDeleted?: boolean } = {}): Promise<number> {
    assertSafeFilter(filter);
    return this.collection.count('count', this.#live(filter, options.includeDeleted));
  }

  /** True when a live document matches `filter`. */
  async exists(filter: DocumentFilter<StoredDocument<S>>, options: { includeDeleted?: boolean } = {}): Promise<boolean> {
    assertSafeFilter(filter);
    const found = await this.collection.find('exists', this.#live(filter, options.includeDeleted), { limit: 1, projection: { _id: 1 } });
    return found.length > 0;
  }

  // ---------------------------------------------------------------- indexes

  /**
   * How the server would run `filter` (scoped to the bound tenant) with `sort`: the index used or a
   * collection scan, keys and documents examined, documents returned. Needs a server with `explain`.
   */
  async explain(
    filter: DocumentFilter<StoredDocument<S>>,
    options: { sort?: Record<string, 1 | -1>; limit?: number; projection?: Document } = {},
  ): Promise<PlanSummary> {
    assertSafeFilter(filter);
    const explained = await this.collection.explain('explain', this.#live(filter, false), {
      ...(options.sort && { sort: options.sort }),
      ...(options.limit && { limit: options.limit }),
      ...(options.projection && { projection: options.projection }),
    });
    return summarizePlan(explained);
  }

  /** How much each index of the collection was used since the server started (`$indexStats`). */
  indexUsage(): Promise<IndexUsage[]> {
    return indexUsageOf(this.collection, this.definition.indexes);
  }

  /** Upgrades one batch of stored documents older than `schemaVersion` and writes them back (migrations). */
  upgradeStored(options: UpgradeBatchOptions = {}): Promise<UpgradeBatch> {
    return upgradeStoredBatch(this.collection, this.definition, options);
  }

  /** Creates missing declared indexes and reports drift; drops nothing unless asked. */
  async syncIndexes(options: SyncIndexesOptions = {}): Promise<IndexSyncReport> {
    return syncIndexes(this.collection, this.definition.indexes, options);
  }
}
