import type { AnyBulkWriteOperation, BulkWriteResult, Document, ObjectId } from 'mongodb';
import { type CaasDbError, ValidationError } from '../errors.js';
import { bulkWriteFailureOf } from './bulk-write-failures.js';
import type { BulkItemResult, BulkWriteSummary } from './repository-types.js';
import { isPlainObject } from './write-preparation.js';

/** How a repository prepares each kind of bulk item (its own validation and stamping). */
export interface BulkItemPreparation {
  insert(input: unknown, subject: string): Document;
  id(value: unknown, subject: string): ObjectId;
  /** The filter of a live document by id (soft-deleted ones excluded). */
  liveById(id: ObjectId): Document;
  patch(patch: unknown, subject: string): Document;
  update(update: unknown, subject: string): Document;
}

const ONE_KIND = 'must have exactly one of insert, update, updateWith, delete';

/**
 * Validates and prepares every item of a bulk write before anything is sent: one invalid item
 * writes nothing. Returns the driver's operations and, per item, the id it writes.
 * @throws {ValidationError}
 */
export function prepareBulkWrites(
  operations: readonly unknown[],
  prepare: BulkItemPreparation,
): { writes: AnyBulkWriteOperation<Document>[]; ids: ObjectId[] } {
  if (!Array.isArray(operations) || operations.length === 0 || operations.length > 10_000) {
    throw new ValidationError('bulk operations', [
      { path: '', message: 'must be an array of 1 to 10000 operations', code: 'invalid_type' },
    ]);
  }
  const ids: ObjectId[] = [];
  const writes = operations.map((operation, index): AnyBulkWriteOperation<Document> => {
    const subject = `bulk operation ${index}`;
    if (!isPlainObject(operation) || Object.keys(operation).length !== 1) {
      throw new ValidationError(subject, [{ path: '', message: ONE_KIND, code: 'invalid_type' }]);
    }
    const item = operation as Record<string, { id?: unknown; patch?: unknown; update?: unknown } | undefined>;
    if ('insert' in operation) {
      const document = prepare.insert(operation.insert, subject);
      ids.push(document._id as ObjectId);
      return { insertOne: { document } };
    }
    if ('update' in operation) {
      const id = prepare.id(item.update?.id, `${subject} id`);
      ids.push(id);
      return { updateOne: { filter: prepare.liveById(id), update: prepare.patch(item.update?.patch, subject) } };
    }
    if ('updateWith' in operation) {
      const id = prepare.id(item.updateWith?.id, `${subject} id`);
      ids.push(id);
      return { updateOne: { filter: prepare.liveById(id), update: prepare.update(item.updateWith?.update, subject) } };
    }
    if ('delete' in operation) {
      const id = prepare.id(item.delete?.id, `${subject} id`);
      ids.push(id);
      return { deleteOne: { filter: { _id: id } } };
    }
    throw new ValidationError(subject, [{ path: '', message: ONE_KIND, code: 'invalid_type' }]);
  });
  return { writes, ids };
}

/**
 * Sends prepared bulk writes and reports one outcome per item: `ok` with its id, `failed` with its
 * typed error, or `skipped` (after the first failure of an ordered write).
 */
export async function sendBulkWrites(
  send: (writes: AnyBulkWriteOperation<Document>[], ordered: boolean) => Promise<BulkWriteResult>,
  writes: AnyBulkWriteOperation<Document>[],
  ids: readonly ObjectId[],
  options: { ordered: boolean; collection: string },
): Promise<BulkWriteSummary> {
  const { ordered } = options;
  let failures = new Map<number, CaasDbError>();
  let counts = { inserted: 0, matched: 0, modified: 0, deleted: 0 };
  try {
    const result = await send(writes, ordered);
    counts = { inserted: result.insertedCount, matched: result.matchedCount, modified: result.modifiedCount, deleted: result.deletedCount };
  } catch (error) {
    const failure = bulkWriteFailureOf(error, options.collection);
    if (!failure) throw error;
    counts = failure.counts;
    failures = failure.failures;
  }
  const firstFailure = failures.size > 0 ? Math.min(...failures.keys()) : Number.POSITIVE_INFINITY;
  const items: BulkItemResult[] = writes.map((_, index) => {
    const failure = failures.get(index);
    if (failure) return { index, status: 'failed', error: failure };
    if (ordered && index > firstFailure) return { index, status: 'skipped' };
    return { index, status: 'ok', id: ids[index] as ObjectId };
  });
  // Inserts are counted from the per-item outcomes: some servers report the batch size instead.
  const inserted = items.filter((item, index) => item.status === 'ok' && 'insertOne' in (writes[index] as object)).length;
  return { items, ...counts, inserted, failed: failures.size };
}
