import {
  BSON,
  type CollectionCommand,
  DatabaseError,
  type DataLayer,
  type Document,
  type Next,
  type OperationContext,
  Repository,
  type RepositoryDefinition,
  tenantIdSchema,
  ValidationError,
} from '@caas-db/core';
import { z } from 'zod';
import { QuotaExceededError } from './errors.js';
import { InProcessRateLimitStore, type RateLimitStore } from './rate-limit.js';
import type { TenantRecord } from './tenant-directory.js';

/** Limits of one tenant. Collections without a limit are unlimited. */
export interface QuotaLimits {
  /** Most documents per collection, e.g. `{ messages: 1_000_000 }`. */
  documents?: Readonly<Record<string, number>>;
  /** Most stored bytes per collection (BSON size of inserted documents; see docs/multi-tenancy.md). */
  bytes?: Readonly<Record<string, number>>;
  /** Writes per second (each inserted, updated or deleted document counts one), with a burst allowance. */
  writes?: { perSecond: number; burst: number };
}

/** Options of quota enforcement. */
export interface QuotaOptions {
  /** The limits, the same for every tenant or chosen per tenant (e.g. by plan). */
  limits: QuotaLimits | ((tenant: TenantRecord | undefined) => QuotaLimits);
  /** Where write-rate buckets live. @default in process; pass a `RedisRateLimitStore` to share them across instances */
  rateLimitStore?: RateLimitStore;
}

/** A number of documents and their (approximate) BSON size. */
export interface UsageCounts {
  documents: number;
  bytes: number;
}

/** One collection of a tenant, its usage as recorded in `tenant_usage` and as counted (see `verify`). */
export interface UsageCheck {
  collection: string;
  /** What `tenant_usage` held (zero when it had no counter). */
  recorded: UsageCounts;
  /** The tenant's documents in the collection, soft-deleted ones included, and their BSON size. */
  counted: UsageCounts;
  /** True when the counter equals the recount, documents and bytes. */
  consistent: boolean;
  /** `repair` only: true once the counter holds the recount. */
  repaired?: boolean;
}

/**
 * What an unordered `insertMany` that did not fit as a whole did: the documents that fit were sent
 * (`sent`, by their index in the command as the caller built it), the others were not (`refused`,
 * each with its `QuotaExceededError`). Carried by the `QuotaExceededError` the command fails with;
 * its `cause`, when set, is the failure of the sent documents (some of them failed on the server).
 */
export interface PartialAdmission {
  readonly sent: readonly number[];
  readonly refused: ReadonlyMap<number, QuotaExceededError>;
}

const usageSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  collection: z.string().min(1).max(120),
  documents: z.number().int(),
  bytes: z.number().int(),
});

/** Usage counters, one document per tenant and collection (`_id` = `<tenant>:<collection>`). A platform collection. */
export const tenantUsageDefinition: RepositoryDefinition<typeof usageSchema> = {
  collection: 'tenant_usage',
  schema: usageSchema,
  tenantOwned: false,
  schemaVersion: 1,
  indexes: [{ name: 'tenant_collection', key: { tenant_id: 1, collection: 1 }, purpose: 'a tenant’s usage (usageOf)' }],
  queries: [{ name: 'usageOf', equality: ['tenant_id'] }],
};

const countedSchema = z.looseObject({});

/** Counts one tenant's documents of one tenant-owned collection, through the pipeline (scoped, routed to the tenant's database). */
class UsageCounter extends Repository<typeof countedSchema> {
  static definitionOf(collection: string): RepositoryDefinition<typeof countedSchema> {
    return {
      collection,
      schema: countedSchema,
      tenantOwned: true,
      schemaVersion: 1,
      indexes: [],
      queries: [{ name: 'recount', equality: ['tenant_id'] }],
    };
  }

