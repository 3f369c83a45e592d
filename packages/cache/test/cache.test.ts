import { createDataClient, createDataLayer, type DataClient, type DataLayer, ObjectId } from '@caas-db/core';
import { startRedis, startTcpProxy, waitFor } from '@caas-db/testing';
import { createTestClient, skipTest, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CacheOptions, type CachePlugin, createCache, type RedisClient, RedisTier } from '../src/index.js';
import { isReady, keysMatching, redisTopology, testRedis } from './support/redis-topology.js';

const methods: CacheOptions['methods'] = {
  'users.findById': { ttlMS: 60_000 },
  'users.findByExternalId': { ttlMS: 60_000 },
  'messages.findByConversation': { ttlMS: 60_000 },
  'conversations.listForUser': { ttlMS: 60_000 },
  'clients.findByTenantId': { ttlMS: 60_000 },
};

const redisClients: RedisClient[] = [];
/** A client of this project's Redis (standalone, Cluster or Sentinel), or of the standalone server at `url`. */
function redisFor(url?: string): RedisClient {
  const redis = testRedis(url);
  redisClients.push(redis);
  return redis;
}

const plugins: CachePlugin[] = [];
function layer(
  options: Partial<CacheOptions> = {},
  client: DataClient = createTestClient(),
): { data: DataLayer; cache: CachePlugin; client: DataClient } {
  // A generous Redis timeout unless a test sets one: on a loaded CI machine (and a cluster's first
  // round trips) 50 ms turns hits into misses; the tests of timeouts set their own.
  const cache = createCache({ methods, redis: redisFor(), prefix: `${testDatabaseName()}:`, redisTimeoutMS: 2000, ...options });
  plugins.push(cache);
  return { data: createDataLayer({ client, plugins: [cache] }), cache, client };
}

/** Counts `find` commands on a collection while `action` runs. */
async function findsDuring(client: DataClient, collection: string, action: () => Promise<unknown>): Promise<number> {
  let finds = 0;
  const stop = client.on('command:succeeded', (event) => {
    if (event.commandName === 'find' && event.collection === collection) finds += 1;
  });
  await action();
  stop();
  return finds;
}

/**
 * Waits for conditions, not for time: first that `read` is served from the cache (a read is a
 * hit), then that an entry filled before that hit has passed its `ttlMS`.
 */
async function cachedThenExpired(cache: CachePlugin, read: () => Promise<unknown>, ttlMS: number): Promise<void> {
  const hits = () => cache.stats().l1.hits + cache.stats().l2.hits;
  await waitFor(
    async () => {
      const before = hits();
      await read();
      return hits() > before;
    },
    { what: 'the entry to be cached' },
  );
  const cachedBy = Date.now();
  await waitFor(() => Date.now() - cachedBy > ttlMS, { what: 'the entry to pass its ttl' });
}

const first = layer();
const acme = first.data.forTenant('acme');

beforeAll(async () => {
  await first.data.syncIndexes();
  await waitFor(async () => redisClients.every(isReady) && first.cache.cache.ready, { timeoutMS: 5000 });
});

afterAll(async () => {
  for (const plugin of plugins) await plugin.close();
  for (const redis of redisClients) redis.disconnect();
});

