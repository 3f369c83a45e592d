import { performance } from 'node:perf_hooks';
import { type Db, MongoClient, MongoTopologyClosedError } from 'mongodb';
import { ClientClosedError } from '../errors.js';
import { type Listener, TypedEmitter } from '../events/typed-emitter.js';
import { type Capabilities, detectCapabilities } from './capabilities.js';
import { CLIENT_INTERNALS, type ClientInternals } from './client-internals.js';
import { type DataClientConfig, type ResolvedDataClientConfig, resolveDataClientConfig } from './config.js';
import { toCaasDbError } from './driver-errors.js';
import {
  attachMonitoring,
  type DataClientEvents,
  emitPipelineCommand,
  type MonitorState,
  observesCommands,
  type TopologySummary,
} from './monitoring.js';
import { runWithRetry } from './retry-policy.js';

/** The result of {@link DataClient.health}. It never throws: a failure is reported in `ok` and `error`. */
export interface HealthReport {
  /** True when `ping` succeeded. */
  ok: boolean;
  /** Round trip of the `ping`, in milliseconds. */
  latencyMS: number;
  /** The failure, when `ok` is false. */
  error?: string;
  topology: TopologySummary;
  /** Open connections per server. */
  connections: Record<string, number>;
}

/** Options of {@link DataClient.close}. */
export interface CloseOptions {
  /** How long to wait for operations in flight before closing anyway. @default 10000 */
  drainTimeoutMS?: number;
}

/**
 * One connection to a MongoDB deployment: the pool, retry policy, error translation and
 * monitoring every repository shares. Create it once per process with {@link createDataClient}.
 */
export interface DataClient {
  /** The validated configuration, defaults applied. */
  readonly config: ResolvedDataClientConfig;
  /** The name of the configured database. */
  readonly databaseName: string;
  /** True once {@link close} was called. */
  readonly closed: boolean;
  /** Connects now instead of at the first operation, failing fast with a typed error. */
  connect(): Promise<void>;
  /** What the server supports, probed once and then remembered. */
  capabilities(): Promise<Capabilities>;
  /** `ping` plus a summary of the topology and pools. */
  health(): Promise<HealthReport>;
  /** Subscribes to a monitoring event; returns the unsubscribe function. */
  on<Name extends keyof DataClientEvents>(event: Name, listener: Listener<DataClientEvents[Name]>): () => void;
  /** Removes a listener. */
  off<Name extends keyof DataClientEvents>(event: Name, listener: Listener<DataClientEvents[Name]>): void;
  /**
   * Waits for operations in flight (bounded by `drainTimeoutMS`), then closes every connection.
   * Later operations fail with `ClientClosedError`. Calling it twice is harmless.
   */
  close(options?: CloseOptions): Promise<void>;
}

class MongoDataClient implements DataClient {
  readonly config: ResolvedDataClientConfig;
  readonly #driver: MongoClient;
  readonly #events = new TypedEmitter<DataClientEvents>();
  readonly #monitor: MonitorState;
  readonly #db: Db;
  #capabilities: Promise<Capabilities> | undefined;
  #closing: Promise<void> | undefined;
  #inFlight = 0;
  #drained: (() => void) | undefined;
  /** The capabilities once a probe succeeded. */
  #probed: Capabilities | undefined;
  /** The driver closes its topology after a failed first connect: the next attempt reopens it. */
  #reopen = false;

  constructor(config: ResolvedDataClientConfig) {
    this.config = config;
    this.#driver = new MongoClient(config.uri, config.driverOptions);
    this.#db = this.#driver.db(config.database);
    this.#monitor = attachMonitoring(this.#driver, this.#events, config.slowCommandMS, config.wireMonitoring);
    const events = this.#events;
    const internals: ClientInternals = {
      driver: this.#driver,
      db: this.#db,
      retry: config.retry,
      driverRetries: { reads: config.driverOptions.retryReads ?? true, writes: config.driverOptions.retryWrites ?? true },
      track: (fn) => this.#track(fn),
      probedCapabilities: () => this.#probed,
      attempt: (fn) => this.#attempt(fn),
      wireMonitoring: config.wireMonitoring,
      timesCommands: () => !config.wireMonitoring && observesCommands(events),
      reportCommand: (command, error) => emitPipelineCommand(events, config.slowCommandMS, command, error),
      get closing() {
        return closed();
      },
      emitRetry: (event) => this.#events.emit('retry', event),
    };
    const closed = () => this.#closing !== undefined;
    Object.defineProperty(this, CLIENT_INTERNALS, { value: internals, enumerable: false });
  }

