import { LRUCache } from 'lru-cache';
import type { ObjectId } from 'mongodb';
import { z } from 'zod';
import { cacheTags } from '../cache/read-cache.js';
import { NotFoundError } from '../errors.js';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import { Repository, type RepositoryContext, type RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { dateSchema, externalIdSchema, freeFormSchema, type IdInput, objectIdSchema, tenantIdSchema, text } from '../schema/primitives.js';

/** Presence states of a user. */
export const userStatuses = ['online', 'offline', 'away', 'dnd'] as const;
/** Kinds of relationship one user has to another. */
export const relationshipTypes = ['friend', 'blocked', 'muted'] as const;

const relationshipSchema = z.strictObject({
  user_id: objectIdSchema,
  type: z.enum(relationshipTypes),
  created_at: dateSchema,
});

/** The fields of a `users` document (the plan's 2.1). */
export const userSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  /** The user's id in the tenant's own application. Unique per tenant. */
  external_id: externalIdSchema,
  profile: z.strictObject({
    display_name: text(128, 1),
    avatar_url: z
      .url({ protocol: /^https?$/ })
      .max(2048)
      .optional(),
    status: z.enum(userStatuses).default('offline'),
    custom_data: freeFormSchema.optional(),
  }),
  settings: z
    .strictObject({
      notifications: z.boolean().default(true),
      privacy: freeFormSchema.optional(),
    })
    .default({ notifications: true }),
  encryption: z
    .strictObject({
      public_key: text(8192, 1),
      key_version: z.number().int().min(1),
    })
    .optional(),
  relationships: z.array(relationshipSchema).max(10_000).default([]),
  last_seen: dateSchema.optional(),
  /** Normalized words and prefixes of the display name, for search (kept by `@caas-db/search`). */
  search_tokens: z.array(z.string().min(1).max(64)).max(256).optional(),
});

/** A stored user. */
export type User = StoredDocument<typeof userSchema>;

/** Options of the users repository. */
export interface UserRepositoryOptions {
  /** A heartbeat within this many milliseconds of the stored `last_seen` writes nothing. @default 60000 */
  lastSeenResolutionMS?: number;
  /** Delete users inactive (no `last_seen`) for this long, with a TTL index. Off by default. */
  inactiveTtlSeconds?: number;
}

/** The definition of `users`, with its indexes and query shapes. */
export function usersDefinition(options: UserRepositoryOptions = {}): RepositoryDefinition<typeof userSchema> {
  return {
    collection: 'users',
    schema: userSchema,
    tenantOwned: true,
    schemaVersion: 1,
    softDelete: true,
    versioned: true,
    sortable: ['last_seen', 'created_at'],
    indexes: [
      {
        name: 'tenant_external_id',
        key: { tenant_id: 1, external_id: 1 },
        unique: true,
        purpose: 'findByExternalId; one user per external id per tenant',
      },
      {
        name: 'tenant_last_seen',
        key: { tenant_id: 1, last_seen: -1, _id: -1 },
        purpose: 'recently active users of a tenant (presence lists, warming)',
      },
      { name: 'tenant_id', key: { tenant_id: 1, _id: -1 }, purpose: 'a tenant’s users, newest first; id lookups within a tenant' },
      {
        name: 'tenant_search_tokens',
        key: { tenant_id: 1, search_tokens: 1, _id: -1 },
        purpose: 'user search by display name (words and prefixes)',
      },
      ...(options.inactiveTtlSeconds !== undefined
        ? [
            {
              name: 'inactive_ttl',
              key: { last_seen: 1 as const },
              expireAfterSeconds: options.inactiveTtlSeconds,
              purpose: 'expire inactive users (TTL indexes take one field, so no tenant_id prefix)',
            },
          ]
        : []),
    ],
    queries: [
      { name: 'findByExternalId', equality: ['tenant_id', 'external_id'] },
      { name: 'search (external id prefix)', equality: ['tenant_id'], range: ['external_id'] },
      { name: 'search (display name)', equality: ['tenant_id', 'search_tokens'], sort: [['_id', -1]] },
      {
        name: 'listRecentlyActive',
        equality: ['tenant_id'],
        sort: [
          ['last_seen', -1],
          ['_id', -1],
        ],
      },
      { name: 'findMany', equality: ['tenant_id'], sort: [['_id', -1]] },
      { name: 'findById', equality: ['_id'] },
    ],
  };
}

const relationshipInput = z.strictObject({
  userId: objectIdSchema,
  otherUserId: objectIdSchema,
  type: z.enum(relationshipTypes),
});

/** Users: profiles, presence, settings, encryption keys and relationships. */
export class UserRepository extends Repository<typeof userSchema> {
  readonly #lastSeenResolutionMS: number;
  /** When each user's `last_seen` was last written by this process: heartbeats inside the resolution skip the round trip. */
  /** The heartbeats this process wrote recently, by user (the most recent 100,000 users). */
  readonly #lastSeenWritten = new LRUCache<string, number>({ max: 100_000 });

  constructor(definition: RepositoryDefinition<typeof userSchema>, context: RepositoryContext, options: UserRepositoryOptions = {}) {
    super(definition, context);
    this.#lastSeenResolutionMS = options.lastSeenResolutionMS ?? 60_000;
  }

  readonly #removalListeners: Array<(userId: ObjectId, tenant: string) => Promise<unknown>> = [];

  /** @internal `listener` runs after this instance deleted a user for good: the cascades (memberships). */
  onRemoved(listener: (userId: ObjectId, tenant: string) => Promise<unknown>): void {
    this.#removalListeners.push(listener);
  }