describe('read-through in two tiers', () => {
  it('serves the second read from L1, and another instance from L2, keeping BSON types', async () => {
    const user = await acme.users.create({
      external_id: 'tiers',
      profile: { display_name: 'T' },
      last_seen: new Date('2026-11-26T10:00:00Z'),
    });
    expect(await findsDuring(first.client, 'users', () => acme.users.findById(user._id))).toBe(1);
    expect(await findsDuring(first.client, 'users', () => acme.users.findById(user._id))).toBe(0);
    const second = layer({}, createDataClient({ uri: testEnvironment().mongo.uri, database: testDatabaseName() }));
    await waitFor(async () => second.cache.cache !== undefined && isReady(redisClients.at(-1)), { timeoutMS: 5000 });
    let fromL2: Awaited<ReturnType<typeof acme.users.findById>> = null;
    expect(
      await findsDuring(second.client, 'users', async () => {
        fromL2 = await second.data.forTenant('acme').users.findById(user._id);
      }),
    ).toBe(0);
    expect(second.cache.stats().l2.hits).toBe(1);
    expect(fromL2).toEqual(user);
    expect((fromL2 as unknown as { _id: unknown })._id).toBeInstanceOf(ObjectId);
    expect((fromL2 as unknown as { last_seen: unknown }).last_seen).toBeInstanceOf(Date);
    await second.client.close();
  });

  it('hands every caller its own copy', async () => {
    const user = await acme.users.create({ external_id: 'copies', profile: { display_name: 'C' } });
    const a = await acme.users.findById(user._id);
    if (a) a.profile.display_name = 'mutated by a caller';
    expect((await acme.users.findById(user._id))?.profile.display_name).toBe('C');
  });

  it('hands every L1 hit its own deep copy: nested objects, arrays and dates changed by one caller stay as stored for the next', async () => {
    const user = await acme.users.create({
      external_id: 'deep-copies',
      profile: { display_name: 'D' },
      last_seen: new Date('2026-11-26T10:00:00Z'),
    });
    await acme.users.findById(user._id); // fills L1
    const hit = await acme.users.findById(user._id);
    const hitsBefore = first.cache.stats().l1.hits;
    if (!hit) throw new Error('expected the user');
    hit.profile.display_name = 'changed';
    (hit.last_seen as Date).setTime(0);
    (hit as unknown as { search_tokens: string[] }).search_tokens?.push('injected');
    const second = await acme.users.findById(user._id);
    expect(first.cache.stats().l1.hits).toBe(hitsBefore + 1);
    expect(second?.profile.display_name).toBe('D');
    expect(second?.last_seen?.toISOString()).toBe('2026-11-26T10:00:00.000Z');
    expect((second as unknown as { search_tokens?: string[] }).search_tokens ?? []).not.toContain('injected');
    expect(second?._id).toBeInstanceOf(ObjectId);
  });

  it('hands every caller joining one load its own copy, the loader too', async () => {
    const user = await acme.users.create({
      external_id: 'flight-copies',
      profile: { display_name: 'F' },
      last_seen: new Date('2026-11-26T10:00:00Z'),
    });
    const { data, client } = layer();
    const repositories = data.forTenant('acme');
    const results: Array<Awaited<ReturnType<typeof acme.users.findById>>> = [];
    const finds = await findsDuring(client, 'users', async () => {
      results.push(...(await Promise.all(Array.from({ length: 5 }, () => repositories.users.findById(user._id)))));
    });
    expect(finds).toBe(1); // one load, joined by the four others
    expect(new Set(results).size).toBe(5);
    for (const result of results) {
      expect(result?._id).toBeInstanceOf(ObjectId);
      expect(result?.last_seen).toBeInstanceOf(Date);
    }
    if (results[0]) results[0].profile.display_name = 'mutated by one caller';
    expect(results.slice(1).map((result) => result?.profile.display_name)).toEqual(['F', 'F', 'F', 'F']);
    expect((await repositories.users.findById(user._id))?.profile.display_name).toBe('F');
  });

  it('hands every caller joining one L2 read its own copy', async () => {
    const user = await acme.users.create({ external_id: 'l2-copies', profile: { display_name: 'L2' } });
    await acme.users.findById(user._id); // fills L2
    const { data, cache } = layer({ memory: false });
    await waitFor(async () => isReady(redisClients.at(-1)), { timeoutMS: 5000 });
    const repositories = data.forTenant('acme');
    const results = await Promise.all(Array.from({ length: 5 }, () => repositories.users.findById(user._id)));
    expect(cache.stats().l2.hits).toBe(1); // one L2 read, joined by the four others
    expect(new Set(results).size).toBe(5);
    if (results[0]) results[0].profile.display_name = 'mutated by one caller';
    expect(results.slice(1).map((result) => result?.profile.display_name)).toEqual(['L2', 'L2', 'L2', 'L2']);
    expect(results[1]?._id).toBeInstanceOf(ObjectId);
    expect((await repositories.users.findById(user._id))?.profile.display_name).toBe('L2');
  });

  it('serves a stale entry to a later caller as a copy the stale-while-revalidate caller cannot change', async () => {
    const cache = createCache({
      methods: { 'users.findById': { ttlMS: 1, staleWhileRevalidateMS: 60_000, staleIfErrorMS: 60_000 } },
      memory: { maxEntries: 1 },
    });
    plugins.push(cache);
    const read = (id: string, load: () => Promise<unknown>) =>
      cache.cache.read({ method: 'users.findById', collection: 'users', tenant: 'acme', args: { id }, tags: [] }, load, () => []);
    await read('a', async () => ({ name: 'original' }));
    const filledAt = Date.now();
    await waitFor(async () => Date.now() > filledAt + 2, { timeoutMS: 1000 }); // past ttlMS
    let fail!: (error: Error) => void;
    const failing = new Promise<never>((_, reject) => {
      fail = reject;
    });
    const served = (await read('a', () => failing)) as { name: string }; // stale, while a refresh runs
    served.name = 'mutated by the stale-while-revalidate caller';
    await read('b', async () => ({ name: 'b' })); // evicts 'a' from L1 (one entry at most)
    const joined = read('a', () => Promise.resolve({ name: 'not loaded: this caller joins the refresh' }));
    fail(new Error('MongoDB is down'));
    expect(await joined).toEqual({ name: 'original' }); // stale-if-error
  });

  it('caches not-found briefly, and an insert of that id is seen at once', async () => {
    const id = new ObjectId();
    expect(await acme.users.findById(id)).toBeNull();
    expect(await findsDuring(first.client, 'users', () => acme.users.findById(id))).toBe(0);
    await acme.users.create({ _id: id, external_id: 'late', profile: { display_name: 'L' } });
    expect((await acme.users.findById(id))?.external_id).toBe('late');
    expect(await acme.users.findByExternalId('nobody-yet')).toBeNull();
    await acme.users.create({ external_id: 'nobody-yet', profile: { display_name: 'N' } });
    expect(await acme.users.findByExternalId('nobody-yet')).not.toBeNull();
  });
});

