import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

/** Why a Redis call was given up. */
export class RedisTierTimeout extends Error {
  constructor(operation: string, timeoutMS: number) {
    super(`Redis ${operation} took longer than ${timeoutMS} ms`);
    this.name = 'RedisTierTimeout';
  }
}

/**
 * Redis' clock in milliseconds with microseconds as a fraction (`'1764150000123.456'`): a write's
 * invalidation and a read that follows it within the same millisecond still compare in order, so a
 * fill right after a write is not refused for it. Formatted, since Lua's `tostring` keeps only 14
 * significant digits.
 */
const NOW = `string.format('%.3f', tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000)`;

/** Reads an entry and Redis' clock, so a later fill can tell what was invalidated since. KEYS: entry. */
const READ_SCRIPT = `
local time = redis.call('TIME')
return { redis.call('GET', KEYS[1]) or false, ${NOW} }
`;

/**
 * Writes an entry only if none of its tags was invalidated since the load began (each tag's
 * invalidation time is kept): this closes the race of a slow load putting back a value that a
 * concurrent write has already replaced.
 * KEYS: entry, invalidation-time keys (n), tag set keys (n). ARGV: value, ttl, load start.
 */
const FILL_SCRIPT = `
local n = (#KEYS - 1) / 2
local since = tonumber(ARGV[3])
for i = 1, n do
  local invalidated = tonumber(redis.call('GET', KEYS[1 + i]) or '0')
  if invalidated >= since then return 0 end
end
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
for i = 1, n do
  local set = KEYS[1 + n + i]
  redis.call('SADD', set, KEYS[1])
  if redis.call('PTTL', set) < ttl then redis.call('PEXPIRE', set, ttl) end
end
return 1
`;

/** Records each tag's invalidation time and deletes every entry filed under it. KEYS: (time key, tag set key) pairs. */
const INVALIDATE_SCRIPT = `
local time = redis.call('TIME')
local now = ${NOW}
local dropped = 0
for i = 1, #KEYS, 2 do
  redis.call('SET', KEYS[i], now, 'PX', 86400000)
  local members = redis.call('SMEMBERS', KEYS[i + 1])
  for _, member in ipairs(members) do dropped = dropped + redis.call('DEL', member) end
  redis.call('DEL', KEYS[i + 1])
end
return dropped
`;

/**
 * Deletes a lock only if it still holds the caller's token. Reading and deleting in one script
 * matters: a lock that expired while its holder was loading may since have been taken by a peer,
 * and a plain DEL (or a GET then a DEL) would free the peer's lock. KEYS: lock. ARGV: token.
 */
const UNLOCK_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** The result of a Redis read: the encoded entry if any, and Redis' clock at the read. */
export interface RedisRead {
  entry: Buffer | null;
  /** Milliseconds on Redis' clock (microseconds as a fraction); pass it to {@link RedisTier.fill}. */
  time: string;
}

/**
 * The shared tier (L2) on Redis. Every call is bounded by `timeoutMS`; the caller treats a failure
 * as a miss and goes to MongoDB. Keys: `<prefix>e:<key>` entries, `<prefix>t:<tag>` tag sets,
 * `<prefix>v:<tag>` when each tag was last invalidated, `<prefix>l:<key>` load locks (holding
 * their holder's token).
 */
export class RedisTier {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #timeoutMS: number;

  constructor(redis: Redis, prefix: string, timeoutMS: number) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#timeoutMS = timeoutMS;
    redis.defineCommand('caasCacheRead', { numberOfKeys: 1, lua: READ_SCRIPT });
    redis.defineCommand('caasCacheFill', { lua: FILL_SCRIPT });
    redis.defineCommand('caasCacheInvalidate', { lua: INVALIDATE_SCRIPT });
    redis.defineCommand('caasCacheUnlock', { numberOfKeys: 1, lua: UNLOCK_SCRIPT });
  }

  /** True while the connection is up; calls are skipped otherwise. */
  get ready(): boolean {
    return this.#redis.status === 'ready';
  }

  #bounded<T>(operation: string, promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RedisTierTimeout(operation, this.#timeoutMS)), this.#timeoutMS);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  /** Reads an entry and Redis' clock in one round trip. */
  async read(key: string): Promise<RedisRead> {
    const command = (this.#redis as unknown as { caasCacheReadBuffer(key: string): Promise<[Buffer | null, Buffer]> }).caasCacheReadBuffer;
    const [entry, time] = await this.#bounded('read', command.call(this.#redis, `${this.#prefix}e:${key}`));
    return { entry: entry ?? null, time: time.toString() };
  }

  /** Writes an entry unless one of `tags` was invalidated at or after `since` (Redis' clock). @returns true when written. */
  async fill(key: string, value: Buffer, ttlMS: number, tags: readonly string[], since: string): Promise<boolean> {
    const keys = [
      `${this.#prefix}e:${key}`,
      ...tags.map((tag) => `${this.#prefix}v:${tag}`),
      ...tags.map((tag) => `${this.#prefix}t:${tag}`),
    ];
    const command = (this.#redis as unknown as { caasCacheFill(count: number, ...args: Array<string | Buffer | number>): Promise<number> })
      .caasCacheFill;
    const written = await this.#bounded(
      'fill',
      command.call(this.#redis, keys.length, ...keys, value, Math.max(1, Math.round(ttlMS)), since),
    );
    return written === 1;
  }

  /** Invalidates `tags`: their epochs move on and every entry filed under them is deleted. */
  async invalidate(tags: readonly string[]): Promise<number> {
    if (tags.length === 0) return 0;
    const keys = tags.flatMap((tag) => [`${this.#prefix}v:${tag}`, `${this.#prefix}t:${tag}`]);
    const command = (this.#redis as unknown as { caasCacheInvalidate(count: number, ...keys: string[]): Promise<number> })
      .caasCacheInvalidate;
    return this.#bounded('invalidate', command.call(this.#redis, keys.length, ...keys));
  }

  /** Deletes every entry of this cache (after invalidations were lost). */
  async flush(): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.#redis.scan(cursor, 'MATCH', `${this.#prefix}*`, 'COUNT', 500);
      if (keys.length > 0) await this.#redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  }

  /**
   * Takes a short lock so one instance loads a key while others wait for its result.
   * @returns the lock's token (random, one per acquisition), to pass to {@link RedisTier.unlock};
   * undefined when another holder has the lock.
   */
  async lock(key: string, ttlMS: number): Promise<string | undefined> {
    const token = randomBytes(16).toString('base64url');
    const taken = await this.#bounded('lock', this.#redis.set(`${this.#prefix}l:${key}`, token, 'PX', ttlMS, 'NX'));
    return taken === 'OK' ? token : undefined;
  }

  /**
   * Releases a lock taken with {@link RedisTier.lock}, only if it still holds `token`: once the lock
   * expired and a peer took it, a late release leaves the peer's lock alone.
   * @returns true when the lock was released.
   */
  async unlock(key: string, token: string): Promise<boolean> {
    const command = (this.#redis as unknown as { caasCacheUnlock(key: string, token: string): Promise<number> }).caasCacheUnlock;
    return (await this.#bounded('unlock', command.call(this.#redis, `${this.#prefix}l:${key}`, token))) === 1;
  }
}
