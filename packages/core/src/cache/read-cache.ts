/**
 * The seam between repositories and a cache (`@caas-db/cache`): repositories describe each
 * cacheable read (method, arguments, tags of the result); the cache decides whether that method is
 * cached and where. Writes are not announced here: the cache derives what they make stale from the
 * commands themselves, at the choke point, so every write path invalidates without knowing it.
 */

/** One cacheable read, as a repository describes it. */
export interface CachedRead {
  /** `<collection>.<method>`, e.g. `users.findById`: caching is enabled per method. */
  method: string;
  collection: string;
  /** The tenant the read runs for (`undefined` for platform collections and unbound reads). */
  tenant: string | undefined;
  /** Whether the collection's documents belong to tenants; unknown (undefined) counts as tenant-owned. */
  tenantOwned?: boolean;
  /** Everything the result depends on besides the tenant (ids, projection, page options). */
  args: unknown;
  /** Tags known before the read (a list's membership), to which the result's own tags are added. */
  tags: string[];
  /**
   * Admits the read for its tenant now (the data layer's plugins' `admitCachedRead`: with
   * `@caas-db/tenancy`, the tenant must be an active client). A hit sends no command, so the
   * pipeline's `context` layers do not run for it: the cache awaits this before serving anything,
   * from either tier, and a throw refuses the read.
   */
  admit?: () => Promise<void>;
}

/** A read-through cache that repositories call. */
export interface ReadCache {
  /**
   * Returns the cached result of `request`, or runs `load`, caches its result under `request`'s tags
   * plus `tagsOf(result)`, and returns it. A cache that does not cache `request.method` just loads.
   */
  read<T>(request: CachedRead, load: () => Promise<T>, tagsOf: (value: T) => string[]): Promise<T>;
}

/** Tags a cached entry carries; writes invalidate by the same names. */
export const cacheTags = {
  /**
   * One document of a tenant, in any entry that contains it (by id, or as an item of a list).
   * Scoped by tenant: under database-per-tenant two tenants may hold the same `_id`, and one's
   * write must not drop the other's entries. Entries also carry the `'*'` form, which a write whose
   * tenant is unknown (an unbound write by `_id`) invalidates; a write with a known tenant
   * invalidates its own form and `'_'` (entries read with no tenant known).
   */
  document: (tenant: string | undefined, collection: string, id: unknown): string => `doc:${tenant ?? '_'}:${collection}:${String(id)}`,
  /** Lists whose membership is `field = value` (a conversation's messages, a user's conversations). */
  list: (tenant: string | undefined, collection: string, field: string, value: unknown): string =>
    `list:${tenant ?? '_'}:${collection}:${field}=${String(value)}`,
  /** Every list of a collection for a tenant (bumped when an update may move documents between lists). */
  lists: (tenant: string | undefined, collection: string): string => `lists:${tenant ?? '_'}:${collection}`,
  /** Every entry of a collection for a tenant (bumped by writes whose targets are unknown). */
  collection: (tenant: string | undefined, collection: string): string => `coll:${tenant ?? '_'}:${collection}`,
} as const;