describe('invalidation', () => {
  it('never serves a stale read after a write on the same instance', async () => {
    const user = await acme.users.create({ external_id: 'fresh', profile: { display_name: 'v0' } });
    for (let version = 1; version <= 20; version += 1) {
      await acme.users.findById(user._id);
      await acme.users.update(user._id, { profile: { display_name: `v${version}` } });
      expect((await acme.users.findById(user._id))?.profile.display_name).toBe(`v${version}`);
    }
  });

  it('a read during a write’s Redis invalidation does not put the old entry back in the writer’s L1', async () => {
    const { data, cache } = layer();
    await waitFor(() => cache.cache.ready, { what: 'the cache to be ready' });
    const repositories = data.forTenant('acme');
    const user = await repositories.users.create({ external_id: 'gap', profile: { display_name: 'old' } });
    await repositories.users.findById(user._id); // in L1 and in Redis
    // Right after the write dropped its L1 copy, and before Redis has deleted the entry, a read
    // of the same instance starts: it finds the old entry in Redis (its command goes first).
    let during: Promise<unknown> | undefined;
    const off = cache.on('cache:invalidate', (event) => {
      if (event.source === 'local' && !during) during = repositories.users.findById(user._id);
    });
    await repositories.users.update(user._id, { profile: { display_name: 'new' } });
    off();
    await during;
    expect((await repositories.users.findById(user._id))?.profile.display_name).toBe('new');
  });

  it('keeps cached message pages and conversation lists exact through sends, receipts and deletes', async () => {
    const [a, b] = [new ObjectId(), new ObjectId()];
    const { conversation } = await acme.conversations.createDirect([a, b]);
    const { conversation: other } = await acme.conversations.createDirect([a, new ObjectId()]);
    const send = (conversationId: ObjectId, text: string) =>
      acme.messages.create({ conversation_id: conversationId, sender_id: a, content: { type: 'text', encrypted_data: text } });
    const one = await send(conversation._id, 'b25l');
    expect((await acme.messages.findByConversation(conversation._id, { limit: 10 })).items).toHaveLength(1);
    const two = await send(conversation._id, 'dHdv');
    expect((await acme.messages.findByConversation(conversation._id, { limit: 10 })).items.map((message) => message._id)).toEqual([
      two._id,
      one._id,
    ]);
    await acme.messages.markAsRead(one._id, b);
    expect((await acme.messages.findByConversation(conversation._id, { limit: 10 })).items[1]?.read_by).toHaveLength(1);
    await acme.messages.softDelete(two._id);
    expect((await acme.messages.findByConversation(conversation._id, { limit: 10 })).items.map((message) => message._id)).toEqual([
      one._id,
    ]);
    expect((await acme.conversations.listForUser(a)).items[0]?._id).toEqual(conversation._id);
    await send(other._id, 'dGhyZWU');
    expect((await acme.conversations.listForUser(a)).items[0]?._id).toEqual(other._id);
    expect((await acme.conversations.listForUser(a)).items[0]?.last_message?.content_preview).toBe('');
  });

  it('reaches another instance through the bus within a bounded time (measured here)', async () => {
    const second = layer({}, createDataClient({ uri: testEnvironment().mongo.uri, database: testDatabaseName() }));
    await waitFor(async () => isReady(redisClients.at(-1)), { timeoutMS: 5000 });
    const theirs = second.data.forTenant('acme');
    const user = await acme.users.create({ external_id: 'bus', profile: { display_name: 'before' } });
    expect((await theirs.users.findById(user._id))?.profile.display_name).toBe('before');
    expect((await theirs.users.findById(user._id))?.profile.display_name).toBe('before');
    await acme.users.update(user._id, { profile: { display_name: 'after' } });
    const tookMS = await waitFor(async () => (await theirs.users.findById(user._id))?.profile.display_name === 'after', {
      timeoutMS: 1000,
    });
    expect(tookMS).toBeLessThan(1000);
    expect(second.cache.stats().invalidations.remote).toBeGreaterThan(0);
    await second.client.close();
  });
});

