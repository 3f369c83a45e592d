import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { type CachedRead, canonicalKey, type Listener, type ReadCache, TypedEmitter } from '@caas-db/core';
import { type CacheEntry, copyValue, decodeEntry, decodeEntryOnce, encodeEntry } from './cache-entry.js';
import { InvalidationBus } from './invalidation-bus.js';
import { MemoryTier, type MemoryTierOptions } from './memory-tier.js';
import { isCluster, type RedisClient } from './redis-client.js';
import { RedisTier } from './redis-tier.js';

/** How one repository method is cached. */
export interface MethodPolicy {
  /** How long an entry is fresh. */
  ttlMS: number;
  /** How long a not-found result is remembered. @default 2000 */
  negativeTtlMS?: number;
  /** After `ttlMS`, serve the old value this much longer while one refresh runs. @default 0 */
  staleWhileRevalidateMS?: number;
  /** When MongoDB fails, serve an entry up to this long past its freshness. @default 0 */
  staleIfErrorMS?: number;
}

/** Options of the two-tier cache. */
export interface TwoTierCacheOptions {
  /** Which methods to cache (`'users.findById'`, `'messages.findByConversation'`, ...), and how. */
  methods: Record<string, MethodPolicy>;
  /** The in-process tier; `false` to have none. @default {} */
  memory?: MemoryTierOptions | false;
  /**
   * The Redis tier and invalidation bus; none when omitted. A `Redis` (standalone, or Sentinel:
   * `new Redis({ sentinels, name })`) or a `Cluster` (the bus then uses sharded pub/sub).
   */
  redis?: RedisClient;
  /**
   * Hash slots each tenant's L2 entries spread over (docs/caching.md, Redis Cluster): more spreads
   * a hot tenant's reads over more primaries, and costs each write one script per group.
   * @default 8 on a Cluster, else 1
   */
  redisGroupsPerTenant?: number;
  /**
   * After a reconnect or failover, this instance replays its invalidations of this long before
   * the failure, since a primary killed before it replicated them lost them. @default 10000
   */
  failoverReplayMS?: number;
  /** Prefix of every Redis key and of the bus channel. @default 'caas:cache:' */
  prefix?: string;
  /** Redis calls slower than this count as failures and fall through to MongoDB. @default 50 */
  redisTimeoutMS?: number;
  /**
   * The bound of a write's Redis invalidation (a failed one is replayed, and until then other
   * instances may read the old entry from Redis). @default 500
   */
  redisInvalidateTimeoutMS?: number;
  /** TTLs are stretched by a random factor up to this, so entries filled together do not expire together. @default 0.1 */
  ttlJitter?: number;
  /** Take a short Redis lock on a miss so one instance loads a key and the others wait for it. @default false */
  distributedLock?: boolean | { ttlMS?: number; waitMS?: number };
}

/** Counters of a cache, since it was created. docs/caching.md (Metrics) lists them too. */
export interface CacheStats {
  /** Reads of cached methods, one per caller (callers that join a load in flight included). */
  requests: number;
  l1: {
    /** Reads served a fresh in-process entry. */
    hits: number;
    /** Reads that found no fresh in-process entry (stale serves and joined loads included); 0 without an L1. */
    misses: number;
    /** Entries held now. */
    entries: number;
    /** Bytes held now (encoded entries and their keys). */
    bytes: number;
    /** Entries dropped to make room (not those dropped by invalidation or after a reconnect). */
    evictions: number;
  };
  l2: {
    /** Loads served from Redis, counted once however many callers joined them (an entry a peer filled while this instance waited on the distributed lock included). */
    hits: number;
    /** Lookups Redis answered without a fresh entry: absent, expired or undecodable. */
    misses: number;
    /**
     * Failed Redis operations of the cache, each also emitted as `cache:error`: lookups that failed
     * or timed out, lookups not tried because the connection was down, undecodable entries, and
     * failed fills, locks, unlocks, invalidations and replays after a reconnect.
     */
    errors: number;
  };
  /** (l1.hits + l2.hits) / requests; 0 before the first request. */
  hitRate: number;
  /** Stale entries served: within `staleWhileRevalidateMS` after expiry, or within `staleIfErrorMS` when the load failed. */
  staleServes: number;
  loads: {
    /** Loads from MongoDB that succeeded (one per flight, however many callers joined it). */
    count: number;
    /** Their total time, in milliseconds. */
    totalMS: number;
    /** The slowest of them, in milliseconds. */
    maxMS: number;
    /** Loads that failed, whether or not a stale entry was served instead. */
    errors: number;
  };
  invalidations: {
    /** Invalidations by this instance (writes through its data layer and direct `invalidate` calls). */
    local: number;
    /** Invalidations received from other instances on the bus. */
    remote: number;
    /** Local invalidations that could not delete their Redis entries or publish on the bus (replayed on reconnect). */
    failed: number;
    /**
     * Errors of the invalidation bus's subscriber connection (failed connects and subscribes,
     * unreadable messages), each also emitted as `cache:error` with operation `bus`. While they
     * occur, other instances' invalidations may be missed: L1 is cleared when the subscriber reconnects.
     */
    busErrors: number;
  };
}

