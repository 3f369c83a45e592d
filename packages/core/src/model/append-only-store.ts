import type { Document } from 'mongodb';
import type { z } from 'zod';
import type { Page } from '../pagination/keyset-cursor.js';
import { Repository } from '../repository/repository.js';

/**
 * The repository underneath an append-only collection (audit logs, metrics): the append-only
 * classes hold one privately and expose only appends and reads, so no update or delete exists on
 * their public surface.
 */
export class AppendOnlyStore<S extends z.ZodObject> extends Repository<S> {
  /** One keyset page of `filter` (scoped and validated by the caller). */
  async list<T>(operation: string, filter: Document, options: unknown): Promise<Page<T>> {
    return this.page(operation, filter, options);
  }

  /** Parses a value with a schema, throwing `ValidationError`. */
  check<T extends z.ZodType>(schema: T, value: unknown, subject: string): z.output<T> {
    return this.parse(schema, value, subject);
  }

  /**
   * Ids of the entries older than `before` in `field` (and matching `where`), oldest first or, with
   * `direction` -1, newest first (the order of the index that serves it): a retention purge's batch.
   */
  async expiredIds(
    operation: string,
    field: string,
    before: Date,
    limit: number,
    where: Document = {},
    direction: 1 | -1 = 1,
  ): Promise<Document[]> {
    return this.collection.find(
      operation,
      { ...where, [field]: olderThan(before) },
      { sort: { [field]: direction, _id: direction }, limit, projection: { _id: 1 } },
    );
  }

  /** Deletes the given entries, when still older than `before`; `grant` must be the model's expiry grant. */
  async deleteExpired(operation: string, field: string, ids: unknown[], before: Date, grant: symbol): Promise<number> {
    const result = await this.collection.deleteMany(
      { name: operation, idempotent: true, grant },
      { _id: { $in: ids as never }, [field]: olderThan(before) },
    );
    return result.deletedCount;
  }

  /** The clock of the data layer. */
  clock(): Date {
    return this.now();
  }

  /** The bound tenant (or `TenantContextError`). */
  tenantFor(operation: string): string {
    return this.requireTenant(operation);
  }
}

/** The largest date JavaScript holds: nothing is after it, so a cutoff there takes every entry. */
const LAST_DATE = 8.64e15;

/** The condition "older than `before`" (everything, entries at the last date included, at the last date). */
function olderThan(before: Date): Document {
  return before.getTime() >= LAST_DATE ? { $lte: before } : { $lt: before };
}