describe('stampede protection', () => {
  it('loads a key once for 50 concurrent misses (single flight)', async () => {
    const user = await acme.users.create({ external_id: 'stampede', profile: { display_name: 'S' } });
    const { data, client } = layer();
    const results: unknown[] = [];
    const finds = await findsDuring(client, 'users', async () => {
      results.push(...(await Promise.all(Array.from({ length: 50 }, () => data.forTenant('acme').users.findById(user._id)))));
    });
    expect(finds).toBe(1);
    expect(results.every((result) => (result as { _id: ObjectId })._id.equals(user._id))).toBe(true);
  });

  it('loads a key once across two instances with the distributed lock', async () => {
    const user = await acme.users.create({ external_id: 'locked', profile: { display_name: 'L' } });
    // A generous Redis timeout: the lock is under test, not a loaded machine's first round trips.
    const instances = [
      layer({ distributedLock: { ttlMS: 2000, waitMS: 1000 }, redisTimeoutMS: 2000 }),
      layer({ distributedLock: { ttlMS: 2000, waitMS: 1000 }, redisTimeoutMS: 2000 }),
    ];
    await waitFor(async () => redisClients.slice(-2).every(isReady), { timeoutMS: 5000 });
    let finds = 0;
    const stops = instances.map(({ client }) =>
      client.on('command:succeeded', (event) => {
        if (event.commandName === 'find' && event.collection === 'users') finds += 1;
      }),
    );
    await Promise.all(instances.flatMap(({ data }) => Array.from({ length: 10 }, () => data.forTenant('acme').users.findById(user._id))));
    for (const stop of stops) stop();
    expect(finds).toBe(1);
  });
});