/** Events of a cache. */
export interface CacheEvents {
  'cache:hit': { method: string; tier: 'l1' | 'l2' };
  'cache:miss': { method: string; loadMS: number };
  'cache:stale': { method: string; reason: 'revalidate' | 'error' };
  'cache:error': { operation: string; error: string };
  'cache:invalidate': { tags: string[]; source: 'local' | 'remote' };
  /** The Redis connection came back: in-process entries were dropped, since invalidations may have been missed. */
  'cache:reconnect': { droppedEntries: number };
  /**
   * After a reconnect or failover, this instance's pending and recent invalidations reached Redis
   * and the bus again: from here on L2 serves what the documented bound allows (docs/caching.md).
   */
  'cache:recovered': {
    /** Tags replayed in Redis and on the bus; -1 when too many were pending and the prefix was flushed instead. */
    replayedTags: number;
    /** Attempts it took (a failover keeps failing them until the new primary serves). */
    attempts: number;
  };
}

interface Flight {
  /**
   * The encoded entry the load ended with. Callers share the flight but never a value: each
   * decodes its own copy, so one caller mutating its result cannot change another's.
   */
  promise: Promise<Buffer>;
  /** Invalidation sequence when the load started. */
  startedAt: number;
  tags: ReadonlySet<string>;
}

const RECENT_INVALIDATIONS = 4096;

/** A caller's own copy of the value in an encoded entry (see {@link Flight.promise}). */
function copyOf<T>(encoded: Buffer): T {
  return copyValue(encoded) as T;
}

/**
 * The arguments of a read as a key: their canonical form (unambiguous, cheap to build), hashed only
 * when long so that Redis keys stay short.
 */
function stableArgs(args: unknown): string {
  const key = canonicalKey(args ?? null);
  return key.length <= 96 ? key : createHash('sha1').update(key).digest('base64url');
}

/**
 * A read-through cache in two tiers: in process (L1, an LRU) and Redis (L2). Reads go L1 → L2 →
 * MongoDB and fill back; concurrent misses of a key load it once; invalidations drop L1 entries
 * here and, through the bus, on every other instance, and delete L2 entries with a check that
 * stops a slow load from putting back what a write replaced. Redis trouble never reaches callers:
 * the read goes to MongoDB and the error is counted.
 */
