import { parseConfig } from '@caas-db/core';
import { z } from 'zod';

/** The outcome of taking tokens from a bucket. */
export interface TakeResult {
  allowed: boolean;
  /** Tokens left after the take (before it, when refused). */
  remaining: number;
}

/** Where token buckets live: in this process, or in Redis so every instance shares them. */
export interface RateLimitStore {
  /**
   * Takes `tokens` from the bucket `key` (capacity `burst`, refilled at `ratePerSecond`),
   * atomically; refuses without taking when too few are left.
   */
  take(key: string, tokens: number, ratePerSecond: number, burst: number): Promise<TakeResult>;
}

/** Token buckets in this process: exact for one instance, per instance when there are several. */
export class InProcessRateLimitStore implements RateLimitStore {
  readonly #buckets = new Map<string, { tokens: number; updatedAt: number }>();
  readonly #now: () => number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  async take(key: string, tokens: number, ratePerSecond: number, burst: number): Promise<TakeResult> {
    const now = this.#now();
    const bucket = this.#buckets.get(key) ?? { tokens: burst, updatedAt: now };
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * ratePerSecond);
    bucket.updatedAt = now;
    this.#buckets.set(key, bucket);
    if (bucket.tokens < tokens) return { allowed: false, remaining: bucket.tokens };
    bucket.tokens -= tokens;
    return { allowed: true, remaining: bucket.tokens };
  }
}

/**
 * The subset of an ioredis client the Redis store needs: a `Redis` (standalone, or Sentinel with
 * `new Redis({ sentinels, name })`) and a `Cluster` both have it.
 */
export interface RedisEvaluator {
  eval(script: string, numberOfKeys: number, ...args: Array<string | number>): Promise<unknown>;
}

/**
 * Refill and take in one atomic step on the Redis server, using Redis' clock so instances with
 * skewed clocks agree. One key, so one hash slot: it runs as is on a cluster. Returns
 * { allowed (0/1), remaining tokens as a string }.
 */
const TAKE_SCRIPT = `
local key = KEYS[1]
local tokens = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', key, 'tokens', 'updated')
local available = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
available = math.min(burst, available + (math.max(0, now - updated) / 1000) * rate)
local allowed = 0
if available >= tokens then
  available = available - tokens
  allowed = 1
end
redis.call('HSET', key, 'tokens', tostring(available), 'updated', tostring(now))
redis.call('PEXPIRE', key, math.ceil((burst / rate) * 1000) + 1000)
return { allowed, tostring(available) }
`;

/** Options of a {@link RedisRateLimitStore}. */
export interface RedisRateLimitOptions {
  /** Prefix of the buckets' keys. @default 'caas:rate:' */
  prefix?: string;
  /** A take that Redis has not answered within this long counts as Redis being unavailable. @default 200 */
  timeoutMS?: number;
  /**
   * What a take does while Redis is unavailable (down, failing over, too slow): `'in-process'`
   * takes from this instance's own bucket (the limit then holds per instance, so N instances
   * may admit up to N times the rate until Redis is back); `'throw'` rejects with Redis' error,
   * which refuses the write. @default 'in-process'
   */
  whenUnavailable?: 'in-process' | 'throw';
}

const optionsSchema = z.strictObject({
  // A brace would start a hash tag and put every tenant's bucket in one cluster slot.
  prefix: z
    .string()
    .min(1)
    .max(64)
    .regex(/^[^{}\s]+$/, 'must not contain braces or spaces')
    .optional(),
  timeoutMS: z.number().int().min(1).max(60_000).optional(),
  whenUnavailable: z.enum(['in-process', 'throw']).optional(),
});

/**
 * Token buckets in Redis, shared by every instance of a service; standalone, Sentinel or Cluster.
 *
 * Across a failover: Redis replicates asynchronously, so a promoted replica may lack the latest
 * takes; a bucket then has up to `burst` more tokens than it should, once per failover (never
 * fewer: a lost take only ever gives tokens back). While no primary answers, takes follow
 * `whenUnavailable`. See docs/caching.md (Redis Cluster and Sentinel).
 */
export class RedisRateLimitStore implements RateLimitStore {
  readonly #redis: RedisEvaluator;
  readonly #prefix: string;
  readonly #timeoutMS: number;
  readonly #fallback: InProcessRateLimitStore | undefined;

  /** @param options the options, or (as before) just the prefix */
  constructor(redis: RedisEvaluator, options: string | RedisRateLimitOptions = {}) {
    const settings = typeof options === 'string' ? { prefix: options } : options;
    parseConfig(optionsSchema, settings);
    this.#redis = redis;
    this.#prefix = settings.prefix ?? 'caas:rate:';
    this.#timeoutMS = settings.timeoutMS ?? 200;
    this.#fallback = (settings.whenUnavailable ?? 'in-process') === 'in-process' ? new InProcessRateLimitStore() : undefined;
  }

  async take(key: string, tokens: number, ratePerSecond: number, burst: number): Promise<TakeResult> {
    let timer: NodeJS.Timeout | undefined;
    const call = this.#redis.eval(TAKE_SCRIPT, 1, `${this.#prefix}${key}`, tokens, ratePerSecond, burst) as Promise<[number, string]>;
    call.catch(() => undefined);
    try {
      const [allowed, remaining] = await Promise.race([
        call,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`Redis took longer than ${this.#timeoutMS} ms to take from a rate bucket`)),
            this.#timeoutMS,
          );
        }),
      ]);
      return { allowed: allowed === 1, remaining: Number(remaining) };
    } catch (error) {
      if (!this.#fallback) throw error;
      return this.#fallback.take(key, tokens, ratePerSecond, burst);
    } finally {
      clearTimeout(timer);
    }
  }
}