  /** Every document of the tenant, soft-deleted ones included, and the sum of their BSON sizes. */
  async measure(): Promise<UsageCounts> {
    try {
      const [row] = await this.collection.aggregate('recount', [
        { $group: { _id: null, documents: { $sum: 1 }, bytes: { $sum: { $bsonSize: '$$ROOT' } } } },
      ]);
      return { documents: Number(row?.documents ?? 0), bytes: Number(row?.bytes ?? 0) };
    } catch (error) {
      // A server without $bsonSize (before 4.4, some test servers): read the documents in pages.
      if (!(error instanceof DatabaseError)) throw error;
    }
    const counts = { documents: 0, bytes: 0 };
    let after: unknown;
    for (;;) {
      const filter: Document = after === undefined ? {} : { _id: { $gt: after } };
      const page = await this.collection.find('recount (scan)', filter, {
        sort: { _id: 1 },
        limit: 1000,
      });
      for (const document of page) {
        counts.documents += 1;
        counts.bytes += BSON.calculateObjectSize(document);
      }
      if (page.length < 1000) return counts;
      after = page[page.length - 1]?._id;
    }
  }
}

/** The usage counters behind document and byte quotas. */
export class TenantUsageRepository extends Repository<typeof usageSchema> {
  readonly #initialized = new Set<string>();

  async #ensure(id: string, tenant: string, collection: string): Promise<void> {
    if (this.#initialized.has(id)) return;
    const now = this.now();
    await this.upsertOne('ensure', { _id: id } as Document, {
      $setOnInsert: { tenant_id: tenant, collection, documents: 0, bytes: 0, created_at: now, updated_at: now, schema_version: 1 },
    });
    this.#initialized.add(id);
  }