describe('distributed lock ownership', () => {
  /** A loader that reports when it started and returns only when let go. */
  function gatedLoad(value: unknown): { load: () => Promise<unknown>; started: () => boolean; release: () => void } {
    let started = false;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    return {
      load: async () => {
        started = true;
        await gate;
        return value;
      },
      started: () => started,
      release,
    };
  }

  function lockingCache(prefix: string, lock: { ttlMS: number; waitMS: number }): { cache: CachePlugin; redis: RedisClient } {
    const redis = redisFor();
    // A generous Redis timeout: the lock is under test, not a loaded machine's round trips.
    const cache = createCache({ methods, redis, prefix, distributedLock: lock, redisTimeoutMS: 2000 });
    plugins.push(cache);
    return { cache, redis };
  }

  const request = (id: ObjectId) => ({ method: 'users.findById', collection: 'users', tenant: 'acme', args: { id }, tags: [] });

  it('takes the lock with a token of its own, and a release with another token leaves it', async () => {
    const redis = redisFor();
    await waitFor(async () => isReady(redis), { timeoutMS: 5000 });
    const prefix = `${testDatabaseName()}:tier-lock:`;
    const tier = new RedisTier(redis, { prefix, timeoutMS: 1000 });
    const mine = await tier.lock('acme', 'key', 10_000);
    expect(typeof mine).toBe('string');
    expect(await tier.lock('acme', 'key', 10_000)).toBeUndefined(); // held
    await tier.unlock('acme', 'key', 'not-the-owner');
    const lockKey = `${tier.group('acme', 'key')}l:key`;
    expect(await redis.exists(lockKey)).toBe(1);
    await tier.unlock('acme', 'key', mine as string);
    expect(await redis.exists(lockKey)).toBe(0);
  });

  it('a late release after the lock expired does not free the lock a peer took since', async () => {
    const prefix = `${testDatabaseName()}:late-release:`;
    const a = lockingCache(prefix, { ttlMS: 1000, waitMS: 0 }); // outlives a loaded machine's first round trips, still expires in the test
    const b = lockingCache(prefix, { ttlMS: 30_000, waitMS: 0 });
    const raw = redisFor();
    await waitFor(async () => [a.redis, b.redis, raw].every(isReady), { timeoutMS: 5000 });
    const id = new ObjectId();
    const loadA = gatedLoad({ _id: id, by: 'a' });
    const readA = a.cache.cache.read(request(id), loadA.load, () => []);
    await waitFor(async () => loadA.started(), { timeoutMS: 5000 });
    const [lockKey] = await keysMatching(raw, `${prefix}{*}l:*`);
    expect(lockKey).toBeDefined();
    // A is still loading when its lock runs out; B misses, takes the lock and loads.
    await waitFor(async () => (await raw.exists(lockKey as string)) === 0, { timeoutMS: 5000 });
    const loadB = gatedLoad({ _id: id, by: 'b' });
    const readB = b.cache.cache.read(request(id), loadB.load, () => []);
    await waitFor(async () => loadB.started(), { timeoutMS: 5000 });
    const tokenOfB = await raw.get(lockKey as string);
    expect(tokenOfB).not.toBeNull();
    loadA.release();
    await readA;
    await a.redis.ping(); // anything A sent on its connection has run by now
    expect(await raw.get(lockKey as string)).toBe(tokenOfB);
    loadB.release();
    await readB;
    await b.redis.ping();
    expect(await raw.exists(lockKey as string)).toBe(0); // B released its own lock
  });

  it('an instance that waited for a peer and then loaded itself never releases the peer’s lock', async () => {
    const prefix = `${testDatabaseName()}:not-taken:`;
    const peer = lockingCache(prefix, { ttlMS: 30_000, waitMS: 0 });
    const waiter = lockingCache(prefix, { ttlMS: 30_000, waitMS: 30 });
    const raw = redisFor();
    await waitFor(async () => [peer.redis, waiter.redis, raw].every(isReady), { timeoutMS: 5000 });
    const id = new ObjectId();
    const loadPeer = gatedLoad({ _id: id, by: 'peer' });
    const readPeer = peer.cache.cache.read(request(id), loadPeer.load, () => []);
    await waitFor(async () => loadPeer.started(), { timeoutMS: 5000 });
    const [lockKey] = await keysMatching(raw, `${prefix}{*}l:*`);
    const tokenOfPeer = await raw.get(lockKey as string);
    expect(tokenOfPeer).not.toBeNull();
    // The waiter finds the lock taken, waits 30 ms without a fill, then loads and fills itself.
    expect(
      await waiter.cache.cache.read(
        request(id),
        async () => ({ _id: id, by: 'waiter' }),
        () => [],
      ),
    ).toEqual({ _id: id, by: 'waiter' });
    await waiter.redis.ping();
    expect(await raw.get(lockKey as string)).toBe(tokenOfPeer);
    loadPeer.release();
    await readPeer;
  });
});

