/**
 * The Redis the cache suites run on: standalone (the run's redis-server), or the Cluster or
 * Sentinel group the project's global setup started (vitest.config.ts, projects `cache-cluster`
 * and `cache-sentinel`). Tests create their clients here, so one suite runs on all three.
 */

import { testEnvironment } from '@caas-db/testing/vitest';
import { Cluster, Redis } from 'ioredis';
import { inject } from 'vitest';
import type { RedisTopology } from '../../../testing/src/redis/topology-global-setup.js';
import type { RedisClient } from '../../src/index.js';

/** The topology of this project (standalone when the project started none). */
export function redisTopology(): RedisTopology {
  return inject('caasDbRedisTopology') ?? { kind: 'standalone' };
}

/**
 * A client of the project's Redis, as a service would configure it: no offline queue, no retries
 * of a command, reconnecting every 100 ms. With `url`, a standalone client of that server.
 */
export function testRedis(url?: string): RedisClient {
  const topology = redisTopology();
  let redis: RedisClient;
  if (url || topology.kind === 'standalone') {
    redis = new Redis(url ?? testEnvironment().redis.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 100 });
  } else if (topology.kind === 'sentinel') {
    redis = new Redis({
      sentinels: topology.sentinels,
      name: topology.name,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => 100,
    });
  } else {
    redis = new Cluster(topology.nodes, {
      enableOfflineQueue: false,
      clusterRetryStrategy: () => 100,
      redisOptions: { maxRetriesPerRequest: 0 },
    });
  }
  redis.on('error', () => undefined);
  return redis;
}

/** Every key matching `pattern`, on every primary of a cluster. */
export async function keysMatching(redis: RedisClient, pattern: string): Promise<string[]> {
  const nodes: Redis[] = redis instanceof Cluster ? redis.nodes('master') : [redis];
  const keys = await Promise.all(nodes.map((node) => node.keys(pattern)));
  return keys.flat();
}

/**
 * True once `redis` is ready to serve the cache within its time budget: connected, and on a
 * cluster connected to every primary (a cluster client connects to a node on its first command
 * to it, which would spend a read's 50 ms budget on connecting).
 */
export function isReady(redis: RedisClient | undefined): boolean {
  if (redis?.status !== 'ready') return false;
  if (!(redis instanceof Cluster)) return true;
  const nodes = redis.nodes('master');
  for (const node of nodes) if (node.status === 'wait') node.connect().catch(() => undefined);
  return nodes.length > 0 && nodes.every((node) => node.status === 'ready');
}
