import { startMongo, startTcpProxy, type TcpProxy } from '@caas-db/testing';
import { skipTest, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { type CommandStartedEvent, type Document, MongoNetworkError, MongoServerError, MongoServerSelectionError } from 'mongodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ConnectionError,
  classifyFailure,
  createDataClient,
  createDataLayer,
  DatabaseError,
  type DataClient,
  DuplicateKeyError,
  isRetryable,
  type Middleware,
  Repository,
  type RepositoryDefinition,
  type RetryEvent,
} from '../src/index.js';
import { unsafeDriver } from '../src/unsafe.js';

function hostOf(uri: string): string {
  const match = /^mongodb:\/\/(?:[^@/]*@)?([^/?,]+)/.exec(uri);
  if (!match?.[1]) throw new Error(`cannot read a single host from ${uri}`);
  return match[1];
}

const noteSchema = z.strictObject({ n: z.number().int(), label: z.string().max(32) });
const notesDefinition: RepositoryDefinition<typeof noteSchema> = {
  collection: 'notes',
  schema: noteSchema,
  tenantOwned: false,
  schemaVersion: 1,
  indexes: [{ name: 'label', key: { label: 1 }, unique: true, purpose: 'a unique key for the duplicate-key test' }],
  queries: [],
};

class NoteRepository extends Repository<typeof noteSchema> {
  /** A find sent as given (no input guard), so that the server judges the filter. */
  findRaw(filter: Document): Promise<Document[]> {
    return this.collection.find('findRaw', filter);
  }

  /** An insert its call site declares idempotent: its `_id` is generated here, so a re-send cannot insert twice. */
  async put(input: z.input<typeof noteSchema>): Promise<Document> {
    const document = this.prepareInsert(input);
    await this.collection.insertOne({ name: 'put', idempotent: true }, document);
    return document;
  }
}

/** The operations that reached the `transport` phase, once per attempt (the retry layer re-runs it). */
const attempts: string[] = [];
const attemptsOf = (operation: string) => attempts.filter((name) => name === operation).length;
const countAttempts: Middleware = {
  name: 'count-attempts',
  phase: 'transport',
  handle(ctx, next) {
    attempts.push(ctx.operation);
    return next();
  },
};

/** The notes repository of a data layer on `client`, its attempts counted. */
function notesOf(client: DataClient): NoteRepository {
  return createDataLayer({ client, middlewares: [countAttempts] }).repository(notesDefinition, NoteRepository);
}

