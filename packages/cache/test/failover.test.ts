/**
 * The cache across Redis failovers and slot migrations, under a read and write load from two
 * instances: the Redis primary is killed with SIGKILL (Sentinel: a primary, a replica, three
 * sentinels; Cluster: three primaries with a replica each), or slots move with
 * `redis-cli --cluster reshard`. Callers must see no error, no read may return a value older than
 * the documented bound allows (docs/caching.md, Redis Cluster and Sentinel), the distributed lock
 * and the Redis rate limiter keep working, and the cache serves from Redis again afterwards.
 *
 * Each file run starts its own Sentinel group and cluster (killing a primary of the suites'
 * shared topology would disturb them). `pnpm test:failover` runs this file ten times in a row.
 */
import { createDataClient, createDataLayer, type DataClient, type ObjectId } from '@caas-db/core';
import { RedisRateLimitStore } from '@caas-db/tenancy';
import { type RedisTestCluster, type RedisTestSentinel, startRedisCluster, startRedisSentinel, waitFor } from '@caas-db/testing';
import { createTestClient, testDatabaseName, testEnvironment } from '@caas-db/testing/vitest';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CacheOptions, type CachePlugin, createCache, type RedisClient } from '../src/index.js';
import { isReady } from './support/redis-topology.js';

const methods: CacheOptions['methods'] = { 'users.findById': { ttlMS: 60_000 } };

/** The docs' bound for another instance's in-process copy to drop a write it missed nothing of. */
const BUS_BOUND_MS = 1000;
/** How far back an instance replays its invalidations after a failover (the cache's option). */
const REPLAY_MS = 10_000;

let sentinel: RedisTestSentinel;
let cluster: RedisTestCluster;
const clients: RedisClient[] = [];
const plugins: CachePlugin[] = [];
const dataClients: DataClient[] = [];

beforeAll(async () => {
  [sentinel, cluster] = await Promise.all([startRedisSentinel(), startRedisCluster({ masters: 3, replicas: 1 })]);
});

afterAll(async () => {
  for (const plugin of plugins) await plugin.close();
  for (const client of clients) client.disconnect();
  for (const client of dataClients) await client.close();
  await Promise.allSettled([sentinel?.stop(), cluster?.stop()]);
});

function sentinelClient(): RedisClient {
  const redis = new Redis({
    sentinels: sentinel.sentinels,
    name: sentinel.name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => 100,
  });
  redis.on('error', () => undefined);
  clients.push(redis);
  return redis;
}

function clusterClient(): RedisClient {
  const redis = new Cluster(cluster.nodes, {
    enableOfflineQueue: false,
    clusterRetryStrategy: () => 100,
    redisOptions: { maxRetriesPerRequest: 0 },
  });
  redis.on('error', () => undefined);
  clients.push(redis);
  return redis;
}

interface Instance {
  name: string;
  cache: CachePlugin;
  users: ReturnType<ReturnType<typeof createDataLayer>['forTenant']>['users'];
  /** When this instance's invalidations may have been lost, and when its recovery put them back. */
  windows: Array<{ from: number; to: number }>;
  recoveries: number[];
  l2HitsAt: number[];
}

function instance(name: string, redis: RedisClient, prefix: string): Instance {
  const cache = createCache({
    methods,
    redis,
    prefix,
    redisTimeoutMS: 100,
    distributedLock: { ttlMS: 2000, waitMS: 50 },
    failoverReplayMS: REPLAY_MS,
  });
  plugins.push(cache);
  const client =
    dataClients.length === 0 ? createTestClient() : createDataClient({ uri: testEnvironment().mongo.uri, database: testDatabaseName() });
  dataClients.push(client);
  const users = createDataLayer({ client, plugins: [cache] }).forTenant('acme').users;
  const self: Instance = { name, cache, users, windows: [], recoveries: [], l2HitsAt: [] };
  // A failed invalidation opens a window that the next recovery closes (docs: the bound).
  cache.on('cache:error', (event) => {
    if (event.operation === 'invalidate') self.windows.push({ from: Date.now(), to: Number.POSITIVE_INFINITY });
  });
  cache.on('cache:recovered', () => {
    const now = Date.now();
    self.recoveries.push(now);
    for (const window of self.windows) if (window.to === Number.POSITIVE_INFINITY) window.to = now;
  });
  cache.on('cache:hit', (event) => {
    if (event.tier === 'l2') self.l2HitsAt.push(Date.now());
  });
  return self;
}

