import { createTestClient, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import type { Document } from 'mongodb';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ClientClosedError,
  type CommandEvent,
  createDataClient,
  createDataLayer,
  DatabaseError,
  type DataClient,
  type PoolCheckoutEvent,
  type PoolSizeEvent,
  Repository,
  type SlowCommandEvent,
} from '../src/index.js';
import { unsafeDriver } from '../src/unsafe.js';

const roomSchema = z.strictObject({ n: z.number().int() });

class RoomRepository extends Repository<typeof roomSchema> {
  /** A find sent as given (no input guard), so that the server judges the filter. */
  findRaw(filter: Document): Promise<Document[]> {
    return this.collection.find('findRaw', filter);
  }
}

/** A repository of `collection` on a data layer over `client`: its commands go through the pipeline. */
function roomsOf(client: DataClient, collection = 'rooms'): RoomRepository {
  return createDataLayer({ client }).repository(
    { collection, schema: roomSchema, tenantOwned: false, schemaVersion: 1, indexes: [], queries: [] },
    RoomRepository,
  );
}

describe('monitoring events', () => {
  it('reports every command with its collection and measured duration', async () => {
    const client = createTestClient();
    const rooms = roomsOf(client);
    const commands: CommandEvent[] = [];
    client.on('command:succeeded', (event) => commands.push(event));
    await rooms.createMany([{ n: 1 }, { n: 2 }]);
    await rooms.findMany({});
    const insert = commands.find((event) => event.commandName === 'insert');
    const find = commands.find((event) => event.commandName === 'find');
    expect(insert).toMatchObject({ collection: 'rooms', databaseName: testDatabaseName() });
    expect(find?.collection).toBe('rooms');
    for (const event of [insert, find]) {
      // A fast command can round to 0 ms; the total over every command cannot.
      expect(event?.durationMS).toBeGreaterThanOrEqual(0);
      expect(event?.durationMS).toBeLessThan(10_000);
      expect(event?.address).toMatch(/:\d+$/);
    }
    for (let index = 0; index < 50; index += 1) {
      await rooms.findOne({ n: index });
    }
    expect(commands.reduce((total, event) => total + event.durationMS, 0)).toBeGreaterThan(0);
  });

  it('times commands at the choke point when wire monitoring is off (the default), one event per command sent', async () => {
    const client = createTestClient({ monitoring: { slowCommandMS: 0 } });
    expect(client.config.wireMonitoring).toBe(false);
    const rooms = roomsOf(client, 'pipeline_timed');
    const succeeded: CommandEvent[] = [];
    const slow: SlowCommandEvent[] = [];
    const failed: string[] = [];
    client.on('command:succeeded', (event) => succeeded.push(event));
    client.on('command:slow', (event) => slow.push(event));
    client.on('command:failed', (event) => failed.push(`${event.commandName}: ${event.error}`));
    await Promise.all([rooms.createMany([{ n: 1 }, { n: 2 }]), rooms.count(), rooms.findMany({})]);
    await expect(rooms.findRaw({ $nope: 1 })).rejects.toBeInstanceOf(DatabaseError);
    expect(succeeded.map((event) => event.commandName).sort()).toEqual(['aggregate', 'find', 'insert']);
    for (const event of succeeded) {
      expect(event).toMatchObject({ source: 'pipeline', collection: 'pipeline_timed', databaseName: testDatabaseName() });
      expect(event.address).toBeUndefined();
      expect(event.durationMS).toBeGreaterThan(0);
    }
    expect(slow).toHaveLength(3);
    expect(failed).toEqual([expect.stringMatching(/^find: .*\$nope/)]);
  });

  it('emits command:slow above the threshold and command:failed with the error', async () => {
    const client = createTestClient({ monitoring: { slowCommandMS: 0, wire: true } });
    const x = roomsOf(client, 'x');
    const slow: SlowCommandEvent[] = [];
    const failed: string[] = [];
    client.on('command:slow', (event) => slow.push(event));
    client.on('command:failed', (event) => failed.push(`${event.commandName}: ${event.error}`));
    expect((await client.health()).ok).toBe(true);
    await x.create({ n: 1 });
    await expect(x.findRaw({ $nope: 1 })).rejects.toBeInstanceOf(DatabaseError);
    expect(slow.find((event) => event.commandName === 'ping')).toMatchObject({ thresholdMS: 0 });
    expect(failed).toContainEqual(expect.stringMatching(/^find: /));
  });

  it('reports pool checkouts and the pool size under parallel load', async () => {
    const client = createTestClient({ pool: { maxSize: 4 } });
    const load = roomsOf(client, 'load');
    const checkouts: PoolCheckoutEvent[] = [];
    const sizes: PoolSizeEvent[] = [];
    client.on('pool:checkout', (event) => checkouts.push(event));
    client.on('pool:size', (event) => sizes.push(event));
    await Promise.all(Array.from({ length: 40 }, (_, index) => load.create({ n: index })));
    expect(checkouts.length).toBeGreaterThanOrEqual(40);
    expect(checkouts.every((event) => event.ok && event.waitMS >= 0)).toBe(true);
    expect(checkouts.some((event) => event.waitMS > 0)).toBe(true);
    const largest = Math.max(...sizes.map((event) => event.size));
    expect(largest).toBeGreaterThan(1);
    expect(largest).toBeLessThanOrEqual(4);
    const health = await client.health();
    expect(Object.values(health.connections).reduce((sum, size) => sum + size, 0)).toBe(sizes.at(-1)?.size);
  });

  it('keeps working when a listener throws', async () => {
    const client = createTestClient();
    const rooms = roomsOf(client);
    client.on('command:succeeded', () => {
      throw new Error('listener bug');
    });
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on('warning', onWarning);
    try {
      await expect(client.health()).resolves.toMatchObject({ ok: true });
      await expect(rooms.create({ n: 7 })).resolves.toMatchObject({ n: 7 });
      await expect(rooms.count({ n: 7 })).resolves.toBe(1);
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.some((message) => message.includes('listener bug'))).toBe(true);
    } finally {
      process.off('warning', onWarning);
    }
  });
});
describe('health check', () => {
  it('pings and summarizes the topology', async () => {
    const client = createTestClient();
    const report = await client.health();
    expect(report.ok).toBe(true);
    expect(report.latencyMS).toBeGreaterThan(0);
    expect(report.topology.servers.length).toBeGreaterThan(0);
    expect(report.topology.type).not.toBe('Unknown');
  });

  it('reports an unreachable server without throwing', async () => {
    const client = createDataClient({
      uri: 'mongodb://127.0.0.1:1/?directConnection=true',
      database: 'nowhere',
      timeouts: { serverSelectionMS: 200 },
      retry: { retries: 0 },
    });
    const report = await client.health();
    expect(report.ok).toBe(false);
    expect(report.error).toMatch(/ECONNREFUSED|connect/);
    await client.close();
  });
});

