import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { isCluster, type RedisClient } from './redis-client.js';

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

/**
 * Reads an entry and Redis' clock, so a later fill can tell what was invalidated since. The clock
 * is that of the node holding the entry's group, the one that also keeps the group's invalidation
 * times: both sides of the comparison come from one clock, also on a cluster. KEYS: entry.
 */
const READ_SCRIPT = `
local time = redis.call('TIME')
return { redis.call('GET', KEYS[1]) or false, ${NOW} }
`;

/**
 * Writes an entry only if none of its tags was invalidated since the load began (each tag's
 * invalidation time is kept): this closes the race of a slow load putting back a value that a
 * concurrent write has already replaced.
 * KEYS: entry, invalidation-time keys (n), tag set keys (n), all of the entry's group (one hash
 * slot). ARGV: value, ttl, load start.
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

/**
 * Records each tag's invalidation time and deletes every entry filed under it. KEYS: (time key,
 * tag set key) pairs, all of one group; the entries filed under them are of that group too.
 */
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

/** Options of a {@link RedisTier}. */
export interface RedisTierOptions {
  /** Prefix of every key. */
  prefix: string;
  /** Calls slower than this fail with {@link RedisTierTimeout}. */
  timeoutMS: number;
  /**
   * The bound of an invalidation, which runs on the write path and whose failure opens a window
   * of possibly stale entries until it is replayed: longer than a read's. @default 500
   */
  invalidateTimeoutMS?: number;
  /**
   * Groups (hash slots) each tenant's entries are spread over: a read touches one, an
   * invalidation every group of the tenants its tags name. @default 8 on a Cluster, else 1
   */
  groupsPerTenant?: number;
}

/** The tenant of a tag (`doc:<tenant>:...`), `'*'` for any tenant or a tag of no known shape. */
export function tenantOfTag(tag: string): string {
  const tenant = tag.split(':')[1];
  return tenant === undefined || tenant === '' ? '*' : tenant;
}

