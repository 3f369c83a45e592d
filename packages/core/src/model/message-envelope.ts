import type { AnyBulkWriteOperation, Document, Filter, FindOptions } from 'mongodb';
import type { ScopedCollection, UpdateCommandOptions } from '../collection/scoped-collection.js';
import type { OperationDeclaration } from '../pipeline/operation.js';
import { inheritVetting } from '../scoping/vetted-documents.js';

/**
 * The compact message envelope: fields whose empty value carries no information (no reactions, no
 * receipts, not deleted) are not stored, and every read puts the empty value back, so callers and
 * the `Message` type see the same document either way. Documents written before (with the empty
 * values stored) read the same. Filters need no change: `deleted_at: null` matches a missing field,
 * and `'read_by.user_id': { $ne: user }` / `$push` / `$pull` treat a missing array as empty.
 */

/** The fields left out while empty, with the value a read restores. */
export const MESSAGE_EMPTY_DEFAULTS: Readonly<Record<string, () => unknown>> = {
  reactions: () => [],
  read_by: () => [],
  deleted_at: () => null,
};

/** The methods the compact envelope changes; every other one runs on the collection as is. */
const WRAPPED = new Set(['insertOne', 'insertMany', 'bulkWrite', 'find', 'findOneAndUpdate']);

/** The operation whose read compares a stored document with the one sent, byte for byte: it reads raw. */
const RAW_READS = new Set(['insertOnce (same _id)']);

function isEmpty(value: unknown): boolean {
  return value === null || (Array.isArray(value) && value.length === 0);
}

/** `document` without the empty values of `defaults`' fields (the same object when there are none). */
export function compactDocument(document: Document, defaults: Readonly<Record<string, () => unknown>>): Document {
  let omit = false;
  for (const field in defaults) if (field in document && isEmpty(document[field])) omit = true;
  if (!omit) return document;
  const compact: Document = {};
  for (const field in document) if (!(field in defaults && isEmpty(document[field]))) compact[field] = document[field];
  return inheritVetting(document, compact);
}

/**
 * Puts the empty value back into each field of `defaults` that `document` lacks and the read
 * returned (every field without a projection; else those it includes). In place for a document
 * fresh from the driver; a copy for a frozen one (a shared cached value).
 */
export function withEmptyDefaults<T extends Document | null | undefined>(
  document: T,
  defaults: Readonly<Record<string, () => unknown>>,
  projection?: Document,
): T {
  if (!document) return document;
  let target: Document = document;
  for (const field in defaults) {
    if (field in target) continue;
    if (projection && !isIncluded(projection, field)) continue;
    if (target === document && Object.isFrozen(document)) target = { ...document };
    target[field] = (defaults[field] as () => unknown)();
  }
  return target as T;
}

/** Whether a find projection returns `field`: an inclusion names it, an exclusion does not. */
function isIncluded(projection: Document, field: string): boolean {
  let inclusive = false;
  for (const key in projection) if (key !== '_id' && (projection[key] === 1 || projection[key] === true)) inclusive = true;
  const value = projection[field];
  return inclusive ? value === 1 || value === true : value === undefined;
}

/**
 * The collection a repository with a compact envelope talks through: inserts leave out the empty
 * values of `defaults`, reads (`find`, `findOneAndUpdate`) put them back. Every other method runs
 * on `collection` itself.
 */
export function compactEnvelopeCollection(
  collection: ScopedCollection,
  defaults: Readonly<Record<string, () => unknown>>,
): ScopedCollection {
  // ScopedCollection keeps its state in private fields: every method runs on the original.
  const wrapper = Object.create(collection) as ScopedCollection;
  const prototype = Object.getPrototypeOf(collection) as object;
  for (const method of Object.getOwnPropertyNames(prototype)) {
    const descriptor = Object.getOwnPropertyDescriptor(prototype, method);
    if (method === 'constructor' || WRAPPED.has(method) || !descriptor || typeof descriptor.value !== 'function') continue;
    Object.defineProperty(wrapper, method, { value: (descriptor.value as (...args: unknown[]) => unknown).bind(collection) });
  }
  for (const getter of ['tenant', 'name', 'tenantOwned'] as const) {
    Object.defineProperty(wrapper, getter, { get: () => collection[getter] });
  }
  const nameOf = (operation: OperationDeclaration) => (typeof operation === 'string' ? operation : operation.name);
  Object.defineProperties(wrapper, {
    insertOne: {
      value: (operation: OperationDeclaration, document: Document) => collection.insertOne(operation, compactDocument(document, defaults)),
    },
    insertMany: {
      value: (operation: OperationDeclaration, documents: Document[], ...rest: unknown[]) =>
        (collection.insertMany as (...args: unknown[]) => unknown)(
          operation,
          inheritVetting(
            documents,
            documents.map((document) => compactDocument(document, defaults)),
          ),
          ...rest,
        ),
    },
    bulkWrite: {
      value: (operation: OperationDeclaration, operations: AnyBulkWriteOperation<Document>[], ...rest: unknown[]) =>
        (collection.bulkWrite as (...args: unknown[]) => unknown)(
          operation,
          operations.map((write) =>
            'insertOne' in write
              ? { insertOne: { ...write.insertOne, document: compactDocument(write.insertOne.document, defaults) } }
              : write,
          ),
          ...rest,
        ),
    },
    find: {
      value: async (operation: OperationDeclaration, filter: Filter<Document>, options: FindOptions = {}) => {
        const rows = await collection.find(operation, filter, options);
        if (RAW_READS.has(nameOf(operation))) return rows;
        const projection = options.projection as Document | undefined;
        for (let index = 0; index < rows.length; index += 1) rows[index] = withEmptyDefaults(rows[index] as Document, defaults, projection);
        return rows;
      },
    },
    findOneAndUpdate: {
      value: async (
        operation: OperationDeclaration,
        filter: Filter<Document>,
        update: Document,
        options: UpdateCommandOptions & { returnDocument?: 'before' | 'after'; projection?: Document } = {},
      ) => withEmptyDefaults(await collection.findOneAndUpdate(operation, filter, update, options), defaults, options.projection),
    },
  });
  return wrapper;
}
