import { AsyncLocalStorage } from 'node:async_hooks';
import { type ClientSession, MongoError } from 'mongodb';
import { internalsOf } from '../connection/client-internals.js';
import type { DataClient } from '../connection/data-client.js';
import { toCaasDbError } from '../connection/driver-errors.js';
import { CaasDbError, TransactionsUnsupportedError } from '../errors.js';
import { processShared } from '../shared-state.js';

// Shared by every copy of core in the process, so afterCommit sees a transaction opened through another.
const { storage, committedCallbacks } = processShared('@caas-db/core/transaction-context', () => ({
  storage: new AsyncLocalStorage<ClientSession>(),
  committedCallbacks: new WeakMap<ClientSession, Array<() => Promise<void> | void>>(),
}));

/**
 * Runs `callback` once the current transaction has committed, or now when there is none. Caches
 * use it so that invalidations happen after the data they describe is visible to other readers.
 */
export async function afterCommit(callback: () => Promise<void> | void): Promise<void> {
  const session = storage.getStore();
  if (!session) return callback();
  const callbacks = committedCallbacks.get(session) ?? [];
  callbacks.push(callback);
  committedCallbacks.set(session, callbacks);
}

/** The session of the transaction the current call runs in, if any. Scoped collections pass it to every command. */
export function currentSession(): ClientSession | undefined {
  return storage.getStore();
}

/**
 * What to do on a deployment without transactions (a standalone server):
 * `'required'` throws `TransactionsUnsupportedError`; `'best-effort'` runs the function without a
 * transaction and reports it through `onUnsupported`.
 */
export type TransactionMode = 'required' | 'best-effort';

/** Options of {@link runInTransaction}. */
export interface TransactionOptions {
  /** @default 'required' */
  mode?: TransactionMode;
  /** Called when `mode` is `'best-effort'` and the function ran without a transaction. */
  onUnsupported?: (reason: string) => void;
  /** Give up committing after this long. @default 30000 */
  maxCommitTimeMS?: number;
}

/**
 * Runs `fn` in one transaction: every repository call inside it, however deep, uses the same
 * session. The driver's `withTransaction` retries the whole function on `TransientTransactionError`
 * and the commit on `UnknownTransactionCommitResult`, so `fn` may run more than once and must not
 * have side effects outside the database.
 */
export async function runInTransaction<T>(client: DataClient, fn: () => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  if (storage.getStore()) return fn();
  const capabilities = await client.capabilities();
  if (!capabilities.transactions) {
    const reason = `the deployment has no transactions (MongoDB ${capabilities.serverVersion}, sessions: ${capabilities.sessions}); a replica set or sharded cluster is needed`;
    if ((options.mode ?? 'required') === 'required') throw new TransactionsUnsupportedError(reason);
    options.onUnsupported?.(reason);
    return fn();
  }
  const session = internalsOf(client).driver.startSession();
  try {
    const result = await session.withTransaction(
      async () => {
        try {
          return await storage.run(session, fn);
        } catch (error) {
          // Repositories throw typed errors; hand the driver its own transient error back so that
          // its retry of TransientTransactionError still sees the label.
          const cause = error instanceof CaasDbError ? error.cause : undefined;
          throw cause instanceof MongoError && cause.hasErrorLabel('TransientTransactionError') ? cause : error;
        }
      },
      {
        readConcern: { level: 'snapshot' },
        writeConcern: { w: 'majority' },
        maxCommitTimeMS: options.maxCommitTimeMS ?? 30_000,
      },
    );
    for (const callback of committedCallbacks.get(session) ?? []) await callback();
    return result;
  } catch (error) {
    throw toCaasDbError(error);
  } finally {
    committedCallbacks.delete(session);
    await session.endSession();
  }
}
