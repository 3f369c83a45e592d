import { performance } from 'node:perf_hooks';
import pRetry from 'p-retry';
import type { RetrySettings } from './config.js';
import { classifyFailure } from './driver-errors.js';

/** What an operation tells the retry policy about itself. */
export interface RetryableOperation {
  /** A name for events and errors, e.g. `users.findById`. */
  name: string;
  /**
   * True when running the operation twice has the same effect as once (reads, `$set` by id,
   * `$addToSet`, inserts with a client-generated `_id`). A non-idempotent operation is retried only
   * when the failure proves it never reached a server.
   */
  idempotent: boolean;
}

/** Data of the `retry` event: one failed attempt that will be retried. */
export interface RetryEvent {
  operation: string;
  /** The attempt that failed, from 1. */
  attempt: number;
  retriesLeft: number;
  /** The failure's class name and message. */
  error: string;
}

/** True when a failure of an operation (idempotent or not) may be retried. */
export function isRetryable(error: unknown, idempotent: boolean): boolean {
  const kind = classifyFailure(error);
  return kind === 'not-sent' || (kind === 'maybe-applied' && idempotent);
}

/**
 * Runs `fn` and retries it on transient failures only: network errors (idempotent operations),
 * server selection failures, pool clears, not-primary and shutdown errors, and errors labelled
 * `RetryableWriteError` or `TransientTransactionError`. Exponential backoff with full jitter,
 * bounded by `settings.retries` and `settings.maxElapsedMS`. Validation and duplicate-key errors
 * are never retried. The last error is rethrown as it was (translation happens one layer up).
 */
export function runWithRetry<T>(
  fn: () => Promise<T>,
  operation: RetryableOperation,
  settings: RetrySettings,
  onRetry: (event: RetryEvent) => void,
): Promise<T> {
  if (settings.retries === 0) return fn();
  // The first attempt runs outside the retry loop: an operation that succeeds (nearly all of them)
  // pays nothing for it. A failure enters the loop as its first attempt, so backoff, events and
  // limits are those of an ordinary run.
  const started = performance.now();
  return fn().catch((error: unknown) => {
    if (!isRetryable(error, operation.idempotent)) throw error;
    return retryAfterFirstFailure(fn, error, started, operation, settings, onRetry);
  });
}

function retryAfterFirstFailure<T>(
  fn: () => Promise<T>,
  error: unknown,
  started: number,
  operation: RetryableOperation,
  settings: RetrySettings,
  onRetry: (event: RetryEvent) => void,
): Promise<T> {
  let firstFailure: { error: unknown } | undefined = { error };
  const replayFirstFailure = (): Promise<T> => {
    if (!firstFailure) return fn();
    const { error } = firstFailure;
    firstFailure = undefined;
    return Promise.reject(error);
  };
  return pRetry(replayFirstFailure, {
    retries: settings.retries,
    factor: 2,
    minTimeout: settings.minDelayMS,
    maxTimeout: settings.maxDelayMS,
    randomize: true,
    maxRetryTime: Math.max(1, settings.maxElapsedMS - (performance.now() - started)),
    shouldRetry: ({ error }) => isRetryable(error, operation.idempotent),
    onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
      if (retriesLeft > 0 && isRetryable(error, operation.idempotent)) {
        onRetry({ operation: operation.name, attempt: attemptNumber, retriesLeft, error: `${error.name}: ${error.message}` });
      }
    },
  });
}