describe('stale entries', () => {
  it('serves stale while one refresh runs', async () => {
    // 300 ms: the first read's fill into Redis (a cluster's first scripts on a loaded machine)
    // must not outlast the entry's freshness, or the read that should hit serves stale.
    const { data, cache } = layer({ methods: { 'users.findById': { ttlMS: 300, staleWhileRevalidateMS: 10_000 } } });
    await waitFor(() => cache.cache.ready, { what: 'the cache to be ready' });
    const repositories = data.forTenant('acme');
    const user = await repositories.users.create({ external_id: 'swr', profile: { display_name: 'S' } });
    // The in-process tier serves only while the invalidation bus is subscribed; on a loaded machine
    // it may resubscribe in between (the read then goes to Redis, which does not serve stale), so
    // the cycle is repeated until an expired entry is read from L1, which must serve it stale.
    await waitFor(
      async () => {
        await waitFor(() => cache.cache.ready, { what: 'the cache to be ready' });
        await cachedThenExpired(cache, () => repositories.users.findById(user._id), 300);
        await repositories.users.findById(user._id);
        return cache.stats().staleServes >= 1;
      },
      { what: 'an expired entry served stale from L1', timeoutMS: 60_000 },
    );
    expect(cache.stats().staleServes).toBeGreaterThanOrEqual(1);
  });

  it('serves stale within its bound when MongoDB fails, and fails past it', async () => {
    const proxy = await startTcpProxy(/mongodb:\/\/([^/?]+)/.exec(testEnvironment().mongo.uri)?.[1] ?? '');
    const client = createDataClient({
      uri: `mongodb://127.0.0.1:${proxy.port}/?directConnection=true`,
      database: testDatabaseName(),
      timeouts: { serverSelectionMS: 300 },
      retry: { retries: 0 },
    });
    const { data, cache } = layer(
      {
        memory: {},
        methods: { 'users.findById': { ttlMS: 30, staleIfErrorMS: 60_000 }, 'users.findByExternalId': { ttlMS: 30, staleIfErrorMS: 0 } },
      },
      client,
    );
    const repositories = data.forTenant('acme');
    const user = await repositories.users.create({ external_id: 'outage', profile: { display_name: 'O' } });
    await repositories.users.findByExternalId('outage');
    await cachedThenExpired(cache, () => repositories.users.findById(user._id), 30);
    await proxy.cut();
    try {
      expect((await repositories.users.findById(user._id))?.external_id).toBe('outage');
      expect(cache.stats().staleServes).toBe(1);
      await expect(repositories.users.findByExternalId('outage')).rejects.toMatchObject({ code: 'E_CONNECTION' });
    } finally {
      await proxy.restore();
      await client.close();
      await proxy.stop();
    }
  });
});