  async #counter(tenant: string, collection: string): Promise<UsageCounts | undefined> {
    const [usage] = await this.collection.find('usage', { _id: `${tenant}:${collection}` } as Document, { limit: 1 });
    return usage ? { documents: Number(usage.documents), bytes: Number(usage.bytes) } : undefined;
  }

  /**
   * Adds `documents` and `bytes` to a tenant's usage of `collection` only if the result stays within
   * the limits, in one atomic update: concurrent writers can never overshoot together.
   * @returns null when reserved, else the usage that refused it.
   */
  async reserve(
    tenant: string,
    collection: string,
    documents: number,
    bytes: number,
    limits: { documents?: number; bytes?: number },
  ): Promise<UsageCounts | null> {
    const id = `${tenant}:${collection}`;
    await this.#ensure(id, tenant, collection);
    const filter = { _id: id } as Document;
    if (limits.documents !== undefined) filter.documents = { $lte: limits.documents - documents };
    if (limits.bytes !== undefined) filter.bytes = { $lte: limits.bytes - bytes };
    const result = await this.collection.updateOne('reserve', filter, { $inc: { documents, bytes }, $set: { updated_at: this.now() } });
    if (result.matchedCount === 1) return null;
    return (await this.#counter(tenant, collection)) ?? { documents: 0, bytes: 0 };
  }

  /** Gives back a reservation (a failed write) or records removed documents. */
  async release(tenant: string, collection: string, documents: number, bytes: number): Promise<void> {
    if (documents === 0 && bytes === 0) return;
    await this.collection.updateOne('release', { _id: `${tenant}:${collection}` } as Document, {
      $inc: { documents: -documents, bytes: -bytes },
      $set: { updated_at: this.now() },
    });
  }

  /** Records `documents` deleted documents, each of the collection's average recorded size. */
  async releaseDeleted(tenant: string, collection: string, documents: number): Promise<void> {
    if (documents <= 0) return;
    const usage = await this.#counter(tenant, collection);
    const average = usage && usage.documents > 0 ? usage.bytes / usage.documents : 0;
    await this.release(tenant, collection, documents, Math.round(average * documents));
  }

  /** A tenant's usage per collection. */
  async usageOf(tenant: string): Promise<Record<string, UsageCounts>> {
    const rows = await this.collection.find('usageOf', { tenant_id: this.parse(tenantIdSchema, tenant, 'tenant') });
    return Object.fromEntries(
      rows.map((row) => [row.collection as string, { documents: Number(row.documents), bytes: Number(row.bytes) }]),
    );
  }

  /** Sets a tenant's counters to measured values (after enabling quotas on existing data). */
  async setUsage(tenant: string, collection: string, documents: number, bytes: number): Promise<void> {
    const id = `${tenant}:${collection}`;
    await this.#ensure(id, tenant, collection);
    await this.collection.updateOne('setUsage', { _id: id } as Document, { $set: { documents, bytes, updated_at: this.now() } });
  }

  /**
   * Recounts a tenant's documents (soft-deleted ones included) and their BSON size in each
   * collection, through `data`'s pipeline, and compares them with `tenant_usage`. Changes nothing.
   * @param collections - tenant-owned collections to check; by default every one the tenant has a counter for.
   */
  async verify(data: DataLayer, tenant: string, collections?: readonly string[]): Promise<UsageCheck[]> {
    const { id, names } = await this.#checked(data, tenant, collections);
    return Promise.all(
      names.map(async (collection) => {
        const recorded = (await this.#counter(id, collection)) ?? { documents: 0, bytes: 0 };
        const counted = await this.#measure(data, id, collection);
        return check(collection, recorded, counted);
      }),
    );
  }

  /**
   * Overwrites a tenant's counters with a recount (see {@link verify}). Idempotent, and safe from
   * two instances at once: the recount is written only if the counter has not moved since it was
   * read before counting (a concurrent write or repair), else it is read and counted again (up to
   * five times; `repaired: false` when the counter never stood still).
   */
  async repair(data: DataLayer, tenant: string, collections?: readonly string[]): Promise<UsageCheck[]> {
    const { id, names } = await this.#checked(data, tenant, collections);
    const repairOne = async (collection: string): Promise<UsageCheck> => {
      const key = `${id}:${collection}`;
      let first: UsageCheck | undefined;
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const recorded = (await this.#counter(id, collection)) ?? { documents: 0, bytes: 0 };
        const counted = await this.#measure(data, id, collection);
        first ??= check(collection, recorded, counted);
        await this.#ensure(key, id, collection);
        const result = await this.collection.updateOne(
          'repair',
          { _id: key, documents: recorded.documents, bytes: recorded.bytes } as Document,
          { $set: { documents: counted.documents, bytes: counted.bytes, updated_at: this.now() } },
        );
        if (result.matchedCount === 1) return { ...first, repaired: true };
      }
      return { ...(first as UsageCheck), repaired: false };
    };
    return Promise.all(names.map(repairOne));
  }

  async #checked(data: DataLayer, tenant: string, collections: readonly string[] | undefined): Promise<{ id: string; names: string[] }> {
    const id = this.parse(tenantIdSchema, tenant, 'tenant');
    const names = [...new Set(collections ?? Object.keys(await this.usageOf(id)))].sort();
    const owned = data.tenantOwnedCollections();
    const platform = names.filter((name) => !owned.has(name));
    if (platform.length > 0) {
      throw new ValidationError('collections', [
        { path: '', message: `usage is counted for tenant-owned collections only: ${platform.join(', ')}`, code: 'invalid_value' },
      ]);
    }
    return { id, names };
  }

  #measure(data: DataLayer, tenant: string, collection: string): Promise<UsageCounts> {
    return data.repository(UsageCounter.definitionOf(collection), UsageCounter, tenant).measure();
  }
}

function check(collection: string, recorded: UsageCounts, counted: UsageCounts): UsageCheck {
  return { collection, recorded, counted, consistent: recorded.documents === counted.documents && recorded.bytes === counted.bytes };
}

function bsonSize(document: Document): number {
  return BSON.calculateObjectSize(document);
}

/** How many documents a write command touches, for the write rate. */
function writesOf(command: CollectionCommand): number {
  switch (command.kind) {
    case 'insertMany':
      return command.documents.length;
    case 'bulkWrite':
      return command.operations.length;
    case 'insertOne':
    case 'updateOne':
    case 'updateMany':
    case 'findOneAndUpdate':
    case 'deleteOne':
    case 'deleteMany':
      return 1;
    default:
      return 0;
  }
}

