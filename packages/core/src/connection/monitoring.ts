import type {
  CommandFailedEvent,
  CommandStartedEvent,
  CommandSucceededEvent,
  ConnectionCheckedOutEvent,
  ConnectionCheckOutFailedEvent,
  ConnectionClosedEvent,
  ConnectionCreatedEvent,
  ConnectionPoolClearedEvent,
  MongoClient,
  TopologyDescriptionChangedEvent,
} from 'mongodb';
import type { TypedEmitter } from '../events/typed-emitter.js';
import type { RetryEvent } from './retry-policy.js';

/**
 * One command completed. With `monitoring.wire` the driver reports each wire command (`source:
 * 'wire'`); otherwise the library times each command it sends at its choke point (`source:
 * 'pipeline'`: a find and its `getMore`s are one event, and the server's address and request id
 * are not known there).
 */
export interface CommandEvent {
  /** `find`, `insert`, `aggregate`, ... */
  commandName: string;
  databaseName: string;
  /** The collection the command addressed, when it names one. */
  collection: string | undefined;
  /** Round trip in milliseconds (measured by the driver, or around the library's send). */
  durationMS: number;
  /** `host:port` of the server (wire monitoring only). */
  address: string | undefined;
  /** The driver's request id (wire monitoring only). */
  requestId: number | undefined;
  /** Who timed the command. */
  source: 'wire' | 'pipeline';
}

/** A command the server or the network failed. */
export interface CommandFailedData extends CommandEvent {
  /** The failure's message. */
  error: string;
}

/** A command slower than the configured `monitoring.slowCommandMS`. */
export interface SlowCommandEvent extends CommandEvent {
  thresholdMS: number;
}

/** A connection taken from the pool (or a failed attempt to take one). */
export interface PoolCheckoutEvent {
  address: string;
  /** How long the operation waited for the connection. */
  waitMS: number;
  ok: boolean;
  /** Why the checkout failed, when it did. */
  reason?: string;
}

/** The number of open connections to one server changed. */
export interface PoolSizeEvent {
  address: string;
  /** Open connections to `address` now. */
  size: number;
}

/** One server as the driver sees it. */
export interface ServerSummary {
  address: string;
  /** `Standalone`, `RSPrimary`, `RSSecondary`, `Mongos`, `Unknown`, ... */
  type: string;
  /** Average heartbeat round trip, when measured. */
  roundTripTimeMS: number | undefined;
}

/** The deployment as the driver sees it. */
export interface TopologySummary {
  /** `Single`, `ReplicaSetWithPrimary`, `ReplicaSetNoPrimary`, `Sharded`, `LoadBalanced`, `Unknown`. */
  type: string;
  /** The replica set name, when there is one. */
  setName: string | undefined;
  servers: ServerSummary[];
}

/** Every event a data client emits, by name. Subscribe with `client.on(name, listener)`. */
export interface DataClientEvents {
  'command:succeeded': CommandEvent;
  'command:failed': CommandFailedData;
  'command:slow': SlowCommandEvent;
  'pool:checkout': PoolCheckoutEvent;
  'pool:size': PoolSizeEvent;
  'pool:cleared': { address: string };
  'topology:changed': TopologySummary;
  retry: RetryEvent;
}

/** The collection a command addresses: the string value of its first key, or `collection` for getMore. */
function collectionOf(command: Record<string, unknown>): string | undefined {
  if (typeof command.collection === 'string') return command.collection;
  for (const key in command) {
    const value = command[key];
    return typeof value === 'string' ? value : undefined;
  }
  return undefined;
}

function summarizeTopology(event: TopologyDescriptionChangedEvent): TopologySummary {
  const description = event.newDescription;
  return {
    type: description.type,
    setName: description.setName ?? undefined,
    servers: [...description.servers.values()].map((server) => ({
      address: server.address,
      type: server.type,
      roundTripTimeMS: server.roundTripTime >= 0 ? server.roundTripTime : undefined,
    })),
  };
}

/** Live state the monitor keeps for the health check. */
export interface MonitorState {
  topology: TopologySummary;
  poolSizes: Map<string, number>;
}

