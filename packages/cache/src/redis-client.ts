import type { Cluster, Redis } from 'ioredis';

/**
 * An ioredis client the cache and the rate limiter accept: a `Redis` (standalone, or Sentinel with
 * `new Redis({ sentinels, name })`) or a `Cluster`.
 */
export type RedisClient = Redis | Cluster;

/** True for an ioredis `Cluster`. */
export function isCluster(redis: RedisClient): redis is Cluster {
  return (redis as { isCluster?: boolean }).isCluster === true;
}

/** True when `value` looks like an ioredis client (`Redis` or `Cluster`): used by option schemas. */
export function isRedisClient(value: unknown): value is RedisClient {
  return (
    typeof value === 'object' &&
    value !== null &&
    'defineCommand' in value &&
    typeof (value as { duplicate?: unknown }).duplicate === 'function' &&
    typeof (value as { status?: unknown }).status === 'string'
  );
}