/** What a failed `insertMany` / `bulkWrite` did per item, as the server reported it (the driver's `MongoBulkWriteError`). */
interface ItemOutcomes {
  /** Whether item `index` was applied. */
  applied(index: number): boolean;
  /** Documents the server reports deleted. */
  deleted: number;
  /** Indexes of the items that upserted. */
  upserted: ReadonlySet<number>;
}

/**
 * Reads the per-item outcome of a failed batch write out of the pipeline's error (a `CaasDbError`
 * whose cause is the driver's `MongoBulkWriteError`): an item failed when a write error names its
 * index; in an ordered batch every item after the first failure was not tried either.
 * @returns undefined when the whole command failed (nothing was applied, or nothing is known).
 */
function itemOutcomesOf(error: unknown, ordered: boolean): ItemOutcomes | undefined {
  type BulkFailure = { writeErrors?: unknown; result?: { deletedCount?: unknown; upsertedIds?: unknown } } | undefined;
  const direct = error as BulkFailure;
  const bulk = direct?.writeErrors === undefined ? ((error as { cause?: unknown } | undefined)?.cause as BulkFailure) : direct;
  if (bulk?.writeErrors === undefined || typeof bulk.result !== 'object' || bulk.result === null) return undefined;
  const writeErrors = (Array.isArray(bulk.writeErrors) ? bulk.writeErrors : [bulk.writeErrors]) as Array<{ index?: unknown }>;
  const failed = new Set(writeErrors.map((writeError) => Number(writeError.index)));
  const firstFailure = failed.size === 0 ? Number.POSITIVE_INFINITY : Math.min(...failed);
  const upsertedIds = bulk.result.upsertedIds;
  return {
    applied: (index) => !failed.has(index) && !(ordered && index > firstFailure),
    deleted: Number(bulk.result.deletedCount ?? 0),
    upserted: new Set(upsertedIds && typeof upsertedIds === 'object' ? Object.keys(upsertedIds).map(Number) : []),
  };
}

/** A bulk write item that may insert: an `insertOne`, or an update or replacement with `upsert`. */
function bulkInsertOf(operation: Document): { kind: 'insert' | 'upsert'; bytes: number } | undefined {
  if ('insertOne' in operation) return { kind: 'insert', bytes: bsonSize(operation.insertOne.document) };
  for (const kind of ['updateOne', 'updateMany', 'replaceOne'] as const) {
    const item = operation[kind] as { upsert?: boolean; update?: Document; replacement?: Document } | undefined;
    if (item?.upsert) return { kind: 'upsert', bytes: bsonSize((item.update ?? item.replacement ?? {}) as Document) };
  }
  return undefined;
}

type Limits = { documents?: number; bytes?: number };

/**
 * Enforces per-tenant quotas at the choke point: the write rate (token bucket), then documents and
 * bytes per collection, counted from what each write kind did:
 * - inserts reserve their documents atomically before they are sent and give back, per item, what
 *   the server did not insert; an unordered `insertMany` that does not fit sends the documents that
 *   fit and refuses the others (see `PartialAdmission`);
 * - upserts are first sent unable to insert: one that matches is never refused, one that would
 *   insert reserves a document like an insert;
 * - `deleteOne`, `deleteMany` and `bulkWrite` delete items free what the server reports deleted.
 * A refused write raises `QuotaExceededError` before anything is sent.
 */
export class QuotaEnforcer {
  /** Upserts holding a reservation, by tenant and collection, while they are sent. */
  readonly #upsertsInFlight = new Map<string, Set<Promise<unknown>>>();
  readonly #options: QuotaOptions;
  readonly #usage: () => TenantUsageRepository;
  readonly #rate: RateLimitStore;

  constructor(options: QuotaOptions, usage: () => TenantUsageRepository) {
    this.#options = options;
    this.#usage = usage;
    this.#rate = options.rateLimitStore ?? new InProcessRateLimitStore();
  }

