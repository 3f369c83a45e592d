import { ObjectId } from 'mongodb';
import { z } from 'zod';
import { cacheTags } from '../cache/read-cache.js';
import { DuplicateKeyError, InvariantError, NotFoundError, ValidationError } from '../errors.js';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import { Repository, type RepositoryDefinition } from '../repository/repository.js';
import type { StoredDocument } from '../repository/repository-types.js';
import { dateSchema, type IdInput, objectIdSchema, tenantIdSchema, text } from '../schema/primitives.js';
import { lastMessageGrant } from './internal-grants.js';
import {
  advanceReadPosition,
  type ReadAdvance,
  type ReadPosition,
  readPositionFields,
  readPositionGrant,
  readPositionOf,
} from './read-positions.js';

/** Kinds of conversation. */
export const conversationTypes = ['direct', 'group', 'channel'] as const;
/** Roles of a participant. */
export const participantRoles = ['owner', 'admin', 'member'] as const;

const participantSchema = z.strictObject({
  user_id: objectIdSchema,
  role: z.enum(participantRoles),
  joined_at: dateSchema,
  settings: z.strictObject({ muted: z.boolean(), pinned: z.boolean() }),
  ...readPositionFields,
});

/** The fields of a `conversations` document (the plan's 2.2). */
export const conversationSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  type: z.enum(conversationTypes),
  /**
   * Makes creation idempotent: `direct:<smaller id>:<larger id>` for a direct conversation (one per
   * pair of users per tenant), `<type>:<_id>` otherwise. Unique per tenant.
   */
  dedupe_key: z.string().min(1).max(128),
  participants: z.array(participantSchema).max(100_000),
  metadata: z
    .strictObject({
      name: text(256).optional(),
      avatar: z
        .url({ protocol: /^https?$/ })
        .max(2048)
        .optional(),
      description: text(4096).optional(),
    })
    .default({}),
  last_message: z
    .strictObject({
      message_id: objectIdSchema,
      /** Ciphertext preview; the library never sees plaintext. */
      content_preview: text(4096),
      sender_id: objectIdSchema,
      sent_at: dateSchema,
    })
    .optional(),
  /** Normalized words and prefixes of the conversation's name, for search (kept by `@caas-db/search`). */
  search_tokens: z.array(z.string().min(1).max(64)).max(256).optional(),
});

/** A stored conversation. */
export type Conversation = StoredDocument<typeof conversationSchema>;

/** The definition of `conversations`. */
export const conversationsDefinition: RepositoryDefinition<typeof conversationSchema> = {
  collection: 'conversations',
  schema: conversationSchema,
  tenantOwned: true,
  schemaVersion: 1,
  softDelete: true,
  sortable: ['updated_at', 'created_at'],
  invariants: { guardedFields: ['last_message'], isGranted: (presented) => presented === lastMessageGrant },
  indexes: [
    {
      name: 'tenant_dedupe_key',
      key: { tenant_id: 1, dedupe_key: 1 },
      unique: true,
      purpose: 'idempotent creation: one direct conversation per pair of users',
    },
    {
      name: 'tenant_participant_updated',
      key: { tenant_id: 1, 'participants.user_id': 1, updated_at: -1, _id: -1 },
      purpose: 'a user’s conversations, most recently active first (listForUser)',
    },
    {
      name: 'tenant_type_updated',
      key: { tenant_id: 1, type: 1, updated_at: -1, _id: -1 },
      purpose: 'a tenant’s channels or groups by activity',
    },
    {
      name: 'tenant_search_tokens',
      key: { tenant_id: 1, search_tokens: 1, _id: -1 },
      purpose: 'conversation search by name (words and prefixes)',
    },
    {
      name: 'tenant_id',
      key: { tenant_id: 1, _id: -1 },
      purpose: 'a tenant’s conversations by id, deleted ones included (`@caas-db/lifecycle`: retention, export, erase)',
    },
  ],
  queries: [
    { name: 'createDirect (find existing)', equality: ['tenant_id', 'dedupe_key'] },
    {
      name: 'listForUser',
      equality: ['tenant_id', 'participants.user_id'],
      sort: [
        ['updated_at', -1],
        ['_id', -1],
      ],
    },
    {
      name: 'listByType',
      equality: ['tenant_id', 'type'],
      sort: [
        ['updated_at', -1],
        ['_id', -1],
      ],
    },
    { name: 'search', equality: ['tenant_id', 'search_tokens'], sort: [['_id', -1]] },
    { name: 'findById / join / leave / settings', equality: ['_id'] },
    { name: 'markConversationRead / readPosition (one participant)', equality: ['_id'], residual: ['participants.user_id'] },
    { name: 'removeParticipantEverywhere', equality: ['tenant_id', 'participants.user_id'] },
  ],
};