  /**
   * Deletes a user for good and removes them from every conversation and group of the tenant. A
   * soft delete keeps memberships, so `restore` brings the user back as they were.
   */
  override async delete(id: IdInput): Promise<boolean> {
    const objectId = this.parseId(id);
    const tenant =
      this.#removalListeners.length === 0
        ? undefined
        : (this.tenant ?? (await this.findById(objectId, { includeDeleted: true, projection: { tenant_id: 1 } }))?.tenant_id);
    const deleted = await super.delete(objectId);
    if (deleted && tenant !== undefined) for (const listener of this.#removalListeners) await listener(objectId, tenant);
    return deleted;
  }

  /** The user with this external id in the bound tenant, or null. */
  async findByExternalId(externalId: string): Promise<User | null> {
    const tenant = this.requireTenant('findByExternalId');
    const external = this.parse(externalIdSchema, externalId, 'externalId');
    return this.cachedRead(
      'findByExternalId',
      external,
      [cacheTags.list(tenant, this.name, 'external_id', external), cacheTags.lists(tenant, this.name)],
      () => this.findOne({ tenant_id: tenant, external_id: external }),
    );
  }

  /** Sets the presence status. */
  async setStatus(id: IdInput, status: (typeof userStatuses)[number]): Promise<User> {
    return this.update(id, { profile: { status: this.parse(z.enum(userStatuses), status, 'status') } });
  }

  /**
   * Records activity at `at` without a write on every heartbeat: nothing is sent when this process
   * wrote a `last_seen` within `lastSeenResolutionMS`, and the server writes only when the stored
   * value is older than that (`$max`), so concurrent heartbeats from many instances cost one write
   * per resolution window.
   * @returns true when a write happened.
   */
  async touchLastSeen(id: IdInput, at: Date = this.now()): Promise<boolean> {
    const objectId = this.parseId(id);
    const when = this.parse(dateSchema, at, 'at');
    const key = objectId.toHexString();
    const written = this.#lastSeenWritten.get(key);
    if (written !== undefined && when.getTime() - written < this.#lastSeenResolutionMS) return false;
    // Claimed before the round trip, so concurrent heartbeats of this process send one write.
    this.#lastSeenWritten.set(key, when.getTime());
    const threshold = new Date(when.getTime() - this.#lastSeenResolutionMS);
    try {
      const result = await this.collection.updateOne(
        'touchLastSeen',
        { _id: objectId, deleted_at: null, $or: [{ last_seen: { $lt: threshold } }, { last_seen: { $exists: false } }] },
        { $max: { last_seen: when } },
      );
      return result.modifiedCount === 1;
    } catch (error) {
      if (this.#lastSeenWritten.get(key) === when.getTime()) this.#lastSeenWritten.delete(key);
      throw error;
    }
  }

  /** Replaces the public key and increments `key_version`. */
  async rotateEncryptionKey(id: IdInput, publicKey: string): Promise<User> {
    const key = this.parse(text(8192, 1), publicKey, 'publicKey');
    const objectId = this.parseId(id);
    const updated = await this.collection.findOneAndUpdate(
      'rotateEncryptionKey',
      { _id: objectId, deleted_at: null },
      this.stampUpdate({ $set: { 'encryption.public_key': key }, $inc: { 'encryption.key_version': 1 } }),
    );
    if (!updated) throw new NotFoundError(this.name, objectId.toHexString());
    return updated as User;
  }

  /**
   * Adds a relationship (friend, blocked, muted) to another user. Idempotent, also under
   * concurrent calls: the same pair and type is stored once.
   * @returns true when it was added, false when it existed.
   */
  async addRelationship(userId: IdInput, otherUserId: IdInput, type: (typeof relationshipTypes)[number]): Promise<boolean> {
    const input = this.parse(relationshipInput, { userId, otherUserId, type }, 'relationship');
    const result = await this.collection.updateOne(
      'addRelationship',
      { _id: input.userId, deleted_at: null, relationships: { $not: { $elemMatch: { user_id: input.otherUserId, type: input.type } } } },
      this.stampUpdate({ $push: { relationships: { user_id: input.otherUserId, type: input.type, created_at: this.now() } } }),
    );
    if (result.matchedCount === 1) return true;
    if (!(await this.exists({ _id: input.userId }))) throw new NotFoundError(this.name, input.userId.toHexString());
    return false;
  }

  /** Removes a relationship. @returns true when one was removed. */
  async removeRelationship(userId: IdInput, otherUserId: IdInput, type: (typeof relationshipTypes)[number]): Promise<boolean> {
    const input = this.parse(relationshipInput, { userId, otherUserId, type }, 'relationship');
    const result = await this.collection.updateOne(
      'removeRelationship',
      { _id: input.userId, deleted_at: null, relationships: { $elemMatch: { user_id: input.otherUserId, type: input.type } } },
      this.stampUpdate({ $pull: { relationships: { user_id: input.otherUserId, type: input.type } } }),
    );
    return result.modifiedCount === 1;
  }

  /** The ids of users `userId` has a relationship of `type` with. */
  async relationshipsOf(userId: IdInput, type: (typeof relationshipTypes)[number]): Promise<ObjectId[]> {
    const wanted = this.parse(z.enum(relationshipTypes), type, 'type');
    const user = await this.getById(userId, { projection: { relationships: 1 } });
    return (user.relationships ?? []).filter((relationship) => relationship.type === wanted).map((relationship) => relationship.user_id);
  }

  /** The bound tenant's users, most recently seen first (users never seen are not listed). */
  async listRecentlyActive(options: PageOptions = {}): Promise<Page<User>> {
    const tenant = this.requireTenant('listRecentlyActive');
    return this.page(
      'listRecentlyActive',
      { tenant_id: tenant, last_seen: { $exists: true }, deleted_at: null },
      { ...options, sort: { field: 'last_seen', direction: 'desc' } },
    );
  }
}