  #limitsOf(record: TenantRecord | undefined): QuotaLimits {
    const { limits } = this.#options;
    return typeof limits === 'function' ? limits(record) : limits;
  }

  /**
   * Runs the rest of the pipeline (`next`) for one write of `tenant` on `collection` within its
   * quotas: refuses it (nothing sent), or sends it, possibly rewritten (`ctx.command`), and
   * settles the usage counters with what the server reports it did.
   */
  async enforce(ctx: OperationContext, next: Next, collection: string, tenant: string, record: TenantRecord | undefined): Promise<unknown> {
    const limits = this.#limitsOf(record);
    const command = ctx.command;
    const writes = writesOf(command);
    // A follow-up completes a write the rate already admitted: refusing it would leave that write half done.
    if (writes > 0 && limits.writes && !ctx.aspects.followUp) {
      const taken = await this.#rate.take(`${tenant}:writes`, writes, limits.writes.perSecond, limits.writes.burst);
      if (!taken.allowed) {
        throw new QuotaExceededError({
          tenant,
          quota: 'writeRate',
          collection: '*',
          limit: limits.writes.perSecond,
          current: Math.floor(limits.writes.burst - taken.remaining),
        });
      }
    }
    const documentLimit = limits.documents?.[collection];
    const byteLimit = limits.bytes?.[collection];
    if (documentLimit === undefined && byteLimit === undefined) return next();
    const bounds: Limits = {
      ...(documentLimit !== undefined && { documents: documentLimit }),
      ...(byteLimit !== undefined && { bytes: byteLimit }),
    };
    const scope = { tenant, collection, limits: bounds };
    switch (command.kind) {
      case 'insertOne':
        return this.#insertOne(scope, next, bsonSize(command.document));
      case 'insertMany':
        return this.#insertMany(scope, ctx, next, command);
      case 'updateOne':
      case 'updateMany':
      case 'findOneAndUpdate':
        return command.upsert ? this.#upsert(scope, ctx, next, command) : next();
      case 'deleteOne':
      case 'deleteMany': {
        const result = await next();
        await this.#usage().releaseDeleted(tenant, collection, Number((result as { deletedCount?: number }).deletedCount ?? 0));
        return result;
      }
      case 'bulkWrite':
        return this.#bulkWrite(scope, next, command);
      default:
        return next();
    }
  }

  /** Reserves `documents` of `bytes`, or throws the `QuotaExceededError` of the usage that refused them. */
  async #reserve(scope: Scope, documents: number, bytes: number): Promise<void> {
    const refused = await this.#usage().reserve(scope.tenant, scope.collection, documents, bytes, scope.limits);
    if (refused) throw quotaError(scope, refused, documents);
  }

  async #release(scope: Scope, documents: number, bytes: number): Promise<void> {
    await this.#usage().release(scope.tenant, scope.collection, documents, bytes);
  }

  async #insertOne(scope: Scope, next: Next, bytes: number): Promise<unknown> {
    await this.#reserve(scope, 1, bytes);
    try {
      return await next();
    } catch (error) {
      await this.#release(scope, 1, bytes);
      throw error;
    }
  }

  /**
   * Reserves per document. When they do not all fit, an unordered insert outside a transaction
   * reserves the longest prefix that fits (atomically, retried while concurrent writers move the
   * counter), sends only those, and fails with a `QuotaExceededError` carrying the per-item outcome
   * (`PartialAdmission`); an ordered one, or one in a transaction, is refused as a whole.
   */
  async #insertMany(
    scope: Scope,
    ctx: OperationContext,
    next: Next,
    command: Extract<CollectionCommand, { kind: 'insertMany' }>,
  ): Promise<unknown> {
    const sizes = command.documents.map(bsonSize);
    const prefix = (count: number) => sizes.slice(0, count).reduce((total, size) => total + size, 0);
    let admitted = sizes.length;
    let refusal = await this.#usage().reserve(scope.tenant, scope.collection, admitted, prefix(admitted), scope.limits);
    if (refusal) {
      if (command.ordered || ctx.session || sizes.length === 1) throw quotaError(scope, refusal, sizes.length);
      let usage: UsageCounts = refusal;
      for (let attempt = 0; refusal && attempt < 8; attempt += 1) {
        usage = refusal;
        admitted = fittingPrefix(usage, scope.limits, sizes);
        if (admitted === 0) throw quotaError(scope, usage, sizes.length);
        refusal = await this.#usage().reserve(scope.tenant, scope.collection, admitted, prefix(admitted), scope.limits);
      }
      if (refusal) throw quotaError(scope, refusal, sizes.length);
      ctx.command = { ...command, documents: command.documents.slice(0, admitted) };
      // What each refused document meets: the counter with the admitted ones reserved.
      refusal = { documents: usage.documents + admitted, bytes: usage.bytes + prefix(admitted) };
    }
    let failure: unknown;
    let result: unknown;
    try {
      result = await next();
    } catch (error) {
      failure = error;
      const outcomes = itemOutcomesOf(error, command.ordered);
      const lost = sizes.slice(0, admitted).filter((_, index) => !outcomes?.applied(index));
      await this.#release(
        scope,
        lost.length,
        lost.reduce((total, size) => total + size, 0),
      );
      if (!outcomes || !refusal) throw error;
    }
    if (!refusal) return result;
    // Some documents were not sent: the command fails, and says which ones were.
    const error = quotaError(scope, refusal, 1);
    error.message += ` (${admitted} of ${sizes.length} documents were sent, the others refused)`;
    const partialAdmission: PartialAdmission = {
      sent: Array.from({ length: admitted }, (_, index) => index),
      refused: new Map(Array.from({ length: sizes.length - admitted }, (_, offset) => [admitted + offset, error])),
    };
    Object.assign(error, { partialAdmission });
    if (failure !== undefined) Object.defineProperty(error, 'cause', { value: failure, configurable: true, writable: true });
    throw error;
  }

  /**
   * An upsert is sent first with `upsert: false`: when it matches, that was the whole write (the
   * server decided atomically that nothing is inserted) and no quota is involved. When it matches
   * nothing, one document is reserved and the upsert is sent as it was; if it then matched after
   * all (a concurrent upsert inserted the document in between), the reservation is given back.
   * When the reservation is refused, the conditioned update is sent once more (the document may
   * have been created meanwhile) before the upsert is refused.
   */
  async #upsert(
    scope: Scope,
    ctx: OperationContext,
    next: Next,
    command: Extract<CollectionCommand, { kind: 'updateOne' | 'updateMany' | 'findOneAndUpdate' }>,
  ): Promise<unknown> {
    const matched = (result: unknown) =>
      command.kind === 'findOneAndUpdate'
        ? result !== null && result !== undefined
        : Number((result as { matchedCount?: number }).matchedCount ?? 0) > 0;
    ctx.command = { ...command, upsert: false };
    const updated = await next();
    if (matched(updated)) return updated;
    const bytes = bsonSize(command.update);
    const key = `${scope.tenant}\u0000${scope.collection}`;
    const refused = await this.#usage().reserve(scope.tenant, scope.collection, 1, bytes, scope.limits);
    if (refused) {
      // A concurrent upsert of this process may hold the last slot for this very document: once
      // it has landed, the conditioned update matches it.
      const inFlight = this.#upsertsInFlight.get(key);
      if (inFlight) await Promise.allSettled([...inFlight]);
      const again = await next();
      if (matched(again)) return again;
      throw quotaError(scope, refused, 1);
    }
    ctx.command = command;
    let result: unknown;
    const sent = next();
    let inFlight = this.#upsertsInFlight.get(key);
    if (!inFlight) {
      inFlight = new Set();
      this.#upsertsInFlight.set(key, inFlight);
    }
    const tracked = inFlight;
    tracked.add(sent);
    try {
      result = await sent;
    } catch (error) {
      await this.#release(scope, 1, bytes);
      throw error;
    } finally {
      tracked.delete(sent);
      if (tracked.size === 0 && this.#upsertsInFlight.get(key) === tracked) this.#upsertsInFlight.delete(key);
    }
    // findOneAndUpdate does not report whether it inserted, except with returnDocument 'before'
    // (null then): with 'after' the reservation is kept (see docs/multi-tenancy.md).
    const inserted =
      command.kind === 'findOneAndUpdate'
        ? command.returnDocument === 'after' || result === null
        : Number((result as { upsertedCount?: number }).upsertedCount ?? 0) > 0;
    if (!inserted) await this.#release(scope, 1, bytes);
    return result;
  }

  /**
   * Reserves the inserts and upserts of a bulk write as a whole (refused as a whole when they do
   * not fit), then settles per item: inserts the server did not apply and upserts that matched are
   * given back, deleted documents are freed.
   */
  async #bulkWrite(scope: Scope, next: Next, command: Extract<CollectionCommand, { kind: 'bulkWrite' }>): Promise<unknown> {
    const items = command.operations.map((operation) => bulkInsertOf(operation as Document));
    const reserved = items.filter((item) => item !== undefined);
    const bytes = reserved.reduce((total, item) => total + item.bytes, 0);
    if (reserved.length > 0) await this.#reserve(scope, reserved.length, bytes);
    let result: { deletedCount?: number; upsertedIds?: unknown; upsertedCount?: number } | undefined;
    let outcomes: ItemOutcomes | undefined;
    let failure: unknown;
    try {
      result = (await next()) as typeof result;
    } catch (error) {
      failure = error;
      outcomes = itemOutcomesOf(error, command.ordered);
    }
    // Upserts that inserted: by index where the server reports it, else by count.
    const upsertedIds = outcomes ? undefined : result?.upsertedIds;
    const upserted = outcomes
      ? outcomes.upserted
      : new Set(upsertedIds && typeof upsertedIds === 'object' ? Object.keys(upsertedIds).map(Number) : []);
    let upsertsLeft = upserted.size === 0 ? Number(result?.upsertedCount ?? 0) : 0;
    let unusedDocuments = 0;
    let unusedBytes = 0;
    items.forEach((item, index) => {
      if (!item) return;
      const applied = failure === undefined || (outcomes?.applied(index) ?? false);
      if (applied && item.kind === 'insert') return;
      if (applied && item.kind === 'upsert' && (upserted.has(index) || upsertsLeft > 0)) {
        if (!upserted.has(index)) upsertsLeft -= 1;
        return;
      }
      unusedDocuments += 1;
      unusedBytes += item.bytes;
    });
    await this.#release(scope, unusedDocuments, unusedBytes);
    const deleted = failure === undefined ? Number(result?.deletedCount ?? 0) : (outcomes?.deleted ?? 0);
    await this.#usage().releaseDeleted(scope.tenant, scope.collection, deleted);
    if (failure !== undefined) throw failure;
    return result;
  }
}

interface Scope {
  tenant: string;
  collection: string;
  limits: Limits;
}

/** The longest prefix of documents of `sizes` that fits on top of `usage`. */
function fittingPrefix(usage: UsageCounts, limits: Limits, sizes: readonly number[]): number {
  let bytes = usage.bytes;
  let count = 0;
  for (const size of sizes) {
    if (limits.documents !== undefined && usage.documents + count + 1 > limits.documents) break;
    if (limits.bytes !== undefined && bytes + size > limits.bytes) break;
    bytes += size;
    count += 1;
  }
  return count;
}

/** The error of a refusal of `documents` documents by `usage`: the document quota when it is the one crossed, else the bytes. */
function quotaError(scope: Scope, usage: UsageCounts, documents: number): QuotaExceededError {
  const { tenant, collection, limits } = scope;
  return limits.documents !== undefined && usage.documents + documents > limits.documents
    ? new QuotaExceededError({ tenant, quota: 'documents', collection, limit: limits.documents, current: usage.documents })
    : new QuotaExceededError({ tenant, quota: 'bytes', collection, limit: limits.bytes ?? 0, current: usage.bytes });
}
