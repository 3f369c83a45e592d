/**
 * @caas-db/cache: two cache tiers (in process and Redis) in front of caas-db's repositories.
 * See docs/caching.md.
 */
export { type CacheEntry, decodeEntry, encodeEntry } from './cache-entry.js';
export { type CacheOptions, type CachePlugin, createCache } from './cache-plugin.js';
export { InvalidationBus, type InvalidationMessage } from './invalidation-bus.js';
export { MemoryTier, type MemoryTierOptions } from './memory-tier.js';
export { isCluster, isRedisClient, type RedisClient } from './redis-client.js';
export { type RedisRead, RedisTier, type RedisTierOptions, RedisTierTimeout, tenantOfTag } from './redis-tier.js';
export { type CacheEvents, type CacheStats, type MethodPolicy, TwoTierCache, type TwoTierCacheOptions } from './two-tier-cache.js';
export { type WarmOptions, type WarmReport, warmTenant } from './warming.js';
export { defaultListRules, type ListRules, tagsOfWrite } from './write-invalidator.js';
