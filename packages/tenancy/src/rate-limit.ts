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

/** The subset of an ioredis client the Redis store needs. */
export interface RedisEvaluator {
  eval(script: string, numberOfKeys: number, ...args: Array<string | number>): Promise<unknown>;
}

/**
 * Refill and take in one atomic step on the Redis server, using Redis' clock so instances with
 * skewed clocks agree. Returns { allowed (0/1), remaining tokens as a string }.
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

/** Token buckets in Redis, shared by every instance of a service. */
export class RedisRateLimitStore implements RateLimitStore {
  readonly #redis: RedisEvaluator;
  readonly #prefix: string;

  constructor(redis: RedisEvaluator, prefix = 'caas:rate:') {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  async take(key: string, tokens: number, ratePerSecond: number, burst: number): Promise<TakeResult> {
    const [allowed, remaining] = (await this.#redis.eval(TAKE_SCRIPT, 1, `${this.#prefix}${key}`, tokens, ratePerSecond, burst)) as [
      number,
      string,
    ];
    return { allowed: allowed === 1, remaining: Number(remaining) };
  }
}