const createDirectInput = z.tuple([objectIdSchema, objectIdSchema]);

const createGroupInput = z.strictObject({
  type: z.enum(['group', 'channel']),
  ownerId: objectIdSchema,
  memberIds: z.array(objectIdSchema).max(10_000).default([]),
  metadata: conversationSchema.shape.metadata.optional(),
});

/** Conversations: direct (one per pair), group and channel; participants with roles and settings. */
export class ConversationRepository extends Repository<typeof conversationSchema> {
  readonly #participantListeners: Array<(conversationId: ObjectId | undefined) => void> = [];
  readonly #removalListeners: Array<(conversationId: ObjectId, tenant: string) => Promise<unknown>> = [];

  /** @internal `listener` learns of every participant change of this instance (`undefined`: possibly any conversation). */
  onParticipantsChanged(listener: (conversationId: ObjectId | undefined) => void): void {
    this.#participantListeners.push(listener);
  }

  /** @internal `listener` runs after this instance deleted a conversation (soft or hard): the cascades. */
  onRemoved(listener: (conversationId: ObjectId, tenant: string) => Promise<unknown>): void {
    this.#removalListeners.push(listener);
  }

  #participantsChanged(conversationId: ObjectId | undefined): void {
    for (const listener of this.#participantListeners) listener(conversationId);
  }