describe('Redis failures never reach callers', () => {
  const standaloneOnly = (context: Parameters<typeof skipTest>[0]) => {
    if (redisTopology().kind !== 'standalone')
      skipTest(context, 'restarts a standalone redis-server of its own: runs in the standalone project');
  };

  it('reads keep succeeding while Redis is down, and caching resumes when it is back', async (context) => {
    standaloneOnly(context);
    const redisServer = await startRedis();
    try {
      const redis = redisFor(redisServer.url);
      const cache = createCache({ methods, redis, prefix: 'outage:' });
      plugins.push(cache);
      const client = createTestClient();
      const data = createDataLayer({ client, plugins: [cache] });
      await waitFor(async () => isReady(redis), { timeoutMS: 5000 });
      const repositories = data.forTenant('acme');
      const user = await repositories.users.create({ external_id: 'redis-down', profile: { display_name: 'R' } });
      await repositories.users.findById(user._id);
      const hitsAtOutage = cache.stats().l2.hits;
      const restarted = redisServer.restart?.(async () => {
        await waitFor(async () => redis.status !== 'ready', { timeoutMS: 5000 });
        for (let index = 0; index < 5; index += 1) {
          await repositories.users.update(user._id, { profile: { display_name: `down-${index}` } });
          expect((await repositories.users.findById(user._id))?.profile.display_name).toBe(`down-${index}`);
        }
      });
      await restarted;
      await waitFor(async () => isReady(redis), { timeoutMS: 5000 });
      const hitsBefore = cache.stats().l2.hits;
      const other = createCache({ methods, redis, prefix: 'outage:', memory: false });
      plugins.push(other);
      const otherData = createDataLayer({ client, plugins: [other] }).forTenant('acme');
      await otherData.users.findById(user._id);
      await waitFor(
        async () => {
          await otherData.users.findById(user._id);
          return other.stats().l2.hits > 0;
        },
        { timeoutMS: 3000 },
      );
      expect(cache.stats().invalidations.failed).toBeGreaterThan(0);
      expect((await otherData.users.findById(user._id))?.profile.display_name).toBe('down-4');
      // Redis was down: no read in the meantime can have been served from it.
      expect(hitsBefore).toBe(hitsAtOutage);
    } finally {
      await redisServer.stop();
    }
  });

  it('counts reads during an outage as L2 errors, and errors of the invalidation bus', async (context) => {
    standaloneOnly(context);
    const redisServer = await startRedis();
    try {
      if (!redisServer.restart) return context.skip('an external Redis cannot be stopped');
      const redis = redisFor(redisServer.url);
      const cache = createCache({ methods, redis, prefix: 'counters:', memory: false });
      plugins.push(cache);
      const errors: string[] = [];
      cache.on('cache:error', (event) => errors.push(event.operation));
      const data = createDataLayer({ client: createTestClient(), plugins: [cache] });
      await waitFor(async () => isReady(redis), { timeoutMS: 5000 });
      const repositories = data.forTenant('acme');
      const user = await repositories.users.create({ external_id: 'counters', profile: { display_name: 'C' } });
      await repositories.users.findById(user._id);
      expect(cache.stats().l2.misses).toBe(1);
      expect(cache.stats().l2.errors).toBe(0);
      await redisServer.restart(async () => {
        await waitFor(async () => redis.status !== 'ready', { timeoutMS: 5000 });
        const before = cache.stats();
        expect((await repositories.users.findById(user._id))?.external_id).toBe('counters');
        expect(cache.stats().l2.errors).toBe(before.l2.errors + 1);
        expect(cache.stats().l2).toEqual({ hits: 0, misses: 1, errors: before.l2.errors + 1 }); // no other counter
        expect(errors).toContain('read');
        // The subscriber's reconnect attempts fail while the server is away.
        await waitFor(async () => cache.stats().invalidations.busErrors > 0, { timeoutMS: 5000 });
        expect(errors).toContain('bus');
      });
    } finally {
      await redisServer.stop();
    }
  });

  it('falls back to MongoDB when Redis is slow or returns garbage, counting the errors', async () => {
    const errors: string[] = [];
    const { data, cache } = layer({ memory: false, redisTimeoutMS: 20 });
    cache.on('cache:error', (event) => errors.push(event.operation));
    await waitFor(async () => isReady(redisClients.at(-1)), { timeoutMS: 5000 });
    const repositories = data.forTenant('acme');
    const user = await repositories.users.create({ external_id: 'slow', profile: { display_name: 'S' } });
    const redis = redisClients.at(-1) as RedisClient;
    // The connection the cache reads over is held by a blocking pop; on a cluster, every primary
    // pauses its clients for as long (a pop blocks one node's connection only).
    const blocking =
      redis instanceof Cluster
        ? Promise.all(redis.nodes('master').map((node) => node.call('CLIENT', 'PAUSE', '300', 'ALL')))
        : redis.blpop(`block-${new ObjectId().toHexString()}`, 0.3);
    expect((await repositories.users.findById(user._id))?.external_id).toBe('slow');
    await blocking;
    // A paused node answers again once its pause is over.
    if (redis instanceof Cluster) await Promise.all(redis.nodes('master').map((node) => node.ping()));
    expect(errors).toContain('read');
    await repositories.users.findById(user._id);
    const raw = redisFor();
    await waitFor(async () => isReady(raw), { timeoutMS: 5000 });
    const keys = await keysMatching(raw, `${testDatabaseName()}:{*}e:k:acme:users.findById:*`);
    expect(keys.length).toBeGreaterThan(0);
    await Promise.all(keys.map((key) => raw.set(key, 'not bson at all')));
    expect((await repositories.users.findById(user._id))?.external_id).toBe('slow');
    expect(errors).toContain('decode');
  });
});

