import { type CachePlugin, createCache } from '@caas-db/cache';
import { createDataClient, createDataLayer, type DataLayer, type HealthReport } from '@caas-db/core';
import { createSearch, type SearchPlugin } from '@caas-db/search';
import { createTenancy, RedisRateLimitStore, type TenancyOptions } from '@caas-db/tenancy';
import { Redis } from 'ioredis';
import type { ServiceConfig } from './config.js';

/** The data layer and what the routes need beside it, opened once per process and shared by every request. */
export interface DataStore {
  readonly data: DataLayer;
  readonly search: SearchPlugin;
  readonly cache: CachePlugin;
  /** The library's health check: a `ping` plus the pool and topology summary. */
  health(): Promise<HealthReport>;
  /** Waits for the operations in flight (up to `drainTimeoutMS`), then closes the cache bus, Redis and MongoDB. */
  close(drainTimeoutMS: number): Promise<void>;
}

/** What {@link openDataStore} needs: the MongoDB to use (the embedded one in development). */
export type DataStoreConfig = Pick<ServiceConfig, 'database' | 'redisUrl' | 'cursorSecret' | 'quotas'> & { mongodbUri: string };

function quotasOf(config: DataStoreConfig['quotas'], redis: Redis | undefined): TenancyOptions['quotas'] {
  const { messagesPerTenant, writesPerSecond } = config;
  if (messagesPerTenant === undefined && writesPerSecond === undefined) return undefined;
  return {
    limits: {
      ...(messagesPerTenant !== undefined && { documents: { messages: messagesPerTenant } }),
      ...(writesPerSecond !== undefined && { writes: { perSecond: writesPerSecond, burst: writesPerSecond * 2 } }),
    },
    // With Redis, a tenant's write rate is one bucket across every instance of the service.
    ...(redis && { rateLimitStore: new RedisRateLimitStore(redis) }),
  };
}

/**
 * Connects to MongoDB (and Redis when configured), builds the data layer with tenancy, the
 * two-tier cache and search, and syncs its indexes. Every command of every request goes through
 * this one data layer: its pool, cache and write batching are shared by concurrent requests.
 */
export async function openDataStore(config: DataStoreConfig): Promise<DataStore> {
  const redis = config.redisUrl ? new Redis(config.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 }) : undefined;
  const client = createDataClient({ uri: config.mongodbUri, database: config.database });
  const quotas = quotasOf(config.quotas, redis);
  // The scoper enforces isolation before anything is sent. The wire auditor is defence in depth
  // that costs client CPU on every command (docs/architecture.md): run it in staging, not on this hot path.
  const tenancy = createTenancy({ audit: 'off', ...(quotas && { quotas }) });
  const cache = createCache({
    memory: { maxEntries: 50_000 },
    ...(redis && { redis }),
    methods: {
      // The caller's user is looked up by the token's subject on every request.
      'users.findByExternalId': { ttlMS: 60_000 },
      'users.findById': { ttlMS: 60_000 },
      'conversations.findById': { ttlMS: 30_000 },
    },
  });
  const search = createSearch({ engine: 'token' });
  const data = createDataLayer({
    client,
    cursorSecret: config.cursorSecret,
    plugins: [tenancy, cache, search],
    // Concurrent sends of a tenant become one insertMany, concurrent reads by id one $in query.
    batching: { messages: true, findById: true },
  });
  try {
    await client.connect();
    await data.syncIndexes();
  } catch (error) {
    await cache.close();
    await client.close({ drainTimeoutMS: 0 });
    redis?.disconnect();
    throw error;
  }
  return {
    data,
    search,
    cache,
    health: () => client.health(),
    async close(drainTimeoutMS) {
      await client.close({ drainTimeoutMS });
      await cache.close();
      await redis?.quit().catch(() => redis.disconnect());
    },
  };
}
