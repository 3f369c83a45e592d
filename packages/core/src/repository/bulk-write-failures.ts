import { MongoBulkWriteError, MongoServerError } from 'mongodb';
import { toCaasDbError } from '../connection/driver-errors.js';
import type { CaasDbError } from '../errors.js';

/** What a bulk write that failed in part did: its counts, and the typed error of each failed item by index. */
export interface BulkWriteFailure {
  counts: { inserted: number; matched: number; modified: number; deleted: number };
  failures: Map<number, CaasDbError>;
}

/**
 * Reads the per-item outcome out of a failed `insertMany` / `bulkWrite` (the pipeline hands it over
 * wrapped in a `CaasDbError` whose cause is the driver's `MongoBulkWriteError`).
 * @returns undefined when `error` is not a bulk write failure (the whole command failed).
 */
export function bulkWriteFailureOf(error: unknown, collection: string): BulkWriteFailure | undefined {
  const bulk = error instanceof MongoBulkWriteError ? error : (error as { cause?: unknown } | undefined)?.cause;
  if (!(bulk instanceof MongoBulkWriteError)) return undefined;
  const failures = new Map<number, CaasDbError>();
  const writeErrors = Array.isArray(bulk.writeErrors) ? bulk.writeErrors : [bulk.writeErrors];
  for (const writeError of writeErrors) {
    const serverError = new MongoServerError({ ...writeError.err, errmsg: writeError.errmsg ?? 'write failed' });
    failures.set(writeError.index, toCaasDbError(serverError, collection));
  }
  const partial = bulk.result;
  return {
    counts: {
      inserted: partial.insertedCount,
      matched: partial.matchedCount,
      modified: partial.modifiedCount,
      deleted: partial.deletedCount,
    },
    failures,
  };
}