/** Resolves once `client` emits a `retry` event for `operation`, after running `then` (if given). */
function nextRetry(client: DataClient, operation: string, then?: () => Promise<void>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const off = client.on('retry', (event) => {
      if (event.operation !== operation) return;
      off();
      Promise.resolve(then?.()).then(() => resolve(), reject);
    });
  });
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
  let notes: NoteRepository;
  const retries: RetryEvent[] = [];

  /**
   * Cuts the network the moment `client` sends `commandName` (an `insert`) to notes: the server
   * never gets it, and the client cannot know whether it did. Resolves once cut.
   */
  function cutWhenSent(commandName: string): Promise<void> {
    const driver = unsafeDriver(client);
    return new Promise<void>((resolve) => {
      const listener = (event: CommandStartedEvent) => {
        if (event.commandName !== commandName || event.command[commandName] !== 'notes') return;
        driver.off('commandStarted', listener);
        void proxy.cut().then(resolve);
      };
      driver.on('commandStarted', listener);
    });
  }

  beforeAll(async () => {
    proxy = await startTcpProxy(hostOf(testEnvironment().mongo.uri));
    client = createDataClient({
      uri: `mongodb://127.0.0.1:${proxy.port}/?directConnection=true`,
      database: testDatabaseName(),
      timeouts: { serverSelectionMS: 400, connectMS: 400 },
      retry: { retries: 8, minDelayMS: 50, maxDelayMS: 300, maxElapsedMS: 10_000 },
      // The proxy cuts on the driver's commandStarted: wire-level monitoring.
      monitoring: { wire: true },
    });
    client.on('retry', (event) => retries.push(event));
    await client.connect();
    notes = notesOf(client);
    await notes.syncIndexes();
  });

  afterAll(async () => {
    await createDataLayer({ client })
      .admin.dropDatabase()
      .catch(() => undefined);
    await client.close();
    await proxy.stop();
  });

  it('retries a read (findOne) that fails transiently and succeeds once the network is back', async () => {
    await notes.create({ n: 1, label: 'a' });
    retries.length = 0;
    attempts.length = 0;
    await proxy.cut();
    // The network comes back once the read has failed and is about to be retried.
    const restored = nextRetry(client, 'notes.findOne', () => proxy.restore());
    const found = await notes.findOne({ n: 1 });
    await restored;
    expect(found?.label).toBe('a');
    expect(attemptsOf('notes.findOne')).toBeGreaterThan(1);
    expect(retries.length).toBe(attemptsOf('notes.findOne') - 1);
    expect(retries[0]).toMatchObject({ operation: 'notes.findOne', attempt: 1 });
  });

  it('does not retry a non-transient server error', async () => {
    retries.length = 0;
    attempts.length = 0;
    await expect(notes.findRaw({ $bogus: 1 })).rejects.toBeInstanceOf(DatabaseError);
    expect(attemptsOf('notes.findRaw')).toBe(1);
    expect(retries).toEqual([]);
  });

  it('does not retry a duplicate key, and reports the key', async () => {
    await notes.create({ n: 2, label: 'dup' });
    retries.length = 0;
    attempts.length = 0;
    const error = await notes.create({ n: 3, label: 'dup' }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(DuplicateKeyError);
    expect(error).toMatchObject({ code: 'E_DUPLICATE_KEY', collection: 'notes', value: 'dup' });
    expect(attemptsOf('notes.create')).toBe(1);
    expect(retries).toEqual([]);
  });

  it('does not re-send a non-idempotent insert (create) whose outcome is unknown', async () => {
    await notes.count(); // connected (a read is retried until it is)
    retries.length = 0;
    attempts.length = 0;
    void cutWhenSent('insert');
    try {
      await expect(notes.create({ n: 4, label: 'outcome unknown' })).rejects.toBeInstanceOf(ConnectionError);
      expect(attemptsOf('notes.create')).toBe(1);
      expect(retries).toEqual([]);
    } finally {
      await proxy.cut(); // a no-op when the insert was cut, as it should have been
      await proxy.restore();
    }
  });

  it('re-sends an insert whose call site declares it idempotent', async () => {
    await notes.count(); // connected (a read is retried until it is)
    retries.length = 0;
    attempts.length = 0;
    // The network comes back once the insert has failed without a reply and is about to be re-sent.
    const restored = cutWhenSent('insert').then(() => nextRetry(client, 'notes.put', () => proxy.restore()));
    const stored = await notes.put({ n: 5, label: 'resent' });
    await restored;
    expect(attemptsOf('notes.put')).toBeGreaterThan(1);
    expect(retries.length).toBe(attemptsOf('notes.put') - 1);
    expect(retries[0]).toMatchObject({ operation: 'notes.put', attempt: 1 });
    expect(await notes.findById(stored._id)).toMatchObject({ n: 5, label: 'resent' });
    expect(await notes.count({ label: 'resent' })).toBe(1);
  });

  it('connects once the server appears, even when the first connection attempt failed', async () => {
    await proxy.cut();
    const late = createDataClient({
      uri: `mongodb://127.0.0.1:${proxy.port}/?directConnection=true`,
      database: testDatabaseName(),
      timeouts: { serverSelectionMS: 200, connectMS: 200 },
      retry: { retries: 10, minDelayMS: 50, maxDelayMS: 200, maxElapsedMS: 10_000 },
    });
    // The server appears once the first attempt (the first connection) has failed.
    const restored = nextRetry(late, 'notes.findOne', () => proxy.restore());
    try {
      await expect(notesOf(late).findOne({ n: 1 })).resolves.toMatchObject({ label: 'a' });
      await restored;
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
    const gaveUp: RetryEvent[] = [];
    impatient.on('retry', (event) => gaveUp.push(event));
    await proxy.cut();
    try {
      await expect(notesOf(impatient).findOne({ n: 1 })).rejects.toBeInstanceOf(ConnectionError);
      expect(gaveUp.length).toBeLessThanOrEqual(2);
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
    const notes = notesOf(client);
    try {
      await notes.create({ n: 1, label: 'before' });
      let during: Promise<unknown> | undefined;
      await own.restart?.(async () => {
        const failed = nextRetry(client, 'notes.put');
        // Declared idempotent (a client-generated _id), so a failure of unknown outcome is re-sent too.
        during = notes.put({ n: 2, label: 'during' });
        // The server comes back once the write has failed against the stopped server (or has settled).
        await Promise.race([failed, during.catch(() => undefined)]);
      });
      await during;
      expect(retries.length).toBeGreaterThan(0);
      expect(await notes.count({ label: 'during' })).toBe(1);
      expect((await client.health()).ok).toBe(true);
    } finally {
      await client.close();
      await own.stop();
    }
  });
});
