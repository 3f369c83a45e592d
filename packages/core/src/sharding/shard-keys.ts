/**
 * How one collection is sharded, or why it is not. The key always starts with `tenant_id` so a
 * tenant's queries are targeted and zones can pin a tenant's range to its region's shards.
 */
export interface ShardKeyDeclaration {
  /** Fields in order; `1` ranged, `'hashed'` for the one hashed field of a compound hashed key. */
  readonly key: Readonly<Record<string, 1 | 'hashed'>>;
  /** Why this key: what it keeps targeted, what it spreads, what it risks. Shown in the plan and docs. */
  readonly reason: string;
  /** Query shapes (by name) allowed to be scatter-gather, each with why that is acceptable. */
  readonly allowScatter?: Readonly<Record<string, string>>;
  /** Time-series collections are sharded with their time-series options (the key is on the meta field). */
  readonly timeseries?: { readonly timeField: string; readonly metaField: string; readonly granularity?: string };
}

/** A collection that stays unsharded, with the reason. */
export interface UnshardedDeclaration {
  readonly unsharded: true;
  readonly reason: string;
}

/**
 * caas-db's shard keys for the data model (see docs/sharding.md for the reasoning against the
 * plan's "tenant_id + timestamp"). Each key is backed by a declared index of its model, and every
 * unique index of a sharded collection starts with its key (a MongoDB rule).
 */
export const recommendedShardKeys: Readonly<Record<string, ShardKeyDeclaration | UnshardedDeclaration>> = {
  users: {
    key: { tenant_id: 1, external_id: 1 },
    reason:
      'the unique { tenant_id, external_id } index must start with the shard key; external ids spread a large tenant over many chunks and findByExternalId goes to one chunk',
  },
  conversations: {
    key: { tenant_id: 1, dedupe_key: 1 },
    reason:
      'the unique { tenant_id, dedupe_key } index must start with the shard key; dedupe keys are unique per conversation, so chunks split freely',
  },
  messages: {
    key: { tenant_id: 1, conversation_id: 1, _id: 1 },
    reason:
      "a conversation's history is one contiguous range (findByConversation reads one chunk), inserts spread over every active conversation instead of one tenant-wide hot chunk, and _id keeps a huge conversation splittable (no jumbo chunk)",
  },
  files: {
    key: { tenant_id: 1, 'storage.provider': 1, 'storage.bucket': 1, 'storage.key': 1 },
    reason: 'the unique storage-key index must start with the shard key; storage keys are unique, so chunks split freely',
  },
  groups: {
    key: { tenant_id: 1, owner_id: 1 },
    reason:
      'supported by the existing { tenant_id, owner_id, _id } index (no extra index to maintain); listOwnedBy reads one chunk; an ownership transfer changes the key value, which MongoDB allows in a retryable write',
  },
  settings: {
    key: { tenant_id: 1, owner_key: 1 },
    reason: 'the unique { tenant_id, owner_key } index must start with the shard key; a few documents per tenant and user',
  },
  events: {
    key: { tenant_id: 1, _id: 'hashed' },
    reason:
      "insert-heavy and time-ordered: a hashed _id spreads a large tenant's inserts over all of its chunks (a ranged time or _id suffix would make the newest chunk of each tenant hot); the tenant prefix keeps every query targeted to the tenant's chunks",
  },
  metrics: {
    key: { tenant_id: 1 },
    timeseries: { timeField: 'timestamp', metaField: 'tenant_id', granularity: 'minutes' },
    reason:
      'a time-series collection is sharded on its meta field (the tenant); buckets are compact, so even a large tenant stays far from a jumbo chunk (a { tenant_id, timestamp } key is the next step, at the price of one more index)',
  },
  aggregations: {
    key: { tenant_id: 1, kind: 1, period: 1, key: 1 },
    reason: 'the unique rollup index must start with the shard key; increments and reads address one rollup, one chunk',
  },
  billing: {
    key: { tenant_id: 1, kind: 1 },
    reason: 'the unique usage/plan index must start with the shard key; a few documents per tenant and month',
  },
  audit_logs: {
    key: { tenant_id: 1, _id: 'hashed' },
    reason: 'append-only and time-ordered like events: a hashed _id spreads inserts; listForTenant stays targeted',
    allowScatter: {
      listByAction: 'an operator report across tenants, rare and paged',
      listForTarget: "an operator's history of one record, across tenants",
      purgeExpired: 'a retention job that must visit every shard anyway',
      findById: 'an operator lookup by id; services read audit entries per tenant',
    },
  },
  applications: {
    unsharded: true,
    reason: 'a few documents per tenant, read by _id without a tenant (findById): sharding would make every lookup scatter-gather',
  },
  api_keys: {
    unsharded: true,
    reason:
      'verify finds a key by its globally unique prefix before the tenant is known; a unique { prefix } index cannot start with tenant_id',
  },
  clients: { unsharded: true, reason: 'the tenant directory: small, read by tenant_id and status across tenants' },
};

/** True when the declaration shards its collection. */
export function isSharded(declaration: ShardKeyDeclaration | UnshardedDeclaration | undefined): declaration is ShardKeyDeclaration {
  return declaration !== undefined && !('unsharded' in declaration);
}
