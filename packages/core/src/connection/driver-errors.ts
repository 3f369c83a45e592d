import {
  MongoBulkWriteError,
  MongoClientClosedError,
  MongoError,
  MongoNetworkError,
  MongoNetworkTimeoutError,
  MongoOperationTimeoutError,
  MongoServerError,
  MongoServerSelectionError,
  MongoTopologyClosedError,
} from 'mongodb';
import { CaasDbError, ClientClosedError, ConnectionError, DatabaseError, DuplicateKeyError, TimeoutError } from '../errors.js';

/** Server codes that mean "this node cannot take the operation now; another may soon". */
const NOT_PRIMARY_OR_SHUTTING_DOWN = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  89, // NetworkTimeout
  91, // ShutdownInProgress
  189, // PrimarySteppedDown
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

const DUPLICATE_KEY_CODES = new Set([11000, 11001, 12582]);

/**
 * How a failure relates to retrying it.
 * - `not-sent`: the operation never reached a server (no server selected, pool cleared before checkout,
 *   a primary refused it because it is not primary); retrying is safe for every operation.
 * - `maybe-applied`: the connection broke while the operation was in flight; only idempotent
 *   operations may be retried.
 * - `permanent`: retrying cannot help (validation, duplicate key, bad query, ...).
 */
export type FailureKind = 'not-sent' | 'maybe-applied' | 'permanent';

/** Classifies a thrown value for the retry policy. */
export function classifyFailure(error: unknown): FailureKind {
  if (error instanceof CaasDbError) {
    return error instanceof ConnectionError ? 'maybe-applied' : 'permanent';
  }
  if (!(error instanceof MongoError)) return 'permanent';
  if (error instanceof MongoClientClosedError) return 'permanent';
  const whole = wholeBatchFailure(error);
  // A bulk write that failed as a whole (the connection broke under it): its items may have been applied.
  if (whole !== undefined) return whole === error ? 'maybe-applied' : classifyFailure(whole);
  // The driver closes its topology after a failed initial connect; the data client reopens it.
  if (error instanceof MongoServerSelectionError || error instanceof MongoTopologyClosedError) return 'not-sent';
  // The driver also labels PoolRequestedRetry the error that interrupts operations already in
  // flight when a heartbeat times out (PoolClearedOnNetworkError): those may have been applied.
  if (error.name === 'PoolClearedOnNetworkError') return 'maybe-applied';
  // The pool-cleared error raised at checkout, before anything was written to a socket.
  if (error.hasErrorLabel('PoolRequestedRetry')) return 'not-sent';
  if (error instanceof MongoServerError) {
    if (DUPLICATE_KEY_CODES.has(Number(error.code))) return 'permanent';
    if (NOT_PRIMARY_OR_SHUTTING_DOWN.has(Number(error.code))) return 'not-sent';
    if (error.hasErrorLabel('RetryableWriteError') || error.hasErrorLabel('TransientTransactionError')) {
      return 'not-sent';
    }
    return 'permanent';
  }
  if (error instanceof MongoNetworkError) return 'maybe-applied';
  if (error.hasErrorLabel('RetryableWriteError') || error.hasErrorLabel('TransientTransactionError')) {
    return 'maybe-applied';
  }
  return 'permanent';
}

/**
 * The failure behind a bulk write that failed as a whole rather than per item (driver 7 wraps a
 * network or selection error of an `insertMany`/`bulkWrite` in a `MongoBulkWriteError` with no
 * write errors): its cause when there is one, the error itself otherwise; undefined for any
 * other error.
 */
export function wholeBatchFailure(error: unknown): unknown {
  if (!(error instanceof MongoBulkWriteError)) return undefined;
  const writeErrors = Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors];
  if (writeErrors.length > 0 || error.writeConcernError !== undefined) return undefined;
  return error.cause instanceof MongoError ? error.cause : error;
}

/** Reads the duplicated key out of an E11000 error, from `keyValue` or, failing that, the message. */
function duplicateKeyOf(error: MongoServerError): { index?: string; key: Record<string, unknown> } {
  const index = /index: (\S+)/.exec(error.message)?.[1];
  const keyValue = error.keyValue as Record<string, unknown> | undefined;
  if (keyValue && Object.keys(keyValue).length > 0) return { ...(index && { index }), key: { ...keyValue } };
  const dupKey = /dup key: \{(.*)\}\s*$/.exec(error.message)?.[1];
  const key: Record<string, unknown> = {};
  for (const pair of dupKey?.split(',') ?? []) {
    const separator = pair.indexOf(':');
    if (separator > 0)
      key[pair.slice(0, separator).trim()] = pair
        .slice(separator + 1)
        .trim()
        .replace(/^"|"$/g, '');
  }
  return { ...(index && { index }), key };
}

/**
 * Wraps any error from the driver into caas-db's typed hierarchy; caas-db errors pass through.
 * @param collection - the collection the operation addressed, when there was one.
 */
export function toCaasDbError(error: unknown, collection?: string): CaasDbError {
  if (error instanceof CaasDbError) return error;
  const whole = wholeBatchFailure(error);
  if (whole !== undefined) {
    if (whole !== error) return toCaasDbError(whole, collection);
    return new ConnectionError(`The bulk write failed as a whole: ${(error as Error).message}`, { cause: error });
  }
  if (error instanceof MongoClientClosedError) return new ClientClosedError({ cause: error });
  if (error instanceof MongoServerError) {
    if (DUPLICATE_KEY_CODES.has(Number(error.code))) {
      return new DuplicateKeyError({ collection, ...duplicateKeyOf(error) }, { cause: error });
    }
    if (error.code === 50 /* MaxTimeMSExpired */) return new TimeoutError(error.message, { cause: error });
    return new DatabaseError(error.message, { serverCode: Number(error.code), codeName: error.codeName }, { cause: error });
  }
  if (error instanceof MongoOperationTimeoutError || error instanceof MongoNetworkTimeoutError) {
    return new TimeoutError(error.message, { cause: error });
  }
  if (error instanceof MongoServerSelectionError || error instanceof MongoNetworkError || error instanceof MongoTopologyClosedError) {
    return new ConnectionError(error.message, { cause: error });
  }
  if (error instanceof MongoError) return new DatabaseError(error.message, {}, { cause: error });
  if (error instanceof RangeError || (error instanceof Error && 'code' in error && error.code === 'ERR_OUT_OF_RANGE')) {
    return new DatabaseError(`The driver refused the operation: ${error.message}`, {}, { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new DatabaseError(`Unexpected failure: ${message}`, {}, { cause: error });
}