  /** The tenant a conversation belongs to: the bound or ambient one, else read from the document. */
  async #tenantOf(id: ObjectId): Promise<string | undefined> {
    if (this.tenant !== undefined) return this.tenant;
    return (await this.findById(id, { includeDeleted: true, projection: { tenant_id: 1 } }))?.tenant_id;
  }

  /**
   * Soft-deletes the conversation and, when this call deleted it, every live message in it.
   * @returns true when this call deleted it, false when it already was.
   */
  override async softDelete(id: IdInput): Promise<boolean> {
    const objectId = this.parseId(id);
    const tenant = this.#removalListeners.length > 0 ? await this.#tenantOf(objectId) : undefined;
    const deleted = await super.softDelete(objectId);
    this.#participantsChanged(objectId);
    if (deleted && tenant !== undefined) for (const listener of this.#removalListeners) await listener(objectId, tenant);
    return deleted;
  }

  /** Deletes the conversation for good and soft-deletes every live message in it. */
  override async delete(id: IdInput): Promise<boolean> {
    const objectId = this.parseId(id);
    const tenant = this.#removalListeners.length > 0 ? await this.#tenantOf(objectId) : undefined;
    const deleted = await super.delete(objectId);
    this.#participantsChanged(objectId);
    if (deleted && tenant !== undefined) for (const listener of this.#removalListeners) await listener(objectId, tenant);
    return deleted;
  }

  /**
   * Removes a user from every conversation of the tenant (the cascade of deleting the user; erasure).
   * `updated_at` is left alone: it orders conversations by activity.
   * @returns how many conversations changed.
   */
  async removeParticipantEverywhere(userId: IdInput, tenant?: string): Promise<number> {
    const user = this.parseId(userId, 'userId');
    const tenantId = this.tenant ?? this.parse(tenantIdSchema, tenant, 'tenant');
    const result = await this.collection.updateMany(
      { name: 'removeParticipantEverywhere', idempotent: true },
      { tenant_id: tenantId, 'participants.user_id': user },
      { $pull: { participants: { user_id: user } } },
    );
    this.#participantsChanged(undefined);
    return result.modifiedCount;
  }
  #participant(userId: ObjectId, role: (typeof participantRoles)[number]) {
    return { user_id: userId, role, joined_at: this.now(), settings: { muted: false, pinned: false } };
  }

  /**
   * The direct conversation between two users of a tenant, created if it does not exist. Concurrent
   * calls for the same pair, in either order, all return the same conversation.
   * @returns the conversation and whether this call created it.
   */
  async createDirect(userIds: [IdInput, IdInput]): Promise<{ conversation: Conversation; created: boolean }> {
    const tenant = this.requireTenant('createDirect');
    const ids = this.parse(createDirectInput, userIds, 'userIds');
    const [first, second] = ids.map((id) => id.toHexString()).sort() as [string, string];
    if (first === second)
      throw new ValidationError('direct conversation', [
        { path: 'userIds', message: 'must be two different users', code: 'invalid_value' },
      ]);
    const dedupeKey = `direct:${first}:${second}`;
    const existing = await this.findOne({ tenant_id: tenant, dedupe_key: dedupeKey });
    if (existing) return { conversation: existing, created: false };
    try {
      const conversation = await this.create({
        tenant_id: tenant,
        type: 'direct',
        dedupe_key: dedupeKey,
        participants: ids.map((id) => this.#participant(id, 'member')),
      });
      return { conversation, created: true };
    } catch (error) {
      // Another caller created it between our read and our insert: theirs is the conversation.
      if (!(error instanceof DuplicateKeyError)) throw error;
      const winner = await this.findOne({ tenant_id: tenant, dedupe_key: dedupeKey }, { includeDeleted: true });
      if (!winner) throw error;
      return { conversation: winner, created: false };
    }
  }

  /** Creates a group or channel owned by `ownerId`, with `memberIds` as members. */
  async createGroup(input: z.input<typeof createGroupInput>): Promise<Conversation> {
    const tenant = this.requireTenant('createGroup');
    const parsed = this.parse(createGroupInput, input, 'group conversation');
    const members = parsed.memberIds.filter((id) => !id.equals(parsed.ownerId));
    const unique = [...new Map(members.map((id) => [id.toHexString(), id])).values()];
    const _id = new ObjectId();
    return this.create({
      _id,
      tenant_id: tenant,
      type: parsed.type,
      dedupe_key: `${parsed.type}:${_id.toHexString()}`,
      participants: [this.#participant(parsed.ownerId, 'owner'), ...unique.map((id) => this.#participant(id, 'member'))],
      ...(parsed.metadata && { metadata: parsed.metadata }),
    });
  }

  /**
   * Adds a participant to a group or channel. Idempotent: a user already in it is left as is.
   * @returns true when the user was added.
   */
  async join(conversationId: IdInput, userId: IdInput, role: 'admin' | 'member' = 'member'): Promise<boolean> {
    const id = this.parseId(conversationId, 'conversationId');
    const user = this.parseId(userId, 'userId');
    const parsedRole = this.parse(z.enum(['admin', 'member']), role, 'role');
    const result = await this.collection.updateOne(
      'join',
      { _id: id, deleted_at: null, type: { $ne: 'direct' }, 'participants.user_id': { $ne: user } },
      this.stampUpdate({ $push: { participants: this.#participant(user, parsedRole) } }),
    );
    if (result.matchedCount === 1) return true;
    const conversation = await this.getById(id, { projection: { type: 1 } });
    if (conversation.type === 'direct')
      throw new ValidationError('join', [
        { path: 'conversationId', message: 'direct conversations have fixed participants', code: 'invalid_operation' },
      ]);
    return false;
  }

  /** Removes a participant. @returns true when the user was removed. */
  async leave(conversationId: IdInput, userId: IdInput): Promise<boolean> {
    const id = this.parseId(conversationId, 'conversationId');
    const user = this.parseId(userId, 'userId');
    const result = await this.collection.updateOne(
      'leave',
      { _id: id, deleted_at: null, 'participants.user_id': user },
      this.stampUpdate({ $pull: { participants: { user_id: user } } }),
    );
    this.#participantsChanged(id);
    return result.modifiedCount === 1;
  }

  /** Changes a participant's role. */
  async setRole(conversationId: IdInput, userId: IdInput, role: (typeof participantRoles)[number]): Promise<void> {
    return this.#setParticipantField('setRole', conversationId, userId, 'role', this.parse(z.enum(participantRoles), role, 'role'));
  }

  /** Mutes or unmutes the conversation for one participant. */
  async setMuted(conversationId: IdInput, userId: IdInput, muted: boolean): Promise<void> {
    return this.#setParticipantField('setMuted', conversationId, userId, 'settings.muted', this.parse(z.boolean(), muted, 'muted'));
  }

  /** Pins or unpins the conversation for one participant. */
  async setPinned(conversationId: IdInput, userId: IdInput, pinned: boolean): Promise<void> {
    return this.#setParticipantField('setPinned', conversationId, userId, 'settings.pinned', this.parse(z.boolean(), pinned, 'pinned'));
  }

  async #setParticipantField(operation: string, conversationId: IdInput, userId: IdInput, field: string, value: unknown): Promise<void> {
    const id = this.parseId(conversationId, 'conversationId');
    const user = this.parseId(userId, 'userId');
    // Participant settings change without touching updated_at: it orders conversations by activity.
    const result = await this.collection.updateOne(
      operation,
      { _id: id, deleted_at: null, 'participants.user_id': user },
      { $set: { [`participants.$.${field}`]: value } },
    );
    if (result.matchedCount === 0) throw new NotFoundError(this.name, `${id.toHexString()} with participant ${user.toHexString()}`);
  }

  /** True when `userId` takes part in the conversation. */
  async isParticipant(conversationId: IdInput, userId: IdInput): Promise<boolean> {
    return this.exists({ _id: this.parseId(conversationId, 'conversationId'), 'participants.user_id': this.parseId(userId, 'userId') });
  }

  /** A user's conversations, most recently active first. */
  async listForUser(userId: IdInput, options: PageOptions = {}): Promise<Page<Conversation>> {
    const tenant = this.requireTenant('listForUser');
    const user = this.parseId(userId, 'userId');
    const filter = { tenant_id: tenant, 'participants.user_id': user, deleted_at: null };
    const read = () => this.page<Conversation>('listForUser', filter, { ...options, sort: { field: 'updated_at', direction: 'desc' } });
    // Ordered by activity, a list goes stale whenever any conversation of the tenant changes.
    const tags = [cacheTags.list(tenant, this.name, 'participants.user_id', user), cacheTags.lists(tenant, this.name)];
    return this.cachedRead('listForUser', { user: user.toHexString(), options }, tags, read);
  }

  /** The bound tenant's conversations of one type, most recently active first. */
  async listByType(type: (typeof conversationTypes)[number], options: PageOptions = {}): Promise<Page<Conversation>> {
    const filter = {
      tenant_id: this.requireTenant('listByType'),
      type: this.parse(z.enum(conversationTypes), type, 'type'),
      deleted_at: null,
    };
    return this.page('listByType', filter, { ...options, sort: { field: 'updated_at', direction: 'desc' } });
  }

  /**
   * Denormalizes a new message into `last_message` and moves the conversation up in activity order.
   * An older message arriving late never replaces a newer one (newer: a later `created_at`, or the
   * same with a greater id).
   * @internal called by the messages repository only (`grant`).
   */
  async recordLastMessage(
    presented: symbol,
    conversationId: ObjectId,
    message: { _id: ObjectId; sender_id: ObjectId; created_at: Date; preview: string },
  ): Promise<void> {
    this.#requireGrant(presented, 'recordLastMessage');
    await this.collection.updateOne(
      { name: 'recordLastMessage', idempotent: true, grant: lastMessageGrant, followUp: true },
      {
        _id: conversationId,
        // Newest by (sent_at, message id): messages created in the same millisecond still have one order.
        $or: [
          { last_message: { $exists: false } },
          { 'last_message.sent_at': { $lt: message.created_at } },
          { 'last_message.sent_at': message.created_at, 'last_message.message_id': { $lt: message._id } },
        ],
      },
      { $set: { last_message: lastMessageOf(message) }, $max: { updated_at: message.created_at } },
    );
  }

  /**
   * Moves `last_message` off a message that is no longer live (soft delete, purge) to `newest()`,
   * or removes it when there is none. A message arriving meanwhile wins: the change applies only
   * while `last_message` still names `removed`.
   * @internal called by the messages repository only (`grant`).
   */
  async replaceLastMessage(
    presented: symbol,
    conversationId: ObjectId,
    removed: ObjectId,
    newest: () => Promise<LastMessageSource | null>,
  ): Promise<void> {
    this.#requireGrant(presented, 'replaceLastMessage');
    const filter = { _id: conversationId, 'last_message.message_id': removed };
    const [current] = await this.collection.find('replaceLastMessage', filter, { limit: 1, projection: { _id: 1 } });
    if (!current) return;
    const next = await newest();
    const operation = { name: 'replaceLastMessage', idempotent: true, grant: lastMessageGrant, followUp: true };
    if (next) {
      const preview = next.content?.encrypted_preview ?? '';
      await this.collection.updateOne(operation, filter, { $set: { last_message: lastMessageOf({ ...next, preview }) } });
    } else {
      await this.collection.updateOne(operation, filter, { $unset: { last_message: '' } });
    }
  }

  /**
   * Compares `last_message` with the newest live message and repairs it when it drifted.
   * `includeDeleted` also repairs a soft-deleted conversation (erasure: its `last_message` must not
   * keep naming an erased sender).
   * @returns whether it was right, and the message id it names now.
   */
  async verifyLastMessage(
    conversationId: IdInput,
    newest: () => Promise<LastMessageSource | null>,
    options: { includeDeleted?: boolean } = {},
  ): Promise<{ consistent: boolean; messageId: ObjectId | null }> {
    const id = this.parseId(conversationId, 'conversationId');
    const conversation = await this.getById(id, {
      projection: { last_message: 1 },
      ...(options.includeDeleted === true && { includeDeleted: true }),
    });
    const next = await newest();
    const stored = conversation.last_message?.message_id ?? null;
    const consistent = String(stored) === String(next?._id ?? null);
    if (!consistent) {
      const operation = { name: 'verifyLastMessage (repair)', idempotent: true, grant: lastMessageGrant };
      await this.collection.updateOne(
        operation,
        { _id: id },
        next
          ? { $set: { last_message: lastMessageOf({ ...next, preview: next.content?.encrypted_preview ?? '' }) } }
          : { $unset: { last_message: '' } },
      );
    }
    return { consistent, messageId: next?._id ?? null };
  }

  /**
   * `userId`'s read position: the newest message it has read and when (null: nothing read yet).
   * @throws {NotFoundError} when the conversation is not live or `userId` is not a participant.
   */
  async readPosition(conversationId: IdInput, userId: IdInput): Promise<ReadPosition | null> {
    const id = this.parseId(conversationId, 'conversationId');
    return readPositionOf(this.collection, id, this.parseId(userId, 'userId'), 'readPosition');
  }

  /**
   * Moves a participant's read position forward to `upTo` (one update; never backwards).
   * @internal called by `messages.markConversationRead` only, after it checked `upTo` (`grant`).
   */
  async advanceReadPosition(presented: symbol, conversationId: ObjectId, userId: ObjectId, upTo: ObjectId): Promise<ReadAdvance | null> {
    if (presented !== readPositionGrant)
      throw new InvariantError('conversations.advanceReadPosition', 'read positions are moved by messages.markConversationRead only');
    return advanceReadPosition(this.collection, conversationId, userId, upTo, this.now());
  }

  #requireGrant(presented: symbol, operation: string): void {
    if (presented !== lastMessageGrant)
      throw new InvariantError(`conversations.${operation}`, 'last_message is moved by the messages repository only');
  }
}

/** What `last_message` is made from: a stored message. */
interface LastMessageSource {
  _id: ObjectId;
  sender_id: ObjectId;
  created_at: Date;
  content?: { encrypted_preview?: string | undefined };
}

function lastMessageOf(message: { _id: ObjectId; sender_id: ObjectId; created_at: Date; preview: string }) {
  return { message_id: message._id, content_preview: message.preview, sender_id: message.sender_id, sent_at: message.created_at };
}