/**
 * Reports one command timed at the library's choke point (wire monitoring off): the `command:*`
 * events with `source: 'pipeline'`.
 */
export function emitPipelineCommand(
  events: TypedEmitter<DataClientEvents>,
  slowCommandMS: number,
  command: Omit<CommandEvent, 'address' | 'requestId' | 'source'>,
  error?: unknown,
): void {
  const data: CommandEvent = { ...command, address: undefined, requestId: undefined, source: 'pipeline' };
  if (error !== undefined) {
    events.emit('command:failed', { ...data, error: error instanceof Error ? error.message : String(error) });
    return;
  }
  emitSucceeded(events, slowCommandMS, data);
}

/** `command:succeeded`, and `command:slow` past the threshold: wire and choke-point events alike. */
function emitSucceeded(events: TypedEmitter<DataClientEvents>, slowCommandMS: number, data: CommandEvent): void {
  events.emit('command:succeeded', data);
  if (data.durationMS >= slowCommandMS) events.emit('command:slow', { ...data, thresholdMS: slowCommandMS });
}

/** Whether anyone listens to the `command:*` events (the choke point times commands only then). */
export function observesCommands(events: TypedEmitter<DataClientEvents>): boolean {
  return events.hasListeners('command:succeeded') || events.hasListeners('command:failed') || events.hasListeners('command:slow');
}

/**
 * Subscribes to the driver's pool and topology monitoring, and to its command monitoring when
 * `wire` is on, and re-emits typed events. The returned state is read by the health check.
 */
export function attachMonitoring(
  mongo: MongoClient,
  events: TypedEmitter<DataClientEvents>,
  slowCommandMS: number,
  wire: boolean,
): MonitorState {
  const state: MonitorState = { topology: { type: 'Unknown', setName: undefined, servers: [] }, poolSizes: new Map() };
  if (wire) attachWireMonitoring(mongo, events, slowCommandMS);

  mongo.on('connectionCheckedOut', (event: ConnectionCheckedOutEvent) => {
    events.emit('pool:checkout', { address: event.address, waitMS: event.durationMS, ok: true });
  });
  mongo.on('connectionCheckOutFailed', (event: ConnectionCheckOutFailedEvent) => {
    events.emit('pool:checkout', { address: event.address, waitMS: event.durationMS, ok: false, reason: String(event.reason) });
  });
  const resize = (address: string, delta: number) => {
    const size = Math.max(0, (state.poolSizes.get(address) ?? 0) + delta);
    state.poolSizes.set(address, size);
    events.emit('pool:size', { address, size });
  };
  mongo.on('connectionCreated', (event: ConnectionCreatedEvent) => resize(event.address, 1));
  mongo.on('connectionClosed', (event: ConnectionClosedEvent) => resize(event.address, -1));
  mongo.on('connectionPoolCleared', (event: ConnectionPoolClearedEvent) => {
    events.emit('pool:cleared', { address: event.address });
  });

  mongo.on('topologyDescriptionChanged', (event: TopologyDescriptionChangedEvent) => {
    state.topology = summarizeTopology(event);
    events.emit('topology:changed', state.topology);
  });
  return state;
}

function attachWireMonitoring(mongo: MongoClient, events: TypedEmitter<DataClientEvents>, slowCommandMS: number): void {
  const collections = new Map<number, string | undefined>();
  mongo.on('commandStarted', (event: CommandStartedEvent) => {
    collections.set(event.requestId, collectionOf(event.command));
  });
  const base = (event: CommandSucceededEvent | CommandFailedEvent): CommandEvent => {
    const collection = collections.get(event.requestId);
    collections.delete(event.requestId);
    return {
      commandName: event.commandName,
      databaseName: event.databaseName,
      collection,
      durationMS: event.duration,
      address: event.address,
      requestId: event.requestId,
      source: 'wire',
    };
  };
  mongo.on('commandSucceeded', (event: CommandSucceededEvent) => emitSucceeded(events, slowCommandMS, base(event)));
  mongo.on('commandFailed', (event: CommandFailedEvent) => {
    events.emit('command:failed', { ...base(event), error: event.failure.message });
  });
}