export class TwoTierCache implements ReadCache {
  readonly instance = randomBytes(8).toString('hex');
  readonly #options: TwoTierCacheOptions;
  readonly #memory: MemoryTier | undefined;
  readonly #redis: RedisTier | undefined;
  readonly #bus: InvalidationBus | undefined;
  readonly #events = new TypedEmitter<CacheEvents>();
  readonly #flights = new Map<string, Flight>();
  /** Tags invalidated recently, by sequence number: a load that overlaps one of them does not fill. */
  readonly #recent: Array<{ sequence: number; tags: ReadonlySet<string> }> = [];
  #sequence = 0;
  #pendingL2: Set<string> = new Set();
  #pendingOverflow = false;
  /** Local invalidations that reached Redis lately: a failover may lose them, so they are replayed. */
  readonly #replayLog: Array<{ at: number; tags: readonly string[] }> = [];
  /** The recovery running now, if any; further trouble during it makes it run once more. */
  #recovering: Promise<void> | undefined;
  #recoverAgain = false;
  #closed = false;
  readonly #stats = {
    requests: 0,
    l1Hits: 0,
    l1Misses: 0,
    l2Hits: 0,
    l2Misses: 0,
    l2Errors: 0,
    staleServes: 0,
    loads: 0,
    loadMS: 0,
    loadMaxMS: 0,
    loadErrors: 0,
    localInvalidations: 0,
    remoteInvalidations: 0,
    failedInvalidations: 0,
    busErrors: 0,
  };

  constructor(options: TwoTierCacheOptions) {
    this.#options = options;
    this.#memory = options.memory === false ? undefined : new MemoryTier(options.memory ?? {});
    const prefix = options.prefix ?? 'caas:cache:';
    if (options.redis) {
      const redis = options.redis;
      this.#redis = new RedisTier(redis, {
        prefix,
        timeoutMS: options.redisTimeoutMS ?? 50,
        ...(options.redisInvalidateTimeoutMS !== undefined && { invalidateTimeoutMS: options.redisInvalidateTimeoutMS }),
        ...(options.redisGroupsPerTenant !== undefined && { groupsPerTenant: options.redisGroupsPerTenant }),
      });
      this.#bus = new InvalidationBus(
        redis,
        `${prefix}invalidations`,
        this.instance,
        (message) => this.#onRemoteInvalidation(message.tags),
        (error) => this.#error('bus', error),
        // The subscriber was down or moved: messages may be lost, so in-process entries are distrusted.
        () => {
          if (this.#memory && this.#memory.size > 0) this.#dropMemory();
        },
      );
      let wasReady = redis.status === 'ready';
      redis.on('ready', () => {
        if (wasReady) this.#startRecovery();
        wasReady = true;
      });
      if (isCluster(redis)) {
        // A node of the cluster failed or left: a replica may take over having missed the latest
        // writes, so once the cluster serves again this instance replays what it invalidated lately.
        // Nodes come and go while the client starts: only trouble after it was ready counts.
        const trouble = () => {
          if (wasReady) this.#startRecovery();
        };
        redis.on('-node', trouble);
        redis.on('node error', trouble);
      }
    }
  }

  /**
   * True when every tier is in use: no Redis configured, or Redis connected and the invalidation
   * bus subscribed (until then, and whenever the bus is down, reads skip the in-process tier).
   */
  get ready(): boolean {
    return (!this.#redis || this.#redis.ready) && (!this.#bus || this.#bus.live);
  }

  /** Subscribes to an event. */
  on<Name extends keyof CacheEvents>(event: Name, listener: Listener<CacheEvents[Name]>): () => void {
    return this.#events.on(event, listener);
  }

  #error(operation: string, error: unknown): void {
    // The bus is counted apart: its subscriber connection fails on its own schedule (every
    // reconnect attempt), and what it risks is missed invalidations, not slower reads.
    if (operation === 'bus') this.#stats.busErrors += 1;
    else this.#stats.l2Errors += 1;
    this.#events.emit('cache:error', { operation, error: error instanceof Error ? error.message : String(error) });
  }

  /**
   * The in-process tier when it may be used: always without Redis; with Redis only while the bus
   * is live (subscribed), since otherwise other instances' invalidations would go unheard.
   */
  get #l1(): MemoryTier | undefined {
    return !this.#bus || this.#bus.live ? this.#memory : undefined;
  }

  #dropMemory(): void {
    const droppedEntries = this.#memory?.size ?? 0;
    this.#memory?.clear();
    this.#events.emit('cache:reconnect', { droppedEntries });
  }

  /** Starts a recovery, or asks the one running to run again (the trouble may have outlived it). */
  #startRecovery(): void {
    if (this.#closed) return;
    this.#dropMemory();
    if (this.#recovering) {
      this.#recoverAgain = true;
      return;
    }
    this.#recovering = this.#recover().finally(() => {
      this.#recovering = undefined;
    });
  }

  /**
   * After Redis came back or failed over: replays the L2 invalidations that failed meanwhile and
   * those of the last `failoverReplayMS` that did not (a primary killed before replicating them
   * lost them), in Redis and on the bus, until they get through; flushes the Redis tier instead
   * when too many are pending. Emits `cache:recovered` when done.
   */
  async #recover(): Promise<void> {
    if (!this.#redis) return;
    let attempts = 0;
    for (;;) {
      this.#recoverAgain = false;
      attempts += 1;
      const windowStart = Date.now() - (this.#options.failoverReplayMS ?? 10_000);
      while (this.#replayLog.length > 0 && (this.#replayLog[0]?.at ?? 0) < windowStart) this.#replayLog.shift();
      const tags = new Set(this.#pendingL2);
      for (const entry of this.#replayLog) for (const tag of entry.tags) tags.add(tag);
      const overflow = this.#pendingOverflow || tags.size > 10_000;
      try {
        await this.#redis.reregister();
        if (overflow) await this.#redis.flush();
        else if (tags.size > 0) {
          await this.#redis.invalidate([...tags]);
          await this.#bus?.publish([...tags]);
        }
        if (overflow) {
          this.#pendingOverflow = false;
          this.#pendingL2 = new Set();
        } else for (const tag of tags) this.#pendingL2.delete(tag);
        // Entries another instance filled from a replica that missed a write are gone now, and
        // every instance dropped its copies on the bus: drop ours too, filled meanwhile.
        if (!this.#recoverAgain) {
          this.#dropMemory();
          this.#events.emit('cache:recovered', { replayedTags: overflow ? -1 : tags.size, attempts });
          return;
        }
      } catch (error) {
        this.#error('recover', error);
        // A client closed by its owner ends the recovery: there is nothing to replay into.
        if (this.#closed || this.#options.redis?.status === 'end') return;
        // The new primary is not serving yet: try again shortly (a failover takes seconds).
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * attempts)));
      }
      if (this.#closed) return;
    }
  }

  #key(request: CachedRead): string {
    return `k:${request.tenant ?? '_'}:${request.method}:${stableArgs(request.args)}`;
  }

  #ttl(base: number): number {
    return base * (1 + Math.random() * (this.#options.ttlJitter ?? 0.1));
  }

  async read<T>(request: CachedRead, load: () => Promise<T>, tagsOf: (value: T) => string[]): Promise<T> {
    const policy = this.#options.methods[request.method];
    if (!policy) return load();
    // A hit sends no command, so nothing in the pipeline checks it: the read is admitted for its
    // tenant here, before either tier is consulted (a suspended tenant is refused, not served).
    if (request.admit) await request.admit();
    this.#stats.requests += 1;
    const key = this.#key(request);
    const now = Date.now();
    // L1 holds encoded entries; their decoded form is remembered beside them and every hit gets its
    // own copy of it (copyValue), so no caller sees another's changes.
    const raw = this.#l1?.get(key);
    const local = decodeEntryOnce(raw);
    if (local && now < local.freshUntil) {
      this.#stats.l1Hits += 1;
      if (this.#events.hasListeners('cache:hit')) this.#events.emit('cache:hit', { method: request.method, tier: 'l1' });
      return copyOf<T>(raw as Buffer);
    }
    if (this.#memory) this.#stats.l1Misses += 1;
    if (local && now < local.staleUntil && (policy.staleWhileRevalidateMS ?? 0) > 0) {
      this.#stats.staleServes += 1;
      this.#events.emit('cache:stale', { method: request.method, reason: 'revalidate' });
      void this.#flight(key, request, policy, load, tagsOf, local).catch(() => undefined);
      // The refresh keeps `local` (it serves it to others if the load fails): this caller gets a copy of its own.
      return copyOf<T>(raw as Buffer);
    }
    return copyOf<T>(await this.#flight(key, request, policy, load, tagsOf, local));
  }

  /** One load per key at a time (single flight): concurrent misses share it. */
  #flight<T>(
    key: string,
    request: CachedRead,
    policy: MethodPolicy,
    load: () => Promise<T>,
    tagsOf: (value: T) => string[],
    stale: CacheEntry | undefined,
  ): Promise<Buffer> {
    const existing = this.#flights.get(key);
    // Join a load only if nothing was invalidated since it began: its result may hold a document
    // a write since has changed (a flight knows its documents' tags only once it has loaded).
    if (existing && existing.startedAt === this.#sequence) return existing.promise;
    const flight: Flight = { promise: Promise.resolve(Buffer.alloc(0)), startedAt: this.#sequence, tags: new Set(request.tags) };
    flight.promise = this.#loadThrough(key, request, policy, load, tagsOf, stale, flight).finally(() => {
      if (this.#flights.get(key) === flight) this.#flights.delete(key);
    });
    this.#flights.set(key, flight);
    return flight.promise;
  }

  /**
   * L2, then MongoDB, then fill. Resolves to the encoded entry (never a decoded value: see
   * {@link Flight.promise}).
   */
  async #loadThrough<T>(
    key: string,
    request: CachedRead,
    policy: MethodPolicy,
    load: () => Promise<T>,
    tagsOf: (value: T) => string[],
    stale: CacheEntry | undefined,
    flight: Flight,
  ): Promise<Buffer> {
    let since: string | undefined;
    let candidate = stale;
    /** The token of the distributed lock, when this flight took it (and only then releases it). */
    let lockToken: string | undefined;
    try {
      if (this.#redis?.ready) {
        try {
          await this.#redis.register(request.tenant);
          const read = await this.#redis.read(request.tenant, key);
          const remote = decodeEntry(read.entry);
          if (read.entry && !remote) this.#error('decode', new Error(`undecodable entry under ${key}`));
          if (read.entry && remote && Date.now() < remote.freshUntil) {
            this.#stats.l2Hits += 1;
            if (this.#events.hasListeners('cache:hit')) this.#events.emit('cache:hit', { method: request.method, tier: 'l2' });
            // A copy: the reply may be a view into a larger socket buffer, which L1 would otherwise keep alive.
            const encoded = Buffer.from(read.entry);
            this.#keepInMemory(key, encoded, this.#tagsOf(request, tagsOf, remote.value as T), flight);
            return encoded;
          }
          this.#stats.l2Misses += 1;
          candidate = remote ?? candidate;
          since = read.time;
          const peer = await this.#waitForPeer(request.tenant, key);
          if (peer?.filled) {
            this.#stats.l2Hits += 1;
            this.#keepInMemory(key, peer.filled.encoded, this.#tagsOf(request, tagsOf, peer.filled.entry.value as T), flight);
            return peer.filled.encoded;
          }
          lockToken = peer?.token;
        } catch (error) {
          this.#error('read', error);
        }
      } else if (this.#redis) {
        // Not tried, but failed all the same: an outage counts where any other Redis failure does.
        this.#error('read', new Error('Redis is not connected'));
      }
      return await this.#loadAndFill(key, request, policy, load, tagsOf, candidate, flight, since);
    } finally {
      if (lockToken !== undefined) await this.#releaseLock(request.tenant, key, lockToken);
    }
  }

  async #loadAndFill<T>(
    key: string,
    request: CachedRead,
    policy: MethodPolicy,
    load: () => Promise<T>,
    tagsOf: (value: T) => string[],
    candidate: CacheEntry | undefined,
    flight: Flight,
    since: string | undefined,
  ): Promise<Buffer> {
    const started = performance.now();
    let value: T;
    try {
      value = await load();
    } catch (error) {
      this.#stats.loadErrors += 1;
      const bound = (candidate?.freshUntil ?? 0) + (policy.staleIfErrorMS ?? 0);
      if (candidate && Date.now() < bound) {
        this.#stats.staleServes += 1;
        this.#events.emit('cache:stale', { method: request.method, reason: 'error' });
        return encodeEntry(candidate);
      }
      throw error;
    }
    const loadMS = performance.now() - started;
    this.#stats.loads += 1;
    this.#stats.loadMS += loadMS;
    this.#stats.loadMaxMS = Math.max(this.#stats.loadMaxMS, loadMS);
    if (this.#events.hasListeners('cache:miss')) this.#events.emit('cache:miss', { method: request.method, loadMS });

    const tags = this.#tagsOf(request, tagsOf, value);
    const found = value !== null && value !== undefined;
    // Encoded even when not cached below: the callers of this flight decode their copies from it.
    if (this.#invalidatedSince(flight, tags)) return encodeEntry({ value: found ? value : null, freshUntil: 0, staleUntil: 0 });
    const ttl = this.#ttl(found ? policy.ttlMS : (policy.negativeTtlMS ?? 2000));
    const now = Date.now();
    const entry: CacheEntry = {
      value: found ? value : null,
      freshUntil: now + ttl,
      staleUntil: now + ttl + Math.max(policy.staleWhileRevalidateMS ?? 0, policy.staleIfErrorMS ?? 0),
    };
    const encoded = encodeEntry(entry);
    this.#l1?.set(key, encoded, tags);
    if (this.#redis?.ready && since !== undefined) {
      await this.#redis
        .fill(request.tenant, key, encoded, entry.staleUntil - now, tags, since)
        .catch((error: unknown) => this.#error('fill', error));
    }
    return encoded;
  }

  /**
   * The tags of an entry: the request's (its list, its collection) and those of the documents in
   * the value. Every entry carries them whichever tier it came from, so a write to any document it
   * holds drops it on every instance (an entry from L2 put in L1 with the request's tags alone
   * would outlive a write by id on another instance until its TTL).
   */
  #tagsOf<T>(request: CachedRead, tagsOf: (value: T) => string[], value: T): string[] {
    return [...new Set([...request.tags, ...tagsOf(value)])];
  }

  /** Keeps an entry read from Redis in L1, unless one of its tags was invalidated since the flight began. */
  #keepInMemory(key: string, encoded: Buffer, tags: string[], flight: Flight): void {
    const memory = this.#l1;
    if (!memory || this.#invalidatedSince(flight, tags)) return;
    memory.set(key, encoded, tags);
  }

  /**
   * With the distributed lock on: takes the key's lock (this instance loads, and gets the lock's
   * token to release it with), or waits a moment for the instance holding it to fill the entry,
   * which is then returned encoded. Neither (the wait ran out): this instance loads without the
   * lock, and so must not release it.
   */
  async #waitForPeer(
    tenant: string | undefined,
    key: string,
  ): Promise<{ token?: string; filled?: { encoded: Buffer; entry: CacheEntry } } | undefined> {
    const lock = this.#options.distributedLock;
    if (!lock || !this.#redis) return undefined;
    const settings = typeof lock === 'object' ? lock : {};
    const token = await this.#redis.lock(tenant, key, settings.ttlMS ?? 2000);
    if (token !== undefined) return { token };
    const deadline = Date.now() + (settings.waitMS ?? 200);
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      const { entry: raw } = await this.#redis.read(tenant, key);
      const entry = decodeEntry(raw);
      if (raw && entry && Date.now() < entry.freshUntil) return { filled: { encoded: Buffer.from(raw), entry } };
    }
    return {};
  }

  /**
   * Releases the lock this flight took, after its fill, so waiting peers find the entry. The
   * token check (in Redis) leaves alone a lock that expired meanwhile and a peer has taken since.
   */
  async #releaseLock(tenant: string | undefined, key: string, token: string): Promise<void> {
    if (!this.#redis?.ready) return; // it expires by its TTL
    try {
      await this.#redis.unlock(tenant, key, token);
    } catch (error) {
      this.#error('unlock', error);
    }
  }

  /** True when a tag of the flight (or of `tags`) was invalidated after the flight started. */
  #invalidatedSince(flight: Flight, tags: readonly string[] = [...flight.tags]): boolean {
    const oldest = this.#recent[0]?.sequence ?? this.#sequence + 1;
    if (flight.startedAt + 1 < oldest && this.#sequence > flight.startedAt) return true; // the log moved past it
    return this.#recent.some((entry) => entry.sequence > flight.startedAt && tags.some((tag) => entry.tags.has(tag)));
  }

  #recordInvalidation(tags: readonly string[]): void {
    this.#sequence += 1;
    const set = new Set(tags);
    this.#recent.push({ sequence: this.#sequence, tags: set });
    if (this.#recent.length > RECENT_INVALIDATIONS) this.#recent.shift();
    this.#memory?.invalidate(tags);
    // Callers arriving after the write must not join a load that started before it.
    for (const [key, flight] of this.#flights) {
      if ([...flight.tags].some((tag) => set.has(tag))) this.#flights.delete(key);
    }
  }

  #onRemoteInvalidation(tags: string[]): void {
    this.#stats.remoteInvalidations += 1;
    this.#recordInvalidation(tags);
    this.#events.emit('cache:invalidate', { tags, source: 'remote' });
  }

  /**
   * Drops every entry carrying one of `tags`, here, in Redis, and (through the bus) on every other
   * instance. Called after each write by the write invalidator; safe to call directly.
   */
  async invalidate(tags: readonly string[]): Promise<void> {
    if (tags.length === 0) return;
    this.#stats.localInvalidations += 1;
    this.#recordInvalidation(tags);
    this.#events.emit('cache:invalidate', { tags: [...tags], source: 'local' });
    if (!this.#redis) return;
    const redis = this.#redis;
    // Redis first, so other instances drop their copies once L2 no longer holds them (else they
    // could refill L1 from it); the bus even when L2 failed: on a cluster one may be down while
    // the other serves, and other instances' copies must go all the same.
    const settle = (promise: Promise<unknown>) =>
      promise.then(
        () => ({ ok: true as const }),
        (reason: unknown) => ({ ok: false as const, reason }),
      );
    const l2 = await settle(redis.ready ? redis.invalidate(tags) : Promise.reject(new Error('Redis is not connected')));
    const bus = await settle(this.#bus ? this.#bus.publish([...tags]) : Promise.resolve());
    // Once more here: a read of this instance that began while Redis still held the old entry
    // may have copied it into L1 (its flight began after the first drop, so nothing refused it),
    // and this instance hears none of its own messages on the bus.
    this.#recordInvalidation(tags);
    if (l2.ok && bus.ok) {
      this.#replayLog.push({ at: Date.now(), tags: [...tags] });
      if (this.#replayLog.length > RECENT_INVALIDATIONS) this.#replayLog.shift();
      return;
    }
    this.#stats.failedInvalidations += 1;
    this.#error('invalidate', !l2.ok ? l2.reason : !bus.ok ? bus.reason : undefined);
    // Replayed when Redis comes back; past the bound, the whole Redis tier is flushed instead.
    for (const tag of tags) this.#pendingL2.add(tag);
    if (this.#pendingL2.size > 10_000) {
      this.#pendingOverflow = true;
      this.#pendingL2 = new Set();
    }
    // A call that timed out on a live connection, or one node of a cluster failing over, brings
    // no reconnect to replay on: keep trying until Redis serves again (recovery also drops L1).
    if (redis.ready) this.#startRecovery();
  }

  /** Counters since the cache was created. */
  stats(): CacheStats {
    const s = this.#stats;
    const hits = s.l1Hits + s.l2Hits;
    return {
      requests: s.requests,
      l1: {
        hits: s.l1Hits,
        misses: s.l1Misses,
        entries: this.#memory?.size ?? 0,
        bytes: this.#memory?.bytes ?? 0,
        evictions: this.#memory?.evictions ?? 0,
      },
      l2: { hits: s.l2Hits, misses: s.l2Misses, errors: s.l2Errors },
      hitRate: s.requests === 0 ? 0 : hits / s.requests,
      staleServes: s.staleServes,
      loads: { count: s.loads, totalMS: s.loadMS, maxMS: s.loadMaxMS, errors: s.loadErrors },
      invalidations: {
        local: s.localInvalidations,
        remote: s.remoteInvalidations,
        failed: s.failedInvalidations,
        busErrors: s.busErrors,
      },
    };
  }

  /** Stops the bus. The Redis connection given in the options is the caller's to close. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#bus?.close();
  }
}
