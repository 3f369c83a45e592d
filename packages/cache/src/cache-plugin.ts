import {
  afterCommit,
  type DataLayerPlugin,
  type Listener,
  type Middleware,
  parseConfig,
  type TenantRepositories,
  targetOf,
} from '@caas-db/core';
import { z } from 'zod';
import { isCacheableMethod, uncacheableMethodMessage } from './cacheable-methods.js';
import { isRedisClient, type RedisClient } from './redis-client.js';
import { type CacheEvents, type CacheStats, TwoTierCache, type TwoTierCacheOptions } from './two-tier-cache.js';
import { type WarmOptions, type WarmReport, warmTenant } from './warming.js';
import { defaultListRules, type ListRules, tagsOfWrite } from './write-invalidator.js';

/** Options of {@link createCache}. */
export interface CacheOptions extends TwoTierCacheOptions {
  /** The cached lists of each collection; caas-db's own by default. */
  lists?: ListRules;
}

const policySchema = z.strictObject({
  ttlMS: z.number().int().min(1).max(86_400_000),
  negativeTtlMS: z.number().int().min(0).max(86_400_000).optional(),
  staleWhileRevalidateMS: z.number().int().min(0).max(86_400_000).optional(),
  staleIfErrorMS: z.number().int().min(0).max(86_400_000).optional(),
});

const cacheOptionsSchema = z.strictObject({
  methods: z.record(z.string().regex(/^[a-z_]+\.[A-Za-z]+$/, 'must be <collection>.<method>'), policySchema).superRefine((methods, ctx) => {
    for (const method of Object.keys(methods)) {
      if (!isCacheableMethod(method)) ctx.addIssue({ code: 'custom', path: [method], message: `${method} ${uncacheableMethodMessage}` });
    }
  }),
  memory: z
    .union([
      z.literal(false),
      z.strictObject({ maxEntries: z.number().int().min(1).optional(), maxBytes: z.number().int().min(1024).optional() }),
    ])
    .optional(),
  redis: z.custom<RedisClient>(isRedisClient, 'must be an ioredis client (Redis or Cluster)').optional(),
  redisGroupsPerTenant: z.number().int().min(1).max(64).optional(),
  failoverReplayMS: z.number().int().min(0).max(3_600_000).optional(),
  // Braces would start a hash tag of their own and put keys in slots the scripts do not expect.
  prefix: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[^{}\s]+$/, 'must not contain braces or spaces')
    .optional(),
  redisTimeoutMS: z.number().int().min(1).max(10_000).optional(),
  redisInvalidateTimeoutMS: z.number().int().min(1).max(60_000).optional(),
  ttlJitter: z.number().min(0).max(1).optional(),
  distributedLock: z
    .union([z.boolean(), z.strictObject({ ttlMS: z.number().int().min(1).optional(), waitMS: z.number().int().min(0).optional() })])
    .optional(),
  lists: z.custom<ListRules>((value) => typeof value === 'object' && value !== null && 'listFields' in value).optional(),
});

/** The cache plugin: pass it to `createDataLayer({ plugins: [cache] })`. */
export interface CachePlugin extends DataLayerPlugin {
  /** The two tiers, for direct use (`invalidate`). */
  readonly cache: TwoTierCache;
  /** Counters: hits and misses per tier, hit rate, stale serves, loads, invalidations. */
  stats(): CacheStats;
  /** Subscribes to cache events. */
  on<Name extends keyof CacheEvents>(event: Name, listener: Listener<CacheEvents[Name]>): () => void;
  /** Loads a tenant's hot data into the cache, bounded in time and size. */
  warm(repositories: TenantRepositories, options?: WarmOptions): Promise<WarmReport>;
  /** Stops the invalidation bus (the Redis client is the caller's to close). */
  close(): Promise<void>;
}

/**
 * Cache-aside for caas-db's repositories in two tiers, in process and in Redis: the configured
 * methods read through the cache, and every write that passes the data layer invalidates exactly
 * the entries it makes stale (after commit, inside a transaction), on every instance.
 *
 * @example
 * ```ts
 * import { Redis } from 'ioredis';
 * import { createCache } from '@caas-db/cache';
 *
 * const cache = createCache({
 *   redis: new Redis(process.env.REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 1 }),
 *   methods: {
 *     'users.findById': { ttlMS: 60_000, staleWhileRevalidateMS: 30_000 },
 *     'messages.findByConversation': { ttlMS: 10_000 },
 *   },
 * });
 * const data = createDataLayer({ client, plugins: [tenancy, cache] });
 * ```
 */
export function createCache(options: CacheOptions): CachePlugin {
  parseConfig(cacheOptionsSchema, options);
  const cache = new TwoTierCache(options);
  const rules = options.lists ?? defaultListRules;
  // Invalidation runs after the write succeeded (and, in a transaction, after the commit): a write
  // refused or failed by any layer invalidates nothing.
  const invalidator: Middleware = {
    name: 'cache-invalidation',
    phase: 'effects',
    async handle(ctx, next) {
      const invalidate = () => {
        if (ctx.aspects.access !== 'write' || ctx.aspects.admin) return undefined;
        const tags = tagsOfWrite(ctx.command, targetOf(ctx), rules);
        return tags.length > 0 ? afterCommit(() => cache.invalidate(tags)) : undefined;
      };
      let result: unknown;
      try {
        result = await next();
      } catch (error) {
        // A write that reached the server and failed may still have applied in part (an unordered
        // bulk write with one duplicate, a response lost in flight): invalidating too much is safe,
        // too little serves stale reads. A write refused before it was sent invalidates nothing.
        if (ctx.sent) await invalidate();
        throw error;
      }
      await invalidate();
      return result;
    },
  };

  return {
    name: '@caas-db/cache',
    readCache: cache,
    middlewares: [invalidator],
    cache,
    stats: () => cache.stats(),
    on: (event, listener) => cache.on(event, listener),
    warm: (repositories, warmOptions) => warmTenant(repositories, warmOptions),
    close: () => cache.close(),
  };
}
