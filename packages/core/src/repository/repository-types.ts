import type { Document, Filter, ObjectId } from 'mongodb';
import type { z } from 'zod';
import type { CaasDbError } from '../errors.js';
import type { PageOptions, PageSort } from '../pagination/keyset-cursor.js';
import type { IdInput } from '../schema/primitives.js';

/** Fields every stored document has, set by the repository. */
export interface SystemFields {
  _id: ObjectId;
  /** The version of the document's schema when it was written, for migrations. */
  schema_version: number;
  created_at: Date;
  updated_at: Date;
}

/** Present on documents of repositories with soft delete. */
export interface SoftDeleteFields {
  /** When the document was soft-deleted; null while it is live. */
  deleted_at: Date | null;
}

/** Present on documents of repositories with optimistic concurrency. */
export interface VersionFields {
  /** Incremented by every write; pass it as `expectedVersion` to detect concurrent changes. */
  version: number;
}

/** A stored document of a repository over schema `S`. */
export type StoredDocument<S extends z.ZodObject> = z.output<S> & SystemFields & Partial<SoftDeleteFields> & Partial<VersionFields>;

/** Makes `tenant_id` optional: a tenant-bound repository stamps it. */
type TenantOptional<T> = 'tenant_id' extends keyof T ? Omit<T, 'tenant_id'> & { tenant_id?: T['tenant_id'] } : T;

/**
 * What `create` accepts: the schema's input, optionally with a chosen `_id`. `tenant_id` may be
 * omitted on a tenant-bound repository, which stamps it; elsewhere the schema requires it.
 */
export type CreateInput<S extends z.ZodObject> = TenantOptional<z.input<S>> & { _id?: IdInput };

/** A deep-partial patch of the schema's input: nested objects are merged, arrays and records replaced. */
export type Patch<T> = {
  [K in keyof T]?: T[K] extends Date | ObjectId | readonly unknown[]
    ? T[K]
    : T[K] extends Record<string, unknown>
      ? Patch<T[K]> | T[K]
      : T[K];
};

/** An inclusion projection over top-level fields. */
export type Projection<D> = { readonly [K in keyof D & string]?: 1 | true };

/** The result type of a read with projection `P`: only the projected fields and `_id`. */
export type Projected<D, P> = [keyof P] extends [never] ? D : Pick<D, Extract<keyof P, keyof D> | Extract<'_id', keyof D>>;

/** Options of single-document reads. */
export interface ReadOptions<P> {
  /** Only these top-level fields (and `_id`). */
  projection?: P;
  /** Also return soft-deleted documents. @default false */
  includeDeleted?: boolean;
}

/** Options of list reads. */
export interface ListOptions<P, SortField extends string> extends ReadOptions<P>, PageOptions {
  /** @default { field: '_id', direction: 'desc' } (newest first) */
  sort?: PageSort<SortField>;
}

/** A filter over stored documents, typed by the driver. */
export type DocumentFilter<D> = Filter<D>;

/** Options of writes to one document. */
export interface WriteOptions {
  /** For versioned repositories: fail with `ConcurrencyError` unless the stored version is this. */
  expectedVersion?: number;
}

/** One operation of a bulk write. */
export type BulkOperation<S extends z.ZodObject> =
  | { insert: CreateInput<S> }
  | { update: { id: IdInput; patch: Patch<z.input<S>> } }
  | { updateWith: { id: IdInput; update: Document } }
  | { delete: { id: IdInput } };

/**
 * The outcome of one bulk operation, at its index in the input. `ok` means the server applied it;
 * an update or delete whose id matches nothing is `ok` with no effect (see the summary's `matched`).
 */
export type BulkItemResult =
  | { index: number; status: 'ok'; id: ObjectId }
  | { index: number; status: 'failed'; error: CaasDbError }
  | { index: number; status: 'skipped' };

/** Per-item outcome of a bulk write. */
export interface BulkWriteSummary {
  items: BulkItemResult[];
  inserted: number;
  /** Documents matched by update operations. */
  matched: number;
  modified: number;
  deleted: number;
  failed: number;
}
