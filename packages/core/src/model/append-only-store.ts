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

  /** The bound tenant (or `TenantContextError`). */
  tenantFor(operation: string): string {
    return this.requireTenant(operation);
  }
}