  get databaseName(): string {
    return this.config.database;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  async #track<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closing) throw new ClientClosedError();
    this.#inFlight += 1;
    try {
      return await fn();
    } finally {
      this.#inFlight -= 1;
      if (this.#inFlight === 0) this.#drained?.();
    }
  }

  async #attempt<T>(fn: (db: Db) => Promise<T>): Promise<T> {
    if (this.#closing) throw new ClientClosedError();
    try {
      if (this.#reopen) {
        this.#reopen = false;
        await this.#driver.connect();
      }
      return await fn(this.#db);
    } catch (error) {
      this.#reopen ||= error instanceof MongoTopologyClosedError;
      throw error;
    }
  }

  /** Client-level commands (connect, ping, the capability probe): no data, so no data-layer pipeline. */
  async #run<T>(name: string, fn: (db: Db) => Promise<T>): Promise<T> {
    try {
      return await runWithRetry(
        () => this.#track(() => this.#attempt(fn)),
        { name, idempotent: true },
        this.config.retry,
        (event) => this.#events.emit('retry', event),
      );
    } catch (error) {
      if (this.#closing) throw new ClientClosedError({ cause: error });
      throw toCaasDbError(error);
    }
  }

  async connect(): Promise<void> {
    await this.#run('connect', async (db) => {
      await this.#driver.connect();
      await db.command({ ping: 1 });
    });
  }

  capabilities(): Promise<Capabilities> {
    this.#capabilities ??= this.#run('capabilities', (db) =>
      detectCapabilities(db, { uri: this.config.uri, options: this.config.driverOptions }),
    )
      .then((probed) => {
        this.#probed = probed;
        return probed;
      })
      .catch((error: unknown) => {
        this.#capabilities = undefined;
        throw error;
      });
    return this.#capabilities;
  }

  async health(): Promise<HealthReport> {
    const started = performance.now();
    const report = (ok: boolean, error?: string): HealthReport => ({
      ok,
      latencyMS: performance.now() - started,
      ...(error !== undefined && { error }),
      topology: this.#monitor.topology,
      connections: Object.fromEntries(this.#monitor.poolSizes),
    });
    try {
      await this.#run('health', (db) => db.command({ ping: 1 }));
      return report(true);
    } catch (error) {
      return report(false, error instanceof Error ? error.message : String(error));
    }
  }

  on<Name extends keyof DataClientEvents>(event: Name, listener: Listener<DataClientEvents[Name]>): () => void {
    return this.#events.on(event, listener);
  }

  off<Name extends keyof DataClientEvents>(event: Name, listener: Listener<DataClientEvents[Name]>): void {
    this.#events.off(event, listener);
  }

  close(options: CloseOptions = {}): Promise<void> {
    this.#closing ??= this.#drainAndClose(options.drainTimeoutMS ?? 10_000);
    return this.#closing;
  }

  async #drainAndClose(drainTimeoutMS: number): Promise<void> {
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainTimeoutMS);
        this.#drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    await this.#driver.close();
    this.#events.removeAllListeners();
  }
}

/**
 * Creates a data client. The configuration is validated here, before any I/O: a bad value throws
 * a `ConfigError` naming the field. Connecting happens at the first operation (or {@link DataClient.connect}).
 *
 * @example
 * ```ts
 * import { createDataClient } from '@caas-db/core';
 *
 * const client = createDataClient({
 *   uri: 'mongodb://localhost:27017',
 *   database: 'caas',
 *   pool: { maxSize: 50 },
 *   writeConcern: { w: 'majority', journal: true },
 * });
 * client.on('command:slow', (event) => console.warn('slow', event.commandName, event.durationMS));
 * console.log(await client.health());
 * await client.close();
 * ```
 */
export function createDataClient(config: DataClientConfig): DataClient {
  return new MongoDataClient(resolveDataClientConfig(config));
}
