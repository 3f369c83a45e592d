import type { CommandStartedEvent, CommandSucceededEvent, Document } from 'mongodb';
import { internalsOf } from '../connection/client-internals.js';
import type { DataClient } from '../connection/data-client.js';
import { ConfigError } from '../errors.js';

/** One slow command. */
export interface SlowQuery {
  at: Date;
  commandName: string;
  databaseName: string;
  collection: string | undefined;
  durationMS: number;
  /** The shape of the query: filter (or pipeline stage names) with values replaced by their types, never the values. */
  shape: string;
}

const SHAPED_COMMANDS = new Set(['find', 'aggregate', 'count', 'distinct', 'update', 'delete', 'findAndModify', 'insert']);

function shapeOf(value: unknown): unknown {
  if (Array.isArray(value)) return value.length > 0 ? [shapeOf(value[0])] : [];
  if (value === null || typeof value !== 'object') return typeof value;
  if (value.constructor?.name === 'ObjectId') return 'ObjectId';
  if (value instanceof Date) return 'Date';
  return Object.fromEntries(Object.entries(value as Document).map(([key, child]) => [key, shapeOf(child)]));
}

function queryShape(commandName: string, command: Document): string {
  switch (commandName) {
    case 'find':
      return JSON.stringify({ filter: shapeOf(command.filter), sort: command.sort ?? null });
    case 'aggregate':
      return JSON.stringify((command.pipeline as Document[] | undefined)?.map((stage) => Object.keys(stage)[0]) ?? []);
    case 'count':
    case 'distinct':
    case 'findAndModify':
      return JSON.stringify({ query: shapeOf(command.query) });
    case 'update':
      return JSON.stringify({ q: shapeOf((command.updates as Document[] | undefined)?.[0]?.q) });
    case 'delete':
      return JSON.stringify({ q: shapeOf((command.deletes as Document[] | undefined)?.[0]?.q) });
    default:
      return `${(command.documents as unknown[] | undefined)?.length ?? 0} documents`;
  }
}

/**
 * Keeps the slowest recent commands (over `thresholdMS`) with their query shapes, from the driver's
 * command monitoring: the slow-query log of the plan's Phase 4. Values never enter it, only shapes.
 */
export class SlowQueryLog {
  readonly #client: DataClient;
  readonly #thresholdMS: number;
  readonly #capacity: number;
  readonly #pending = new Map<number, { shape: string; collection: string | undefined }>();
  readonly #entries: SlowQuery[] = [];
  readonly #onStarted: (event: CommandStartedEvent) => void;
  readonly #onSucceeded: (event: CommandSucceededEvent) => void;
  readonly #onFailed: (event: { requestId: number }) => void;

  /** @throws {ConfigError} when the client was created without `monitoring: { wire: true }`. */
  constructor(client: DataClient, options: { thresholdMS: number; capacity?: number }) {
    if (!client.config.wireMonitoring) {
      throw new ConfigError([
        {
          path: 'monitoring.wire',
          message: "SlowQueryLog reads the driver's wire-level command monitoring: create the client with monitoring: { wire: true }",
          code: 'custom',
        },
      ]);
    }
    this.#client = client;
    this.#thresholdMS = options.thresholdMS;
    this.#capacity = options.capacity ?? 1000;
    this.#onStarted = (event) => {
      if (!SHAPED_COMMANDS.has(event.commandName)) return;
      const collection = event.command[event.commandName];
      this.#pending.set(event.requestId, {
        shape: queryShape(event.commandName, event.command),
        collection: typeof collection === 'string' ? collection : undefined,
      });
    };
    this.#onSucceeded = (event) => {
      const pending = this.#pending.get(event.requestId);
      this.#pending.delete(event.requestId);
      if (!pending || event.duration < this.#thresholdMS) return;
      this.#entries.push({
        at: new Date(),
        commandName: event.commandName,
        databaseName: event.databaseName,
        collection: pending.collection,
        durationMS: event.duration,
        shape: pending.shape,
      });
      if (this.#entries.length > this.#capacity) this.#entries.shift();
    };
    this.#onFailed = (event) => this.#pending.delete(event.requestId);
    internalsOf(client).driver.on('commandStarted', this.#onStarted);
    internalsOf(client).driver.on('commandSucceeded', this.#onSucceeded);
    internalsOf(client).driver.on('commandFailed', this.#onFailed);
  }

  /** The recorded slow commands, oldest first. */
  entries(): SlowQuery[] {
    return [...this.#entries];
  }

  /** The slow commands grouped by shape, the most time spent first. */
  byShape(): Array<{ collection: string | undefined; commandName: string; shape: string; count: number; totalMS: number; maxMS: number }> {
    const groups = new Map<
      string,
      { collection: string | undefined; commandName: string; shape: string; count: number; totalMS: number; maxMS: number }
    >();
    for (const entry of this.#entries) {
      const key = `${entry.collection}|${entry.commandName}|${entry.shape}`;
      const group = groups.get(key) ?? {
        collection: entry.collection,
        commandName: entry.commandName,
        shape: entry.shape,
        count: 0,
        totalMS: 0,
        maxMS: 0,
      };
      group.count += 1;
      group.totalMS += entry.durationMS;
      group.maxMS = Math.max(group.maxMS, entry.durationMS);
      groups.set(key, group);
    }
    return [...groups.values()].sort((a, b) => b.totalMS - a.totalMS);
  }

  /** Stops recording. */
  detach(): void {
    internalsOf(this.#client).driver.off('commandStarted', this.#onStarted);
    internalsOf(this.#client).driver.off('commandSucceeded', this.#onSucceeded);
    internalsOf(this.#client).driver.off('commandFailed', this.#onFailed);
  }
}
