/**
 * The Redis rate limiter on the project's Redis: standalone here, Cluster and Sentinel in the
 * cache-cluster and cache-sentinel projects (vitest.config.ts).
 */
import { ConfigError, ObjectId } from '@caas-db/core';
import { RedisRateLimitStore } from '@caas-db/tenancy';
import { waitFor } from '@caas-db/testing';
import { skipTest } from '@caas-db/testing/vitest';
import { type Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { isReady, keysMatching, redisTopology, testRedis } from '../../cache/test/support/redis-topology.js';

const clients: Array<Redis | Cluster> = [];
function client(): Redis | Cluster {
  const redis = testRedis();
  clients.push(redis);
  return redis;
}

afterAll(() => {
  for (const redis of clients) redis.disconnect();
});

describe('RedisRateLimitStore', () => {
  it('shares one bucket across instances, taking atomically under concurrent calls', async () => {
    const [one, two] = [client(), client()];
    await waitFor(() => isReady(one) && isReady(two), { what: 'Redis ready' });
    const key = `bucket-${new ObjectId().toHexString()}`;
    const stores = [new RedisRateLimitStore(one, { timeoutMS: 5000 }), new RedisRateLimitStore(two, { timeoutMS: 5000 })];
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, index) => (stores[index % 2] as RedisRateLimitStore).take(key, 1, 0.001, 7)),
    );
    expect(results.filter((result) => result.allowed)).toHaveLength(7);
  });

  it("spreads tenants' buckets over the cluster's primaries (one key, one slot per bucket)", async (context) => {
    if (redisTopology().kind !== 'cluster') skipTest(context, 'spreads over cluster primaries: runs in the cache-cluster project');
    const redis = client();
    await waitFor(() => isReady(redis), { what: 'Redis ready' });
    const prefix = `spread-${new ObjectId().toHexString()}:`;
    const store = new RedisRateLimitStore(redis, { prefix, timeoutMS: 5000 });
    await Promise.all(Array.from({ length: 30 }, (_, index) => store.take(`tenant-${index}:writes`, 1, 10, 10)));
    const perNode = await Promise.all((redis as Cluster).nodes('master').map((node) => node.keys(`${prefix}*`)));
    expect(perNode.filter((keys) => keys.length > 0).length).toBeGreaterThan(1);
    expect((await keysMatching(redis, `${prefix}*`)).length).toBe(30);
  });

  it('takes from a bucket of its own while Redis does not answer, or throws when told to', async () => {
    // A client of a port nobody listens on: every call fails at once.
    const down = new Redis({ port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    down.on('error', () => undefined);
    clients.push(down);
    const local = new RedisRateLimitStore(down);
    const outcomes = await Promise.all(Array.from({ length: 5 }, () => local.take('k', 1, 0.001, 3)));
    expect(outcomes.filter((outcome) => outcome.allowed)).toHaveLength(3);
    const strict = new RedisRateLimitStore(down, { whenUnavailable: 'throw' });
    await expect(strict.take('k', 1, 1, 3)).rejects.toThrow();
  });

  it('refuses invalid options with the field named', () => {
    const redis = client();
    expect(() => new RedisRateLimitStore(redis, { prefix: 'a{b}' })).toThrow(ConfigError);
    expect(() => new RedisRateLimitStore(redis, { prefix: 'a{b}' })).toThrow(/prefix/);
    expect(() => new RedisRateLimitStore(redis, { timeoutMS: 0 })).toThrow(/timeoutMS/);
    expect(() => new RedisRateLimitStore(redis, { whenUnavailable: 'maybe' as never })).toThrow(/whenUnavailable/);
  });
});
