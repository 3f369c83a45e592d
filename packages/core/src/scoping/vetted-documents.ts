import type { Document } from 'mongodb';
import { TENANT_FIELD } from './tenant-field.js';

/**
 * Documents (and arrays of documents) a repository built itself for an insert: validated, walked
 * once for unsafe keys and values (`assertSafeDocument`), stamped with the tenant. Module-private,
 * so only core's own write preparation can vouch for them; the scoper then sends them without
 * walking them a second time.
 */
const vetted = new WeakSet<object>();

/** Records that `document` was built and checked by a repository's write preparation. */
export function markVetted<T extends Document>(document: T): T {
  vetted.add(document);
  return document;
}

/** Records that every document of `documents` was built and checked by a repository's write preparation. */
export function markVettedBatch<T extends Document[]>(documents: T): T {
  vetted.add(documents);
  return documents;
}

/** Vouches for `copy` as for `source` (a copy of a prepared document or batch, e.g. without empty fields). */
export function inheritVetting<T extends object>(source: object, copy: T): T {
  if (vetted.has(source)) vetted.add(copy);
  return copy;
}

/**
 * What a subclass holding a prepared document could have changed since cannot redirect it to
 * another tenant: its `tenant_id` is still an own data property naming `tenant`, nothing (own or
 * inherited) could make the serializer write something else in its place (`toBSON`), and no
 * top-level value became a function. Nested values are not walked a second time: whatever they
 * hold, they cannot change the document's tenant.
 */
function keepsTenant(document: Document, tenant: string): boolean {
  if (typeof document !== 'object' || document === null || 'toBSON' in document) return false;
  const descriptor = Object.getOwnPropertyDescriptor(document, TENANT_FIELD);
  if (descriptor === undefined || !('value' in descriptor) || descriptor.value !== tenant) return false;
  for (const key in document) if (typeof document[key] === 'function') return false;
  return true;
}

/** Whether the scoper may send `document` as it is for `tenant`, without walking it again. */
export function isVettedFor(document: Document, tenant: string): boolean {
  return vetted.has(document) && keepsTenant(document, tenant);
}

/** Whether the scoper may send every document of `documents` as it is for `tenant`. */
export function isVettedBatchFor(documents: readonly Document[], tenant: string): boolean {
  if (vetted.has(documents)) return documents.every((document) => keepsTenant(document, tenant));
  return documents.every((document) => isVettedFor(document, tenant));
}
