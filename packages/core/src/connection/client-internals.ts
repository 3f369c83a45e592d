import type { Db, MongoClient } from 'mongodb';
import type { Capabilities } from './capabilities.js';
import type { RetrySettings } from './config.js';
import type { CommandEvent } from './monitoring.js';
import type { RetryEvent } from './retry-policy.js';

/**
 * What the library's own modules need from a data client that its public interface does not give:
 * the driver, for the pipeline's innermost step, sessions and command monitoring. Reached through
 * a registry symbol (`Symbol.for`), so two copies of core (ESM and CommonJS) see the same thing.
 * Only `@caas-db/core/unsafe` hands any of it to users.
 */
export interface ClientInternals {
  readonly driver: MongoClient;
  /** The configured database. */
  readonly db: Db;
  readonly retry: RetrySettings;
  /** Whether the driver itself retries reads and writes once (retryReads / retryWrites, on by default). */
  readonly driverRetries: { readonly reads: boolean; readonly writes: boolean };
  /** The capabilities, when a probe already succeeded (never starts one). */
  probedCapabilities(): Capabilities | undefined;
  /**
   * Runs one whole operation (every layer, every attempt) as in flight: `close()` waits for it, and
   * an operation started after `close()` fails with `ClientClosedError`.
   */
  track<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Runs one attempt against the server: refuses once the client is closing and reopens a topology
   * the driver closed after a failed first connect. Called within a tracked operation (the
   * pipeline encloses every operation in {@link track}).
   */
  attempt<T>(fn: (db: Db) => Promise<T>): Promise<T>;
  /** Whether the driver's wire-level command monitoring is on (then the driver reports commands). */
  readonly wireMonitoring: boolean;
  /** Whether the choke point should time commands for the `command:*` events (someone listens, wire monitoring off). */
  timesCommands(): boolean;
  /** Reports a command timed at the choke point as a `command:*` event. */
  reportCommand(command: Omit<CommandEvent, 'address' | 'requestId' | 'source'>, error?: unknown): void;
  /** Whether `close()` was called (a failure then surfaces as `ClientClosedError`). */
  readonly closing: boolean;
  /** Emits the client's `retry` event. */
  emitRetry(event: RetryEvent): void;
}

/** The registry key of a data client's internals. */
export const CLIENT_INTERNALS: unique symbol = Symbol.for('@caas-db/core/client-internals') as never;

/** The internals of a data client made by `createDataClient`. */
export function internalsOf(client: object): ClientInternals {
  const internals = (client as { [CLIENT_INTERNALS]?: ClientInternals })[CLIENT_INTERNALS];
  if (!internals) throw new TypeError('not a caas-db data client (create one with createDataClient)');
  return internals;
}
