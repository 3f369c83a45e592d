import { createTestClient, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { describe, expect, it } from 'vitest';
import {
  ClientClosedError,
  type CommandEvent,
  createDataClient,
  type PoolCheckoutEvent,
  type PoolSizeEvent,
  type SlowCommandEvent,
} from '../src/index.js';

describe('monitoring events', () => {
  it('reports every command with its collection and measured duration', async () => {
    const client = createTestClient();
    const commands: CommandEvent[] = [];
    client.on('command:succeeded', (event) => commands.push(event));
    await client.execute({ name: 'insert', idempotent: true }, (db) => db.collection('rooms').insertMany([{ n: 1 }, { n: 2 }]));
    await client.execute({ name: 'find', idempotent: true }, (db) => db.collection('rooms').find({}).toArray());
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
      await client.execute({ name: 'find', idempotent: true }, (db) => db.collection('rooms').find({ n: index }).toArray());
    }
    expect(commands.reduce((total, event) => total + event.durationMS, 0)).toBeGreaterThan(0);
  });

  it('emits command:slow above the threshold and command:failed with the error', async () => {
    const client = createTestClient({ monitoring: { slowCommandMS: 0 } });
    const slow: SlowCommandEvent[] = [];
    const failed: string[] = [];
    client.on('command:slow', (event) => slow.push(event));
    client.on('command:failed', (event) => failed.push(`${event.commandName}: ${event.error}`));
    await client.execute({ name: 'ping', idempotent: true }, (db) => db.command({ ping: 1 }));
    await client.execute({ name: 'seed', idempotent: true }, (db) => db.collection('x').insertOne({ n: 1 }));
    await client.execute({ name: 'bad', idempotent: true }, (db) => db.collection('x').find({ $nope: 1 }).toArray()).catch(() => undefined);
    expect(slow.find((event) => event.commandName === 'ping')).toMatchObject({ thresholdMS: 0 });
    expect(failed).toContainEqual(expect.stringMatching(/^find: /));
  });

  it('reports pool checkouts and the pool size under parallel load', async () => {
    const client = createTestClient({ pool: { maxSize: 4 } });
    const checkouts: PoolCheckoutEvent[] = [];
    const sizes: PoolSizeEvent[] = [];
    client.on('pool:checkout', (event) => checkouts.push(event));
    client.on('pool:size', (event) => sizes.push(event));
    await Promise.all(
      Array.from({ length: 40 }, (_, index) =>
        client.execute({ name: 'insert', idempotent: true }, (db) => db.collection('load').insertOne({ index })),
      ),
    );
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
    client.on('command:succeeded', () => {
      throw new Error('listener bug');
    });
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on('warning', onWarning);
    try {
      await expect(client.execute({ name: 'ping', idempotent: true }, (db) => db.command({ ping: 1 }))).resolves.toMatchObject({ ok: 1 });
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
  it('waits for operations in flight, then refuses new ones with ClientClosedError', async () => {
    const client = createDataClient({ uri: testEnvironment().mongo.uri, database: testDatabaseName() });
    const inFlight = client.execute({ name: 'slow', idempotent: true }, async (db) => {
      await new Promise((resolve) => setTimeout(resolve, 200));
      return db.collection('closing').insertOne({ finished: true });
    });
    const closing = client.close();
    await expect(inFlight).resolves.toMatchObject({ acknowledged: true });
    await closing;
    expect(client.closed).toBe(true);
    await expect(client.execute({ name: 'late', idempotent: true }, (db) => db.command({ ping: 1 }))).rejects.toBeInstanceOf(
      ClientClosedError,
    );
    await expect(client.close()).resolves.toBeUndefined();
  });
});
