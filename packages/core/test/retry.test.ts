import { startMongo, startTcpProxy, type TcpProxy } from '@caas-db/testing';
import { skipTest, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConnectionError,
  classifyFailure,
  createDataClient,
  DatabaseError,
  type DataClient,
  DuplicateKeyError,
  isRetryable,
  type RetryEvent,
} from '../src/index.js';

function hostOf(uri: string): string {
  const match = /^mongodb:\/\/(?:[^@/]*@)?([^/?,]+)/.exec(uri);
  if (!match?.[1]) throw new Error(`cannot read a single host from ${uri}`);
  return match[1];
}

describe('retry policy (pure classification)', () => {
  it('treats server selection failures and not-primary errors as never sent', () => {
    const selection = new MongoServerSelectionError('no server', { type: 'Unknown' } as never);
    expect(classifyFailure(selection)).toBe('not-sent');
    const notPrimary = new MongoServerError({ code: 10107, errmsg: 'not primary' });
    expect(classifyFailure(notPrimary)).toBe('not-sent');
    expect(isRetryable(notPrimary, false)).toBe(true);
  });

  it('retries a broken connection only for idempotent operations', () => {
    const network = new MongoNetworkError('connection reset');
    expect(classifyFailure(network)).toBe('maybe-applied');
    expect(isRetryable(network, true)).toBe(true);
    expect(isRetryable(network, false)).toBe(false);
  });

  it('never retries duplicate keys, bad queries or plain errors', () => {
    expect(isRetryable(new MongoServerError({ code: 11000, errmsg: 'E11000 duplicate key' }), true)).toBe(false);
    expect(isRetryable(new MongoServerError({ code: 2, errmsg: 'BadValue' }), true)).toBe(false);
    expect(isRetryable(new TypeError('bug'), true)).toBe(false);
  });

  it('honours the RetryableWriteError label', () => {
    const labelled = new MongoServerError({ code: 262, errmsg: 'ExceededTimeLimit', errorLabels: ['RetryableWriteError'] });
    expect(isRetryable(labelled, false)).toBe(true);
  });
});

describe('retry policy (on the real server, through a TCP proxy)', () => {
  let proxy: TcpProxy;
  let client: DataClient;
  const retries: RetryEvent[] = [];

  beforeAll(async () => {
    proxy = await startTcpProxy(hostOf(testEnvironment().mongo.uri));
    client = createDataClient({
      uri: `mongodb://127.0.0.1:${proxy.port}/?directConnection=true`,
      database: testDatabaseName(),
      timeouts: { serverSelectionMS: 400, connectMS: 400 },
      retry: { retries: 8, minDelayMS: 50, maxDelayMS: 300, maxElapsedMS: 10_000 },
    });
    client.on('retry', (event) => retries.push(event));
    await client.connect();
  });

  afterAll(async () => {
    await client.close();
    await proxy.stop();
  });

  it('retries a transient failure and succeeds once the network is back', async () => {
    retries.length = 0;
    await client.execute({ name: 'seed', idempotent: true }, (db) => db.collection('notes').insertOne({ _id: 'a' as never, n: 1 }));
    await proxy.cut();
    setTimeout(() => void proxy.restore(), 700);
    let attempts = 0;
    const found = await client.execute({ name: 'notes.findOne', idempotent: true }, (db) => {
      attempts += 1;
      return db.collection('notes').findOne({ n: 1 });
    });
    expect(found?.n).toBe(1);
    expect(attempts).toBeGreaterThan(1);
    expect(retries.length).toBe(attempts - 1);
    expect(retries[0]).toMatchObject({ operation: 'notes.findOne', attempt: 1 });
  });

  it('does not retry a non-transient server error', async () => {
    retries.length = 0;
    let attempts = 0;
    const failure = client.execute({ name: 'bad query', idempotent: true }, (db) => {
      attempts += 1;
      return db.collection('notes').find({ $bogus: 1 }).toArray();
    });
    await expect(failure).rejects.toBeInstanceOf(DatabaseError);
    expect(attempts).toBe(1);
    expect(retries).toEqual([]);
  });

  it('does not retry a duplicate key, and reports the key', async () => {
    let attempts = 0;
    const insert = () =>
      client.execute({ name: 'notes.insert', idempotent: false, collection: 'notes' }, (db) => {
        attempts += 1;
        return db.collection('notes').insertOne({ _id: 'dup' as never });
      });
    await insert();
    attempts = 0;
    const error = await insert().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DuplicateKeyError);
    expect(error).toMatchObject({ code: 'E_DUPLICATE_KEY', collection: 'notes', value: 'dup' });
    expect(attempts).toBe(1);
  });

  it('connects once the server appears, even when the first connection attempt failed', async () => {
    await proxy.cut();
    const late = createDataClient({
      uri: `mongodb://127.0.0.1:${proxy.port}/?directConnection=true`,
      database: testDatabaseName(),
      timeouts: { serverSelectionMS: 200, connectMS: 200 },
      retry: { retries: 10, minDelayMS: 50, maxDelayMS: 200, maxElapsedMS: 10_000 },
    });
    setTimeout(() => void proxy.restore(), 800);
    try {
      await expect(late.execute({ name: 'ping', idempotent: true }, (db) => db.command({ ping: 1 }))).resolves.toMatchObject({ ok: 1 });
    } finally {
      await late.close();
    }
  });

  it('gives up within its budget with a typed error when the server stays away', async () => {
    const impatient = createDataClient({
      uri: `mongodb://127.0.0.1:${proxy.port}/?directConnection=true`,
      database: testDatabaseName(),
      timeouts: { serverSelectionMS: 200, connectMS: 200 },
      retry: { retries: 2, minDelayMS: 10, maxDelayMS: 20, maxElapsedMS: 2000 },
    });
    await proxy.cut();
    try {
      await expect(impatient.execute({ name: 'ping', idempotent: true }, (db) => db.command({ ping: 1 }))).rejects.toBeInstanceOf(
        ConnectionError,
      );
    } finally {
      await proxy.restore();
      await impatient.close();
    }
  });
});

describe('reconnection after a server restart', () => {
  it('reconnects when the server stops and comes back during a run', async (context) => {
    const shared = testEnvironment().mongo;
    const backend = shared.backend;
    if (backend === 'external') {
      return skipTest(context, 'an external MONGODB_URI server cannot be restarted by the test; the proxy tests cover reconnection');
    }
    const own = await startMongo({ backend });
    const client = createDataClient({
      uri: own.uri,
      database: 'restart',
      timeouts: { serverSelectionMS: 500 },
      retry: { retries: 10, minDelayMS: 50, maxDelayMS: 500, maxElapsedMS: 20_000 },
    });
    const retries: RetryEvent[] = [];
    client.on('retry', (event) => retries.push(event));
    try {
      await client.execute({ name: 'insert', idempotent: true }, (db) => db.collection('c').insertOne({ before: true }));
      let during: Promise<unknown> | undefined;
      await own.restart?.(async () => {
        during = client.execute({ name: 'insert', idempotent: true }, (db) => db.collection('c').insertOne({ during: true }));
        await new Promise((resolve) => setTimeout(resolve, 300));
      });
      await during;
      expect(retries.length).toBeGreaterThan(0);
      const after = await client.execute({ name: 'count', idempotent: true }, (db) => db.collection('c').countDocuments({ during: true }));
      expect(after).toBe(1);
      expect((await client.health()).ok).toBe(true);
    } finally {
      await client.close();
      await own.stop();
    }
  });
});