interface Outcome {
  reads: number;
  writes: number;
  errors: string[];
  /** Reads older than the bound allows. */
  stale: string[];
  /** Reads older than the latest acknowledged write, within the bound (reported, allowed). */
  staleWithinBound: number;
  rate: { allowed: number; bound: number; errors: number };
  killToL2MS: number;
  timeline?: string;
}

/**
 * Two instances read and write 12 users while `disrupt` runs; checks every read against the
 * writes acknowledged before it started.
 */
async function underLoad(
  makeRedis: () => RedisClient,
  prefix: string,
  disrupt: () => Promise<(() => Promise<void>) | undefined>,
  killsPrimary: boolean,
): Promise<Outcome> {
  const redisOf = [makeRedis(), makeRedis()] as const;
  const instances = [instance('a', redisOf[0], prefix), instance('b', redisOf[1], prefix)];
  const rateRedis = makeRedis();
  await waitFor(async () => [...redisOf, rateRedis].every(isReady), { what: 'Redis clients ready', timeoutMS: 20_000 });
  const seeded = await Promise.all(
    Array.from({ length: 12 }, (_, index) =>
      (instances[0] as Instance).users.create({ external_id: `f-${index}`, profile: { display_name: 'v0' } }),
    ),
  );
  const ids = seeded.map((user) => user._id as ObjectId);
  /** Per user, each acknowledged write: its version, who wrote it and when it returned. */
  const acked = new Map<string, Array<{ version: number; writer: Instance; at: number }>>(ids.map((id) => [id.toHexString(), []]));
  const nextVersion = new Map<string, number>(ids.map((id) => [id.toHexString(), 0]));
  const outcome: Outcome = {
    reads: 0,
    writes: 0,
    errors: [],
    stale: [],
    staleWithinBound: 0,
    rate: { allowed: 0, bound: 0, errors: 0 },
    killToL2MS: -1,
  };
  let killAt = Number.POSITIVE_INFINITY;
  let stop = false;
  const pick = () => ids[Math.floor(Math.random() * ids.length)] as ObjectId;

  // Each writer has users of its own: one writer per document keeps versions in write order.
  const writer = async (self: Instance, mine: ObjectId[]) => {
    while (!stop) {
      const id = mine[Math.floor(Math.random() * mine.length)] as ObjectId;
      const key = id.toHexString();
      const version = (nextVersion.get(key) ?? 0) + 1;
      nextVersion.set(key, version);
      try {
        await self.users.update(id, { profile: { display_name: `v${version}` } });
        acked.get(key)?.push({ version, writer: self, at: Date.now() });
        outcome.writes += 1;
      } catch (error) {
        outcome.errors.push(`write on ${self.name}: ${String(error)}`);
      }
    }
  };
  const allowedStale = (self: Instance, write: { writer: Instance; at: number }, startedAt: number) => {
    // The writer's invalidations may have been lost: from the failure (or, for a kill, the replay
    // window before it) until its recovery, plus the bus's delivery bound.
    const windows = [...write.writer.windows];
    if (killsPrimary && killAt !== Number.POSITIVE_INFINITY) {
      const recovered = write.writer.recoveries.find((at) => at >= killAt) ?? Number.POSITIVE_INFINITY;
      windows.push({ from: killAt - REPLAY_MS, to: recovered });
    }
    if (windows.some((window) => write.at >= window.from && write.at <= window.to && startedAt <= window.to + BUS_BOUND_MS)) return true;
    // Otherwise: at once on the writing instance, within the bus's bound on the other.
    return write.writer !== self && startedAt <= write.at + BUS_BOUND_MS;
  };
  const reader = async (self: Instance) => {
    while (!stop) {
      // An L1 hit resolves without I/O: let the writers and Redis' replies in between reads.
      await new Promise((resolve) => setTimeout(resolve, 1));
      const id = pick();
      const key = id.toHexString();
      const startedAt = Date.now();
      const before = [...(acked.get(key) ?? [])];
      try {
        const statsBefore = self.cache.stats();
        const user = await self.users.findById(id);
        const statsAfter = self.cache.stats();
        const tier = statsAfter.l1.hits > statsBefore.l1.hits ? 'l1' : statsAfter.l2.hits > statsBefore.l2.hits ? 'l2' : 'db';
        const version = Number(user?.profile.display_name.slice(1));
        outcome.reads += 1;
        const newer = before.filter((write) => write.version > version);
        if (newer.length === 0) continue;
        if (newer.every((write) => allowedStale(self, write, startedAt))) outcome.staleWithinBound += 1;
        else
          outcome.stale.push(
            `${tier} ${self.name} read v${version} of ${key} at ${startedAt}; acknowledged before: ${newer.map((write) => `v${write.version} by ${write.writer.name} at ${write.at}`).join(', ')}`,
          );
      } catch (error) {
        outcome.errors.push(`read on ${self.name}: ${String(error)}`);
      }
    }
  };
  // Rate limiting through the same Redis: 1 token per second, burst 20.
  const rate = new RedisRateLimitStore(rateRedis as Redis, { prefix: `${prefix}rate:`, timeoutMS: 100 });
  const rateStarted = Date.now();
  const limiter = async () => {
    while (!stop) {
      try {
        if ((await rate.take('acme:writes', 1, 1, 20)).allowed) outcome.rate.allowed += 1;
      } catch {
        outcome.rate.errors += 1;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
  };

  const loops = [
    ...instances.flatMap((self, index) => [
      writer(
        self,
        ids.filter((_, position) => position % 2 === index),
      ),
      reader(self),
      reader(self),
    ]),
    limiter(),
  ];
  try {
    // Load until both tiers serve, then disrupt.
    await waitFor(() => instances.every((self) => self.l2HitsAt.length > 0 && self.cache.stats().l1.hits > 0), {
      what: 'both instances to serve from L1 and L2',
      timeoutMS: 20_000,
    });
    killAt = Date.now();
    const restore = await disrupt();
    // Each instance has recovered (a kill) and serves from L2 again.
    await waitFor(
      () =>
        instances.every((self) => {
          const recovered = killsPrimary ? self.recoveries.find((at) => at >= killAt) : killAt;
          return recovered !== undefined && self.l2HitsAt.some((at) => at > recovered);
        }),
      { what: 'both instances to recover and serve from L2 again', timeoutMS: 30_000, intervalMS: 20 },
    );
    outcome.killToL2MS = Math.max(
      ...instances.map((self) => {
        const recovered = killsPrimary ? (self.recoveries.find((at) => at >= killAt) as number) : killAt;
        return (self.l2HitsAt.find((at) => at > recovered) as number) - killAt;
      }),
    );
    // The killed node rejoins as a replica (a second topology change under load).
    await restore?.();
    // And keeps going a while past the bound, so late stale reads would be seen.
    const readsBefore = outcome.reads;
    const afterBound = Math.max(...instances.flatMap((self) => self.recoveries), killAt) + BUS_BOUND_MS;
    await waitFor(() => Date.now() > afterBound && outcome.reads > readsBefore + 300, {
      what: '300 more reads past the bound',
      timeoutMS: 30_000,
    });
  } finally {
    stop = true;
    await Promise.all(loops);
  }
  const elapsedS = (Date.now() - rateStarted) / 1000;
  outcome.timeline = `kill at ${killAt}; ${instances.map((self) => `${self.name}: recovered ${self.recoveries.join(', ')}; windows ${self.windows.map((window) => `${window.from}-${window.to}`).join(', ')}`).join('; ')}`;
  // The documented worst case: a bucket may lose its latest takes in a failover (one burst more),
  // and while Redis does not answer in time (a dead primary, a slot in migration) the limiter's
  // instance takes from a bucket of its own (one burst more).
  outcome.rate.bound = Math.ceil(20 + elapsedS * 1) + 20 + (killsPrimary ? 20 : 0);
  return outcome;
}

function report(label: string, outcome: Outcome): void {
  console.log(
    `${label}: ${outcome.reads} reads, ${outcome.writes} writes, ${outcome.errors.length} errors, ` +
      `${outcome.stale.length} stale past the bound, ${outcome.staleWithinBound} older within it; ` +
      `rate limiter ${outcome.rate.allowed} allowed (bound ${outcome.rate.bound}); kill to L2 hits again ${outcome.killToL2MS} ms`,
  );
  for (const line of [...outcome.errors, ...outcome.stale].slice(0, 20)) console.log(`  ${line}`);
  if (outcome.stale.length > 0) console.log(`  ${outcome.timeline}`);
  expect(outcome.errors).toEqual([]);
  expect(outcome.stale).toEqual([]);
  expect(outcome.rate.errors).toBe(0);
  expect(outcome.rate.allowed).toBeLessThanOrEqual(outcome.rate.bound);
  expect(outcome.reads).toBeGreaterThan(300);
}

describe('failover under load', () => {
  it('Sentinel: the primary is killed (SIGKILL); no errors, no stale reads past the bound, the cache resumes', async () => {
    const outcome = await underLoad(
      sentinelClient,
      `${testDatabaseName()}:sentinel:`,
      async () => {
        const { port } = await sentinel.killPrimary();
        return () => sentinel.restartNode(port);
      },
      true,
    );
    report('sentinel failover', outcome);
  }, 120_000);

  it('Cluster: a primary is killed (SIGKILL) and its replica takes over; no errors, no stale reads past the bound, the cache resumes', async () => {
    const outcome = await underLoad(
      clusterClient,
      `${testDatabaseName()}:cluster:`,
      async () => {
        // The primary owning one of the tenant's groups (so entries and invalidations under load).
        const slot = Number(await (clients.at(-1) as Cluster).cluster('KEYSLOT', '{acme.0}'));
        const port = await cluster.primaryOf(slot);
        await cluster.killPrimary(port);
        return () => cluster.restartNode(port);
      },
      true,
    );
    report('cluster failover', outcome);
  }, 120_000);

  it('Cluster: slots move between primaries (MOVED and ASK) under load without errors or stale reads', async () => {
    const outcome = await underLoad(
      clusterClient,
      `${testDatabaseName()}:reshard:`,
      async () => {
        // reshard moves a primary's lowest slots first: move enough of them to carry the tenant's
        // group that sits lowest in its primary's range (redis-cli --cluster create gave the
        // primaries 0-5460, 5461-10922 and 10923-16383; the failover test kept them).
        const probe = clients.at(-1) as Cluster;
        const slots = await Promise.all(
          Array.from({ length: 8 }, async (_, group) => Number(await probe.cluster('KEYSLOT', `{acme.${group}}`))),
        );
        const offsetOf = (slot: number) => slot - (slot >= 10_923 ? 10_923 : slot >= 5461 ? 5461 : 0);
        const lowest = slots.reduce((best, slot) => (offsetOf(slot) < offsetOf(best) ? slot : best));
        const from = await cluster.primaryOf(lowest);
        const to = (await cluster.primaries()).find((port) => port !== from) as number;
        await cluster.reshard({ from, to, slots: offsetOf(lowest) + 1 });
        expect(await cluster.primaryOf(lowest)).toBe(to);
        return undefined;
      },
      false,
    );
    report('cluster reshard', outcome);
  }, 120_000);
});