describe('close', () => {
  it('waits for a repository call in flight, then refuses new ones with ClientClosedError', async () => {
    const client = createDataClient({ uri: testEnvironment().mongo.uri, database: testDatabaseName(), monitoring: { wire: true } });
    const rooms = roomsOf(client, 'closing');
    await rooms.count(); // connected
    const driver = unsafeDriver(client);
    const order: string[] = [];
    driver.on('commandSucceeded', (event) => {
      if (event.commandName === 'insert') order.push('insert answered');
    });
    driver.on('connectionPoolClosed', () => order.push('pool closed'));
    const sent = new Promise<void>((resolve) => {
      driver.on('commandStarted', (event) => {
        if (event.commandName === 'insert') resolve();
      });
    });
    const inFlight = rooms.create({ n: 1 });
    // The insert is on the wire: its reply cannot have been read before this continuation runs.
    await sent;
    const closing = client.close();
    expect(client.closed).toBe(true);
    await closing;
    // The pool closed only after the insert was answered: close drained it.
    expect(order).toEqual(['insert answered', 'pool closed']);
    await expect(inFlight).resolves.toMatchObject({ n: 1 });
    await expect(rooms.findOne({ n: 1 })).rejects.toBeInstanceOf(ClientClosedError);
    await expect(rooms.create({ n: 2 })).rejects.toBeInstanceOf(ClientClosedError);
    await expect(client.close()).resolves.toBeUndefined();
  });
});