describe('warming, metrics and configuration', () => {
  it('warms a tenant’s recently active users and their conversation lists within bounds', async () => {
    const { data, cache, client } = layer();
    await waitFor(() => cache.cache.ready, { what: 'the cache to be ready' });
    const repositories = data.forTenant('acme');
    const users = await Promise.all(
      Array.from({ length: 5 }, (_, index) =>
        repositories.users.create({
          external_id: `warm-${index}`,
          profile: { display_name: 'W' },
          last_seen: new Date(Date.UTC(2030, 0, 1) + index),
        }),
      ),
    );
    const report = await cache.warm(repositories, { users: 3, timeBudgetMS: 5000 });
    expect(report).toMatchObject({ users: 3, conversationLists: 3, stoppedEarly: false });
    const warmed = users.slice(-3);
    expect(await findsDuring(client, 'users', () => Promise.all(warmed.map((user) => repositories.users.findById(user._id))))).toBe(0);
  });

  it('reports hits, misses and hit rate per tier', async () => {
    const { data, cache } = layer();
    await waitFor(() => cache.cache.ready, { what: 'the cache to be ready' });
    const repositories = data.forTenant('acme');
    const user = await repositories.users.create({ external_id: 'stats', profile: { display_name: 'S' } });
    for (let index = 0; index < 10; index += 1) await repositories.users.findById(user._id);
    const stats = cache.stats();
    expect(stats.requests).toBe(10);
    expect(stats.l1.hits).toBe(9);
    expect(stats.hitRate).toBeCloseTo(0.9);
    expect(stats.loads.count).toBe(1);
  });

  it('bounds the in-process tier and counts evictions', async () => {
    const { data, cache } = layer({ memory: { maxEntries: 3 } });
    await waitFor(() => cache.cache.ready, { what: 'the cache to be ready' });
    const repositories = data.forTenant('acme');
    for (let index = 0; index < 6; index += 1) await repositories.users.findById(new ObjectId());
    expect(cache.stats().l1.entries).toBe(3);
    expect(cache.stats().l1.evictions).toBe(3);
  });

  it('refuses invalid options with the field named', () => {
    expect(() => createCache({ methods: { 'users.findById': { ttlMS: 0 } } })).toThrow(/methods.users.findById.ttlMS/);
    expect(() => createCache({ methods: { findById: { ttlMS: 1 } } })).toThrow(/methods.findById/);
    expect(() => createCache({ methods, redis: {} as never })).toThrow(/redis/);
  });
});
