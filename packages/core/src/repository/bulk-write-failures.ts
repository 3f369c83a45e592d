import { MongoBulkWriteError, MongoServerError } from 'mongodb';
import { toCaasDbError, wholeBatchFailure } from '../connection/driver-errors.js';
import type { CaasDbError } from '../errors.js';

/** Carried by an error of a command a layer admitted in part (`@caas-db/tenancy`'s `PartialAdmission`). */
interface PartialAdmission {
  readonly sent: readonly number[];
  readonly refused: ReadonlyMap<number, CaasDbError>;
}

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
  // A layer (tenancy quotas) sent only some items and refused the others: `sent[i]` is the index,
  // in the caller's command, of the i-th item sent; `cause`, when set, is the failure of those.
  const admission = (error as { partialAdmission?: PartialAdmission } | undefined)?.partialAdmission;
  if (admission) {
    const cause = (error as { cause?: unknown }).cause;
    const sent = cause === undefined ? undefined : bulkWriteFailureOf(cause, collection);
    if (cause !== undefined && !sent) return undefined;
    const failures = new Map<number, CaasDbError>(admission.refused);
    for (const [index, failure] of sent?.failures ?? []) failures.set(admission.sent[index] ?? index, failure);
    const counts = sent?.counts ?? { inserted: admission.sent.length, matched: 0, modified: 0, deleted: 0 };
    return { counts, failures };
  }
  const bulk = error instanceof MongoBulkWriteError ? error : (error as { cause?: unknown } | undefined)?.cause;
  if (!(bulk instanceof MongoBulkWriteError)) return undefined;
  // A bulk write that failed as a whole (no per-item errors) is no per-item outcome.
  if (wholeBatchFailure(bulk) !== undefined) return undefined;
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