/** FNV-1a: a cheap, stable spread of keys over a tenant's groups. */
function bucketOf(key: string, buckets: number): number {
  if (buckets === 1) return 0;
  let hash = 0x811c9dc5;
  for (let index = 0; index < key.length; index += 1) {
    hash ^= key.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % buckets;
}

type Command<Args extends unknown[], Result> = (...args: Args) => Promise<Result>;

/**
 * The shared tier (L2) on Redis (standalone, Sentinel or Cluster). Every call is bounded by
 * `timeoutMS`; the caller treats a failure as a miss and goes to MongoDB.
 *
 * Keys live in groups, one hash slot each: `<prefix>{<tenant>.<n>}` where `n` is a hash of the
 * entry's key modulo `groupsPerTenant`. A group holds its entries (`e:<key>`), the sets of entries
 * filed under each tag (`t:<tag>`), when each tag was last invalidated there (`v:<tag>`) and load
 * locks (`l:<key>`, holding their holder's token), so every script touches one slot. A tenant's
 * entries, and so its read traffic, spread over its groups; an invalidation runs once in every
 * group of each tenant its tags name that is in the registry `<prefix>{registry}tenants` (a
 * tenant joins it before its first read, so a tenant not in it has no entries), and for a tag of
 * any tenant (`'*'`) in every group of every registered tenant.
 */
export class RedisTier {
  readonly #redis: RedisClient;
  readonly #prefix: string;
  readonly #timeoutMS: number;
  readonly #invalidateTimeoutMS: number;
  readonly #groups: number;
  readonly #registry: string;
  /** Tenants this process has put in the registry (re-added after a failover, which may lose them). */
  readonly #registered = new Set<string>();

  constructor(redis: RedisClient, options: RedisTierOptions) {
    this.#redis = redis;
    this.#prefix = options.prefix;
    this.#timeoutMS = options.timeoutMS;
    this.#invalidateTimeoutMS = Math.max(options.timeoutMS, options.invalidateTimeoutMS ?? 500);
    this.#groups = options.groupsPerTenant ?? (isCluster(redis) ? 8 : 1);
    this.#registry = `${this.#prefix}{registry}tenants`;
    redis.defineCommand('caasCacheRead', { numberOfKeys: 1, lua: READ_SCRIPT });
    redis.defineCommand('caasCacheFill', { lua: FILL_SCRIPT });
    redis.defineCommand('caasCacheInvalidate', { lua: INVALIDATE_SCRIPT });
    redis.defineCommand('caasCacheUnlock', { numberOfKeys: 1, lua: UNLOCK_SCRIPT });
    if (isCluster(redis)) {
      // A cluster client connects to each node on its first command to it: connect them all up
      // front, so the first reads of a fresh instance do not spend their time budget connecting.
      const warm = () => {
        // Not while the client itself connects: it owns its nodes' connections until it is ready.
        if (redis.status !== 'ready') return;
        for (const node of redis.nodes('master')) if (node.status === 'wait') node.connect().catch(() => undefined);
      };
      if (redis.status === 'ready') warm();
      redis.on('ready', warm);
      redis.on('refresh', warm);
    }
  }

  /** True while the connection is up; calls are skipped otherwise. */
  get ready(): boolean {
    return this.#redis.status === 'ready';
  }

  /** How many groups each tenant's entries spread over. */
  get groupsPerTenant(): number {
    return this.#groups;
  }

  #command<Args extends unknown[], Result>(name: string): Command<Args, Result> {
    const command = (this.#redis as unknown as Record<string, Command<Args, Result>>)[name];
    if (!command) throw new Error(`the Redis client lacks ${name}`);
    return command.bind(this.#redis);
  }

  #bounded<T>(operation: string, promise: Promise<T>, timeoutMS = this.#timeoutMS): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RedisTierTimeout(operation, timeoutMS)), timeoutMS);
    });
    // A command given up on may still fail later: that failure is this call's, already reported.
    promise.catch(() => undefined);
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  /** The hash-tagged group of `tenant`'s entry `key`: every key of the entry shares it. */
  group(tenant: string | undefined, key: string): string {
    return this.#groupKey(tenant ?? '_', bucketOf(key, this.#groups));
  }

  #groupKey(tenant: string, bucket: number): string {
    return `${this.#prefix}{${tenant}.${bucket}}`;
  }

  /**
   * Puts `tenant` in the registry that invalidations of any-tenant tags read, once per process:
   * before the tenant's first read, so an invalidation that follows a load sees the tenant.
   */
  async register(tenant: string | undefined): Promise<void> {
    const name = tenant ?? '_';
    if (this.#registered.has(name)) return;
    await this.#bounded('register', this.#redis.sadd(this.#registry, name));
    this.#registered.add(name);
  }

  /** Adds again every tenant this process registered (a failover may have lost the registry's latest writes). */
  async reregister(): Promise<void> {
    if (this.#registered.size > 0) await this.#bounded('register', this.#redis.sadd(this.#registry, ...this.#registered));
  }

  /** Reads an entry and Redis' clock in one round trip. */
  async read(tenant: string | undefined, key: string): Promise<RedisRead> {
    const command = this.#command<[string], [Buffer | null, Buffer]>('caasCacheReadBuffer');
    const [entry, time] = await this.#bounded('read', command(`${this.group(tenant, key)}e:${key}`));
    return { entry: entry ?? null, time: time.toString() };
  }

  /**
   * Writes an entry unless one of `tags` was invalidated at or after `since` (Redis' clock).
   * An entry carrying a tag of another tenant than its own (an unbound read of a tenant's
   * documents) is not written: invalidations of that tag never visit this tenant's groups.
   * @returns true when written.
   */
  async fill(
    tenant: string | undefined,
    key: string,
    value: Buffer,
    ttlMS: number,
    tags: readonly string[],
    since: string,
  ): Promise<boolean> {
    const owner = tenant ?? '_';
    if (tags.some((tag) => tenantOfTag(tag) !== owner && tenantOfTag(tag) !== '*')) return false;
    const group = this.group(tenant, key);
    const keys = [`${group}e:${key}`, ...tags.map((tag) => `${group}v:${tag}`), ...tags.map((tag) => `${group}t:${tag}`)];
    const command = this.#command<Array<string | Buffer | number>, number>('caasCacheFill');
    const written = await this.#bounded('fill', command(keys.length, ...keys, value, Math.max(1, Math.round(ttlMS)), since));
    return written === 1;
  }

  /**
   * Invalidates `tags` in every group that may file entries under them: their invalidation times
   * move on and every entry filed under them is deleted. One script per group, run concurrently
   * (on a cluster, each on the node owning the group's slot).
   * @returns the number of entries deleted.
   */
  async invalidate(tags: readonly string[]): Promise<number> {
    if (tags.length === 0) return 0;
    const byTenant = new Map<string, Set<string>>();
    const anyTenant: string[] = [];
    for (const tag of tags) {
      const tenant = tenantOfTag(tag);
      if (tenant === '*') anyTenant.push(tag);
      else byTenant.set(tenant, (byTenant.get(tenant) ?? new Set()).add(tag));
    }
    const bound = this.#invalidateTimeoutMS;
    // Only tenants in the registry have entries (a tenant joins before its first read): the
    // others' groups are skipped, e.g. '_' (unbound reads) on a service whose reads all have one.
    if (anyTenant.length > 0) {
      const everyone = await this.#bounded('invalidate', this.#redis.smembers(this.#registry), bound);
      for (const tenant of [...byTenant.keys()]) if (!everyone.includes(tenant)) byTenant.delete(tenant);
      for (const tenant of everyone) {
        const set = byTenant.get(tenant) ?? new Set();
        for (const tag of anyTenant) set.add(tag);
        byTenant.set(tenant, set);
      }
    } else {
      const named = [...byTenant.keys()];
      const present = await this.#bounded('invalidate', this.#redis.smismember(this.#registry, ...named), bound);
      named.forEach((tenant, index) => {
        if (present[index] !== 1) byTenant.delete(tenant);
      });
    }
    const command = this.#command<string[], number>('caasCacheInvalidate');
    const runs: Array<Promise<number>> = [];
    for (const [tenant, tenantTags] of byTenant) {
      for (let bucket = 0; bucket < this.#groups; bucket += 1) {
        const group = this.#groupKey(tenant, bucket);
        const keys = [...tenantTags].flatMap((tag) => [`${group}v:${tag}`, `${group}t:${tag}`]);
        runs.push(command(String(keys.length), ...keys));
      }
    }
    const dropped = await this.#bounded('invalidate', Promise.all(runs), bound);
    return dropped.reduce((sum, count) => sum + count, 0);
  }

  /** Deletes every entry of this cache (after invalidations were lost), on every primary of a cluster. */
  async flush(): Promise<void> {
    const nodes: Redis[] = isCluster(this.#redis) ? this.#redis.nodes('master') : [this.#redis];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, keys] = await node.scan(cursor, 'MATCH', `${this.#prefix}*`, 'COUNT', 500);
        // One key per command: on a cluster, keys of several slots cannot share one DEL.
        if (keys.length > 0) await keys.reduce((pipeline, key) => pipeline.unlink(key), node.pipeline()).exec();
        cursor = next;
      } while (cursor !== '0');
    }
  }

  /**
   * Takes a short lock so one instance loads a key while others wait for its result.
   * @returns the lock's token (random, one per acquisition), to pass to {@link RedisTier.unlock};
   * undefined when another holder has the lock.
   */
  async lock(tenant: string | undefined, key: string, ttlMS: number): Promise<string | undefined> {
    const token = randomBytes(16).toString('base64url');
    const taken = await this.#bounded('lock', this.#redis.set(`${this.group(tenant, key)}l:${key}`, token, 'PX', ttlMS, 'NX'));
    return taken === 'OK' ? token : undefined;
  }

  /**
   * Releases a lock taken with {@link RedisTier.lock}, only if it still holds `token`: once the lock
   * expired and a peer took it, a late release leaves the peer's lock alone.
   * @returns true when the lock was released.
   */
  async unlock(tenant: string | undefined, key: string, token: string): Promise<boolean> {
    const command = this.#command<[string, string], number>('caasCacheUnlock');
    return (await this.#bounded('unlock', command(`${this.group(tenant, key)}l:${key}`, token))) === 1;
  }
}
