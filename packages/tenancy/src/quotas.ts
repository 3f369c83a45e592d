import {
  BSON,
  type CollectionCommand,
  type Document,
  type InsertManyResult,
  Repository,
  type RepositoryDefinition,
  tenantIdSchema,
  type UpdateResult,
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
  ): Promise<{ documents: number; bytes: number } | null> {
    const id = `${tenant}:${collection}`;
    await this.#ensure(id, tenant, collection);
    const filter = { _id: id } as Document;
    if (limits.documents !== undefined) filter.documents = { $lte: limits.documents - documents };
    if (limits.bytes !== undefined) filter.bytes = { $lte: limits.bytes - bytes };
    const result = await this.collection.updateOne('reserve', filter, { $inc: { documents, bytes }, $set: { updated_at: this.now() } });
    if (result.matchedCount === 1) return null;
    const [usage] = await this.collection.find('reserve (refused)', { _id: id } as Document, { limit: 1 });
    return { documents: Number(usage?.documents ?? 0), bytes: Number(usage?.bytes ?? 0) };
  }

  /** Gives back a reservation (a failed write) or records removed documents. */
  async release(tenant: string, collection: string, documents: number, bytes: number): Promise<void> {
    if (documents === 0 && bytes === 0) return;
    await this.collection.updateOne('release', { _id: `${tenant}:${collection}` } as Document, {
      $inc: { documents: -documents, bytes: -bytes },
      $set: { updated_at: this.now() },
    });
  }

  /** A tenant's usage per collection. */
  async usageOf(tenant: string): Promise<Record<string, { documents: number; bytes: number }>> {
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
}

/** What a command reserved, to give back when it fails or inserts less. */
interface Reservation {
  tenant: string;
  collection: string;
  documents: number;
  bytes: number;
}

function bsonSize(document: Document): number {
  return BSON.calculateObjectSize(document);
}

/** Documents a command may insert, and their size. */
function insertsOf(command: CollectionCommand): { documents: number; bytes: number } {
  switch (command.kind) {
    case 'insertOne':
      return { documents: 1, bytes: bsonSize(command.document) };
    case 'insertMany':
      return { documents: command.documents.length, bytes: command.documents.reduce((total, document) => total + bsonSize(document), 0) };
    case 'updateOne':
    case 'updateMany':
    case 'findOneAndUpdate':
      return command.upsert ? { documents: 1, bytes: bsonSize(command.update) } : { documents: 0, bytes: 0 };
    case 'bulkWrite': {
      let documents = 0;
      let bytes = 0;
      for (const operation of command.operations) {
        if ('insertOne' in operation) {
          documents += 1;
          bytes += bsonSize(operation.insertOne.document);
        }
      }
      return { documents, bytes };
    }
    default:
      return { documents: 0, bytes: 0 };
  }
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

/**
 * Enforces per-tenant quotas at the choke point: the write rate (token bucket), then documents and
 * bytes per collection (an atomic reservation before the insert, given back if it fails, and
 * decremented by deletes). A refused write raises `QuotaExceededError` before anything is sent.
 */
export class QuotaEnforcer {
  readonly #options: QuotaOptions;
  readonly #usage: () => TenantUsageRepository;
  readonly #rate: RateLimitStore;
  readonly #reservations = new WeakMap<object, Reservation>();

  constructor(options: QuotaOptions, usage: () => TenantUsageRepository) {
    this.#options = options;
    this.#usage = usage;
    this.#rate = options.rateLimitStore ?? new InProcessRateLimitStore();
  }

  #limitsOf(record: TenantRecord | undefined): QuotaLimits {
    const { limits } = this.#options;
    return typeof limits === 'function' ? limits(record) : limits;
  }

  /** Checks and reserves before `command` is sent; `key` identifies the command in the after hooks. */
  async admit(
    key: object,
    command: CollectionCommand,
    collection: string,
    tenant: string,
    record: TenantRecord | undefined,
  ): Promise<void> {
    const limits = this.#limitsOf(record);
    const writes = writesOf(command);
    if (writes > 0 && limits.writes) {
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
    if (documentLimit === undefined && byteLimit === undefined) return;
    const inserts = insertsOf(command);
    if (inserts.documents === 0) return;
    const refused = await this.#usage().reserve(tenant, collection, inserts.documents, inserts.bytes, {
      ...(documentLimit !== undefined && { documents: documentLimit }),
      ...(byteLimit !== undefined && { bytes: byteLimit }),
    });
    if (refused) {
      const overDocuments = documentLimit !== undefined && refused.documents + inserts.documents > documentLimit;
      throw new QuotaExceededError(
        overDocuments
          ? { tenant, quota: 'documents', collection, limit: documentLimit, current: refused.documents }
          : { tenant, quota: 'bytes', collection, limit: byteLimit ?? 0, current: refused.bytes },
      );
    }
    this.#reservations.set(key, { tenant, collection, ...inserts });
  }

  /** Settles the reservation after the server answered: gives back what was not inserted, counts deletes. */
  async settle(
    key: object,
    command: CollectionCommand,
    collection: string,
    tenant: string,
    record: TenantRecord | undefined,
    result: unknown,
  ): Promise<void> {
    const reservation = this.#reservations.get(key);
    this.#reservations.delete(key);
    if (reservation) {
      const inserted = insertedBy(command, result);
      if (inserted < reservation.documents) {
        const share = reservation.documents === 0 ? 0 : reservation.bytes / reservation.documents;
        await this.#usage().release(
          tenant,
          collection,
          reservation.documents - inserted,
          Math.round(share * (reservation.documents - inserted)),
        );
      }
      return;
    }
    if (command.kind !== 'deleteOne' && command.kind !== 'deleteMany') return;
    const limits = this.#limitsOf(record);
    if (limits.documents?.[collection] === undefined && limits.bytes?.[collection] === undefined) return;
    const deleted = (result as { deletedCount?: number }).deletedCount ?? 0;
    if (deleted === 0) return;
    const usage = (await this.#usage().usageOf(tenant))[collection];
    const averageBytes = usage && usage.documents > 0 ? usage.bytes / usage.documents : 0;
    await this.#usage().release(tenant, collection, deleted, Math.round(averageBytes * deleted));
  }

  /** Gives back what a failed command reserved but did not insert (an ordered bulk write may have inserted some). */
  async cancel(key: object, error: unknown): Promise<void> {
    const reservation = this.#reservations.get(key);
    this.#reservations.delete(key);
    if (!reservation) return;
    const partial = (error as { cause?: { result?: { insertedCount?: number } } }).cause?.result?.insertedCount ?? 0;
    const unused = reservation.documents - partial;
    const share = reservation.documents === 0 ? 0 : reservation.bytes / reservation.documents;
    await this.#usage().release(reservation.tenant, reservation.collection, unused, Math.round(share * unused));
  }
}

function insertedBy(command: CollectionCommand, result: unknown): number {
  switch (command.kind) {
    case 'insertOne':
      return 1;
    case 'insertMany':
      return (result as InsertManyResult).insertedCount;
    case 'updateOne':
    case 'updateMany':
      return (result as UpdateResult).upsertedCount;
    case 'bulkWrite':
      return (result as { insertedCount: number }).insertedCount;
    default:
      // findOneAndUpdate does not say whether it inserted: the reservation is kept (counted once).
      return 1;
  }
}
