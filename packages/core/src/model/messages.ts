import type { Document, ObjectId } from 'mongodb';
import { z } from 'zod';
import { Coalescer, type ItemOutcome } from '../batching/coalescer.js';
import { cacheTags } from '../cache/read-cache.js';
import { isCaasDbError, NotFoundError, ValidationError } from '../errors.js';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import type { OperationDeclaration } from '../pipeline/operation.js';
import { bulkWriteFailureOf } from '../repository/bulk-write-failures.js';
import { Repository, type RepositoryContext, type RepositoryDefinition } from '../repository/repository.js';
import type { CreateInput, StoredDocument } from '../repository/repository-types.js';
import { dateSchema, type IdInput, objectIdSchema, safeKeySchema, tenantIdSchema, text } from '../schema/primitives.js';
import { currentSession } from '../transactions/transaction-context.js';
import type { ConversationRepository } from './conversations.js';
import { lastMessageGrant } from './internal-grants.js';
import { compactDocument, compactEnvelopeCollection, MESSAGE_EMPTY_DEFAULTS, withEmptyDefaults } from './message-envelope.js';
import { type MessageReferenceOptions, MessageReferences } from './message-references.js';
import {
  atMostParticipants,
  type ConversationReadMark,
  markReadInput,
  othersMessagesIn,
  type ReceiptPolicy,
  readPositionGrant,
  receiptPolicySchema,
  recordReceipts,
  unreadCountInput,
} from './read-positions.js';

/** Options of `verifyLastMessage`. */
const verifyOptionsSchema = z.strictObject({ includeDeleted: z.boolean().optional() });
/** Most recipients one message's content key is wrapped for. */
const MAX_RECIPIENT_KEYS = 1024;
/** How many recent counter changes a message remembers, to apply each exactly once. */
const COUNTER_WINDOW = 64;

/**
 * The grant of this module's own methods: only they write the fields the model guards (threads,
 * receipts, reactions, deletion). Module-private, so no subclass or generic method can present it.
 */
const grant = Symbol('messages');

/** Kinds of message content. */
export const contentTypes = ['text', 'file', 'image', 'video', 'audio', 'system'] as const;
/** Delivery states, in order: a message only moves forward (`deleted` is terminal). */
export const messageStatuses = ['sent', 'delivered', 'read', 'deleted'] as const;

/** A blind-index search token: an opaque hash the client derived from a word (see `@caas-db/search`). */
const searchTokenSchema = z.string().regex(/^[A-Za-z0-9_-]{8,128}$/, 'must be an opaque token of 8-128 base64url characters');

/** The fields of a `messages` document (the plan's 2.3). Content is ciphertext: the library never needs plaintext. */
export const messageSchema = z.strictObject({
  tenant_id: tenantIdSchema,
  conversation_id: objectIdSchema,
  sender_id: objectIdSchema,
  content: z.strictObject({
    type: z.enum(contentTypes),
    /** End-to-end encrypted payload, opaque to the server. */
    encrypted_data: z
      .string()
      .min(1)
      .max(256 * 1024),
    /** Per-recipient encrypted content keys: recipient user id → wrapped key. */
    encrypted_key: z
      .record(safeKeySchema, z.string().min(1).max(4096))
      .refine((keys) => Object.keys(keys).length <= MAX_RECIPIENT_KEYS, `must hold at most ${MAX_RECIPIENT_KEYS} recipient keys`)
      .optional(),
    /** Encrypted preview for conversation lists. */
    encrypted_preview: text(4096).optional(),
    /** The file a file/image/video/audio message carries. */
    file_id: objectIdSchema.optional(),
  }),
  reactions: z
    .array(z.strictObject({ user_id: objectIdSchema, emoji: z.string().min(1).max(32), created_at: dateSchema }))
    .max(10_000)
    .default([]),
  thread: z
    .strictObject({
      /** The message this one replies to. */
      parent_id: objectIdSchema.optional(),
      /** Replies this message has (kept by `create`, `softDelete` and `restore`). */
      reply_count: z.number().int().min(0).default(0),
      /**
       * Ids of the latest counter changes applied to `reply_count` (bounded): a change re-sent
       * after an uncertain outcome finds its id here and is not applied twice.
       */
      applied: z.array(z.string().max(64)).max(COUNTER_WINDOW).optional(),
    })
    .optional(),
  read_by: z
    .array(z.strictObject({ user_id: objectIdSchema, read_at: dateSchema }))
    .max(100_000)
    .default([]),
  status: z.enum(messageStatuses).default('sent'),
  /** The status a soft-deleted message had, so `restore` returns it there. */
  previous_status: z.enum(messageStatuses).optional(),
  /** Blind-index tokens for search over encrypted content. */
  search_tokens: z.array(searchTokenSchema).max(512).optional(),
  /** The key version the search tokens were derived with. */
  search_key_version: z.number().int().min(1).optional(),
  edited_at: dateSchema.optional(),
  edit_count: z.number().int().min(0).optional(),
});

/** A stored message. */
export type Message = StoredDocument<typeof messageSchema>;

/** What `messages.create` accepts: who, where and the encrypted content; optionally a thread parent and search tokens. */
export type CreateMessageInput = Pick<
  CreateInput<typeof messageSchema>,
  'conversation_id' | 'sender_id' | 'content' | 'search_tokens' | 'search_key_version' | '_id'
> & {
  tenant_id?: string;
  thread?: { parent_id?: IdInput };
};

/** Pagination options of `findByConversation` (the plan's `PaginationOptions`). */
export type PaginationOptions = PageOptions;

/** The plan's `MessageRepository` interface (3.2), which {@link MessageRepository} implements. */
export interface MessageRepositoryContract {
  findByConversation(conversationId: string, options: PaginationOptions): Promise<Page<Message>>;
  create(message: CreateMessageInput): Promise<Message>;
  markAsRead(messageId: string, userId: string): Promise<void>;
  softDelete(messageId: string): Promise<boolean>;
  searchMessages(query: string, conversationId?: string): Promise<Message[]>;
}

/** The definition of `messages`. */
export const messagesDefinition: RepositoryDefinition<typeof messageSchema> = {
  collection: 'messages',
  schema: messageSchema,
  tenantOwned: true,
  schemaVersion: 1,
  softDelete: true,
  sortable: ['created_at'],
  creatable: ['tenant_id', 'conversation_id', 'sender_id', 'content', 'thread', 'search_tokens', 'search_key_version'],
  invariants: {
    guardedFields: ['thread', 'read_by', 'reactions', 'deleted_at', 'previous_status', 'edited_at', 'edit_count'],
    // The sender stays writable: erasure rewrites it to a pseudonym.
    immutableFields: ['conversation_id'],
    initialValues: { read_by: [], reactions: [], deleted_at: null },
    forwardOnly: { status: messageStatuses },
    isGranted: (presented) => presented === grant,
  },
  indexes: [
    {
      name: 'tenant_conversation_id',
      key: { tenant_id: 1, conversation_id: 1, _id: 1 },
      purpose: 'a conversation’s history, newest first (findByConversation, read backwards); supports the shard key (docs/sharding.md)',
    },
    {
      name: 'tenant_conversation_created',
      key: { tenant_id: 1, conversation_id: 1, created_at: -1, _id: -1 },
      purpose: 'a conversation’s messages in a time range (findInRange)',
    },
    {
      name: 'tenant_thread_parent',
      key: { tenant_id: 1, 'thread.parent_id': 1, _id: 1 },
      purpose: 'a thread’s replies, oldest first (listReplies, recountReplies)',
    },
    { name: 'tenant_sender', key: { tenant_id: 1, sender_id: 1, _id: -1 }, purpose: 'a user’s messages (export, erase)' },
    {
      name: 'tenant_search_tokens',
      key: { tenant_id: 1, search_tokens: 1, _id: -1 },
      purpose: 'blind-index search over encrypted content (searchMessages)',
    },
  ],
  queries: [
    { name: 'findByConversation', equality: ['tenant_id', 'conversation_id'], sort: [['_id', -1]] },
    {
      name: 'findInRange',
      equality: ['tenant_id', 'conversation_id'],
      sort: [
        ['created_at', -1],
        ['_id', -1],
      ],
    },
    { name: 'listReplies', equality: ['tenant_id', 'thread.parent_id'], sort: [['_id', 1]] },
    { name: 'recountReplies', equality: ['tenant_id', 'thread.parent_id'] },
    { name: 'listBySender', equality: ['tenant_id', 'sender_id'], sort: [['_id', -1]] },
    { name: 'softDeleteWhere (sender)', equality: ['tenant_id', 'sender_id'], residual: ['deleted_at'] },
    { name: 'softDeleteWhere (conversation)', equality: ['tenant_id', 'conversation_id'], residual: ['deleted_at'] },
    { name: 'removeUserTraces (tenant prefix)', equality: ['tenant_id'], residual: ['reactions.user_id', 'read_by.user_id'] },
    { name: 'searchMessages', equality: ['tenant_id', 'search_tokens'], sort: [['_id', -1]], residual: ['conversation_id'] },
    { name: 'findById / markAsRead / reactions / edit', equality: ['_id'] },
    {
      name: 'unreadCount / markConversationRead (receipts)',
      equality: ['tenant_id', 'conversation_id'],
      range: ['_id'],
      residual: ['deleted_at', 'sender_id', 'read_by.user_id', 'status'],
    },
    {
      name: 'newestLive (last_message)',
      equality: ['tenant_id', 'conversation_id'],
      sort: [
        ['created_at', -1],
        ['_id', -1],
      ],
    },
  ],
};

const threadInput = z.strictObject({ parent_id: objectIdSchema });
const reactionInput = z.strictObject({ messageId: objectIdSchema, userId: objectIdSchema, emoji: z.string().min(1).max(32) });
const editInput = messageSchema.shape.content.pick({ encrypted_data: true, encrypted_key: true, encrypted_preview: true });

/**
 * Messages: the plan's `MessageRepository` plus reactions, threads, read receipts, status
 * transitions and edits. Every operation that changes a counter or a denormalized field does so
 * with an atomic operator in the same call.
 */
export class MessageRepository extends Repository<typeof messageSchema, CreateMessageInput> implements MessageRepositoryContract {
  #conversations: ConversationRepository | undefined;
  #references: MessageReferences | undefined;
  #receiptPolicy: ReceiptPolicy = receiptPolicySchema.parse({});

  /** Stores the compact envelope (no empty `reactions`, `read_by`, `deleted_at`); reads restore them. */
  constructor(definition: RepositoryDefinition<typeof messageSchema>, context: RepositoryContext) {
    super(definition, { ...context, collection: compactEnvelopeCollection(context.collection, MESSAGE_EMPTY_DEFAULTS) });
  }

  /** Compares a re-sent insert with the stored one in their stored (compact) form; returns the full form. */
  protected override async insertOnce(operation: OperationDeclaration, document: Document, callerChoseId: boolean): Promise<Document> {
    const compact = compactDocument(document, MESSAGE_EMPTY_DEFAULTS);
    const stored = await super.insertOnce(operation, compact, callerChoseId);
    return stored === compact ? document : withEmptyDefaults(stored, MESSAGE_EMPTY_DEFAULTS);
  }

  /** @internal the data layer sets where `markConversationRead` writes per-message receipts (`receipts`). */
  useReceiptPolicy(policy: ReceiptPolicy): void {
    this.#receiptPolicy = policy;
  }

  /**
   * @internal the data layer links the conversations repository so `create` can keep `last_message`
   * current and, with `references`, check that the conversation is live and the sender takes part.
   */
  linkConversations(conversations: ConversationRepository, references?: MessageReferenceOptions): void {
    this.#conversations = conversations;
    if (references === undefined) return;
    this.#references = new MessageReferences(
      {
        isParticipant: (conversationId, senderId) => conversations.isParticipant(conversationId, senderId),
        stateOf: async (conversationId) => {
          const found = await conversations.findById(conversationId, { includeDeleted: true, projection: { deleted_at: 1 } });
          return found === null ? 'missing' : found.deleted_at ? 'deleted' : 'live';
        },
      },
      references,
    );
    conversations.onParticipantsChanged((conversationId) => this.#references?.forget(conversationId));
  }

  /**
   * `create`, `createMany` and `bulkWrite` inserts: with the reference check on, each distinct
   * conversation and sender of the prepared documents, once (`ReferentialIntegrityError`, nothing written).
   */
  protected override async checkInserts(documents: readonly Document[]): Promise<void> {
    const references = this.#references;
    if (!references) return;
    const pairs = new Map<string, [string, ObjectId, ObjectId]>();
    for (const document of documents) {
      const tenant = this.collection.tenant ?? String(document.tenant_id);
      const conversation = document.conversation_id as ObjectId;
      const sender = document.sender_id as ObjectId;
      pairs.set(`${tenant}\u0000${conversation.toHexString()}\u0000${sender.toHexString()}`, [tenant, conversation, sender]);
    }
    for (const [tenant, conversation, sender] of pairs.values()) await references.check(tenant, conversation, sender);
  }

  /**
   * Stores a message. A reply (`thread.parent_id`) increments the parent's `reply_count` atomically
   * (exact under concurrent replies); the conversation's `last_message` and `updated_at` move forward.
   * @throws {ValidationError} when the input is invalid or the thread parent is not in the conversation; nothing is written.
   * @throws {ReferentialIntegrityError} with `integrity.messages` on, when the conversation is missing
   * or deleted or the sender is not a participant; nothing is written.
   */
  override async create(input: CreateMessageInput): Promise<Message> {
    if (typeof input !== 'object' || input === null || Array.isArray(input))
      throw new ValidationError('message', [{ path: '', message: 'must be a plain object', code: 'invalid_type' }]);
    const { thread, ...rest } = input;
    const parentId = thread === undefined ? undefined : this.parse(threadInput, thread, 'message.thread').parent_id;
    const document = this.prepareInsert({ ...rest, ...(parentId && { thread: { parent_id: parentId } }) }, 'message');
    const callerChoseId = (rest as { _id?: unknown })._id !== undefined;
    await this.checkInserts([document]);
    if (parentId) {
      const parent = await this.collection.find(
        'create (thread parent)',
        { _id: parentId, conversation_id: document.conversation_id, deleted_at: null },
        { limit: 1, projection: { _id: 1 } },
      );
      if (parent.length === 0) {
        throw new ValidationError('message', [
          { path: 'thread.parent_id', message: 'is not a live message of this conversation', code: 'invalid_reference' },
        ]);
      }
      // Insert first, then count it: both are idempotent (the insert by its _id, the count by the
      // reply's id in the parent's applied window), so a retry after an uncertain outcome, by the
      // pipeline or by the caller with the same _id, stores and counts the reply exactly once.
      const stored = await this.insertOnce({ name: 'create', idempotent: true, grant }, document, callerChoseId);
      await afterApplied(async () => {
        await this.#applyReplyCount(parentId, `+${String(document._id)}`, 1);
        await this.#recordLastMessages([stored]);
      });
      return stored as Message;
    }
    if (this.insertBatching && !currentSession() && !callerChoseId) {
      // Coalesced with concurrent sends of the same tenant into one insertMany; the batch also
      // updates each conversation's last_message once. A re-send with its own _id goes alone, so
      // that meeting its earlier attempt is recognized as the same message.
      this.#batcher ??= new Coalescer(this.insertBatching, (documents) => this.#insertBatch(documents));
      const key = this.collection.tenant ?? '';
      // Nothing of this tenant in flight: the plain insert, counted in flight so that concurrent
      // sends arriving meanwhile batch up behind it.
      const alone = this.#batcher.runAlone(key, () => this.#insertOne(document, false));
      return (await (alone ?? this.#batcher.add(key, document))) as Message;
    }
    return this.#insertOne(document, callerChoseId);
  }

  /** Inserts one message (idempotent by its `_id`) and moves its conversation's `last_message`. */
  async #insertOne(document: Document, callerChoseId: boolean): Promise<Message> {
    const stored = await this.insertOnce({ name: 'create', idempotent: true, grant }, document, callerChoseId);
    await afterApplied(() => this.#recordLastMessages([stored]));
    return stored as Message;
  }

  #batcher: Coalescer<Document, Document> | undefined;

  /** Inserts a batch unordered: each document succeeds or fails on its own. */
  async #insertBatch(documents: Document[]): Promise<ItemOutcome<Document>[]> {
    let failures = new Map<number, unknown>();
    try {
      await this.collection.insertMany({ name: 'create (batched)', idempotent: true, grant }, documents, false);
    } catch (error) {
      const failure = bulkWriteFailureOf(error, this.name);
      if (!failure) throw error;
      failures = failure.failures;
    }
    await afterApplied(() => this.#recordLastMessages(documents.filter((_, index) => !failures.has(index))));
    return documents.map((document, index) =>
      failures.has(index) ? { ok: false, error: failures.get(index) } : { ok: true, value: document },
    );
  }

  /** Moves each conversation's `last_message` to the newest of `documents` in it. */
  async #recordLastMessages(documents: Document[]): Promise<void> {
    if (!this.#conversations) return;
    const conversations = this.#conversations;
    const newest = new Map<string, Document>();
    for (const document of documents) {
      const key = String(document.conversation_id);
      const current = newest.get(key);
      if (!current || String(document._id) > String(current._id)) newest.set(key, document);
    }
    await Promise.all(
      [...newest.values()].map((document) =>
        conversations.recordLastMessage(lastMessageGrant, document.conversation_id as ObjectId, {
          _id: document._id as ObjectId,
          sender_id: document.sender_id as ObjectId,
          created_at: document.created_at as Date,
          preview: (document.content as Message['content']).encrypted_preview ?? '',
        }),
      ),
    );
  }

  /** A conversation's history, newest first, one keyset page at a time. */
  async findByConversation(conversationId: IdInput, options: PaginationOptions = {}): Promise<Page<Message>> {
    const tenant = this.requireTenant('findByConversation');
    const conversation = this.parseId(conversationId, 'conversationId');
    const filter = { tenant_id: tenant, conversation_id: conversation, deleted_at: null };
    const read = () => this.page<Message>('findByConversation', filter, { ...options, sort: { field: '_id', direction: 'desc' } });
    const tags = [cacheTags.list(tenant, this.name, 'conversation_id', conversation), cacheTags.lists(tenant, this.name)];
    return this.cachedRead('findByConversation', { conversation: conversation.toHexString(), options }, tags, read);
  }

  /** A conversation's messages created in `[from, to)`, newest first. */
  async findInRange(conversationId: IdInput, range: { from: Date; to: Date }, options: PaginationOptions = {}): Promise<Page<Message>> {
    const { from, to } = this.parse(z.strictObject({ from: dateSchema, to: dateSchema }), range, 'range');
    const filter = {
      tenant_id: this.requireTenant('findInRange'),
      conversation_id: this.parseId(conversationId, 'conversationId'),
      created_at: { $gte: from, $lt: to },
      deleted_at: null,
    };
    return this.page('findInRange', filter, { ...options, sort: { field: 'created_at', direction: 'desc' } });
  }

  /** The replies of a thread, oldest first. */
  async listReplies(parentId: IdInput, options: PaginationOptions = {}): Promise<Page<Message>> {
    const filter = {
      tenant_id: this.requireTenant('listReplies'),
      'thread.parent_id': this.parseId(parentId, 'parentId'),
      deleted_at: null,
    };
    return this.page('listReplies', filter, { ...options, sort: { field: '_id', direction: 'asc' } });
  }

  /** A user's messages, newest first. */
  async listBySender(senderId: IdInput, options: PaginationOptions = {}): Promise<Page<Message>> {
    const filter = { tenant_id: this.requireTenant('listBySender'), sender_id: this.parseId(senderId, 'senderId'), deleted_at: null };
    return this.page('listBySender', filter, { ...options, sort: { field: '_id', direction: 'desc' } });
  }

  /**
   * Records that `userId` read the message; the status moves to `read`. Idempotent, also under
   * concurrent calls: a user appears in `read_by` at most once.
   */
  async markAsRead(messageId: IdInput, userId: IdInput): Promise<void> {
    const id = this.parseId(messageId, 'messageId');
    const user = this.parseId(userId, 'userId');
    const now = this.now();
    const receipt = await this.collection.updateOne(
      { name: 'markAsRead', idempotent: true, grant },
      { _id: id, deleted_at: null, 'read_by.user_id': { $ne: user } },
      { $push: { read_by: { user_id: user, read_at: now } }, $set: { updated_at: now } },
    );
    if (receipt.matchedCount === 0 && !(await this.exists({ _id: id }))) throw new NotFoundError(this.name, id.toHexString());
    await afterApplied(() => this.#advanceStatus('markAsRead', id, 'read'));
  }

  /**
   * Marks the conversation read for `userId` up to `upTo` (default: its newest message): one update
   * of the participant's read position, which only moves forward, also under concurrent calls. In
   * direct conversations and groups of at most `receipts.perMessageUpTo` participants, the messages
   * others sent in between also get `userId`'s `read_by` receipt and the status `read`; larger
   * groups keep only the position (see docs/performance.md, read receipts).
   * @throws {NotFoundError} when the conversation is not live, `userId` is not a participant, or
   * `upTo` is not a message of the conversation; nothing is written.
   */
  async markConversationRead(conversationId: IdInput, userId: IdInput, upTo?: IdInput): Promise<ConversationReadMark> {
    const tenant = this.requireTenant('markConversationRead');
    const input = this.parse(markReadInput, { conversationId, userId, ...(upTo !== undefined && { upTo }) }, 'markConversationRead');
    const conversations = this.#linked('markConversationRead');
    const target = input.upTo ?? (await this.#newestOf(tenant, input.conversationId));
    if (input.upTo && !(await this.exists({ _id: input.upTo, conversation_id: input.conversationId }, { includeDeleted: true })))
      throw new NotFoundError(this.name, `${input.upTo.toHexString()} in conversation ${input.conversationId.toHexString()}`);
    if (!target) {
      const position = await conversations.readPosition(input.conversationId, input.userId);
      return { advanced: false, messageId: position?.messageId ?? null, receipts: 0 };
    }
    const before = await conversations.advanceReadPosition(readPositionGrant, input.conversationId, input.userId, target);
    if (!before) {
      // Not moved: the user is no participant (throws), or its position already is at target or further.
      const position = await conversations.readPosition(input.conversationId, input.userId);
      return { advanced: false, messageId: position?.messageId ?? null, receipts: 0 };
    }
    const { perMessageUpTo } = this.#receiptPolicy;
    const small =
      perMessageUpTo > 0 &&
      (before.type === 'direct' || (await conversations.exists(atMostParticipants(input.conversationId, perMessageUpTo) as never)));
    const receipts = small
      ? await recordReceipts(
          this.collection,
          grant,
          othersMessagesIn(tenant, input.conversationId, input.userId, { after: before.previous, upTo: target }),
          input.userId,
          this.now(),
        )
      : 0;
    return { advanced: true, messageId: target, receipts };
  }

  /**
   * How many live messages others sent after `userId`'s read position (all of them when it has read
   * nothing), counted up to `max` (default 100): a result equal to `max` means "at least `max`". A
   * bounded count over the conversation's history index, so its cost follows the unread messages
   * (at most `max`), not the size of the group; see docs/performance.md for why no counter is kept.
   * @throws {NotFoundError} when the conversation is not live or `userId` is not a participant.
   */
  async unreadCount(conversationId: IdInput, userId: IdInput, options: { max?: number } = {}): Promise<number> {
    const tenant = this.requireTenant('unreadCount');
    const input = this.parse(unreadCountInput, { conversationId, userId, ...(options ?? {}) }, 'unreadCount');
    const position = await this.#linked('unreadCount').readPosition(input.conversationId, input.userId);
    const filter = othersMessagesIn(tenant, input.conversationId, input.userId, { after: position?.messageId ?? null });
    return this.collection.count('unreadCount', filter, { limit: input.max });
  }

  #linked(operation: string): ConversationRepository {
    if (!this.#conversations)
      throw new ValidationError(`messages.${operation}`, [{ path: '', message: 'no conversations repository is linked', code: 'custom' }]);
    return this.#conversations;
  }

  /** The newest message of a conversation (by `_id`, the order positions compare in), or null. */
  async #newestOf(tenant: string, conversationId: ObjectId): Promise<ObjectId | null> {
    const [newest] = await this.collection.find(
      'markConversationRead (newest)',
      { tenant_id: tenant, conversation_id: conversationId, deleted_at: null },
      { sort: { _id: -1 }, limit: 1, projection: { _id: 1 } },
    );
    return (newest?._id as ObjectId | undefined) ?? null;
  }

  /** Moves a message from `sent` to `delivered`; a message already further along is left as is. */
  async markDelivered(messageId: IdInput): Promise<void> {
    const id = this.parseId(messageId, 'messageId');
    if (!(await this.#advanceStatus('markDelivered', id, 'delivered')) && !(await this.exists({ _id: id }))) {
      throw new NotFoundError(this.name, id.toHexString());
    }
  }

  /** Sets `status` to `to` only from an earlier state, so it never goes backwards. */
  async #advanceStatus(operation: string, id: ObjectId, to: 'delivered' | 'read'): Promise<boolean> {
    const earlier = messageStatuses.slice(0, messageStatuses.indexOf(to));
    const result = await this.collection.updateOne(
      { name: operation, idempotent: true },
      { _id: id, deleted_at: null, status: { $in: earlier } },
      { $set: { status: to, updated_at: this.now() } },
    );
    return result.modifiedCount === 1;
  }

  /**
   * Soft-deletes the message (status `deleted`, the status it had kept for `restore`; its search
   * tokens removed, which `restore` does not bring back: the client re-derives them); it
   * disappears from every default read, a reply no longer counts in its parent's `reply_count`, and
   * the conversation's `last_message` moves to the newest live message (or is removed).
   */
  override async softDelete(messageId: IdInput): Promise<boolean> {
    const id = this.parseId(messageId, 'messageId');
    const now = this.now();
    const before = await this.collection.findOneAndUpdate(
      { name: 'softDelete', grant },
      { _id: id, deleted_at: null },
      // The blind-index tokens go with it: a deleted message must not stay findable by its words.
      { $set: { deleted_at: now, status: 'deleted', updated_at: now }, $unset: { search_tokens: '', search_key_version: '' } },
      { returnDocument: 'before', projection: { thread: 1, status: 1, conversation_id: 1, tenant_id: 1 } },
    );
    if (!before) {
      if (await this.exists({ _id: id }, { includeDeleted: true })) return false;
      throw new NotFoundError(this.name, id.toHexString());
    }
    const message = before as Message;
    await this.collection.updateOne(
      { name: 'softDelete (previous status)', idempotent: true, grant },
      { _id: id, deleted_at: now },
      { $set: { previous_status: message.status } },
    );
    const parent = message.thread?.parent_id;
    if (parent) await this.#applyReplyCount(parent, `-${id.toHexString()}@${now.getTime()}`, -1);
    await this.#conversations?.replaceLastMessage(lastMessageGrant, message.conversation_id, id, () =>
      this.#newestLive(message.tenant_id, message.conversation_id),
    );
    return true;
  }

  /** Restores a soft-deleted message to the status it had when it was deleted. */
  override async restore(messageId: IdInput): Promise<boolean> {
    const id = this.parseId(messageId, 'messageId');
    const now = this.now();
    const restored = await this.collection.findOneAndUpdate(
      { name: 'restore', grant },
      { _id: id, deleted_at: { $ne: null } },
      { $set: { deleted_at: null, updated_at: now } },
      { projection: { thread: 1, read_by: 1, previous_status: 1, status: 1, conversation_id: 1, sender_id: 1, created_at: 1, content: 1 } },
    );
    if (!restored) {
      if (await this.exists({ _id: id })) return false;
      throw new NotFoundError(this.name, id.toHexString());
    }
    const message = restored as Message;
    const status = message.previous_status ?? (message.read_by?.length ? 'read' : 'sent');
    await this.collection.updateOne(
      { name: 'restore (status)', idempotent: true, grant },
      { _id: id, deleted_at: null, status: 'deleted' },
      { $set: { status }, $unset: { previous_status: '' } },
    );
    const parent = message.thread?.parent_id;
    if (parent) await this.#applyReplyCount(parent, `+${id.toHexString()}@${now.getTime()}`, 1);
    await this.#recordLastMessages([message]);
    return true;
  }

  /**
   * Adds `delta` to a parent's `reply_count` exactly once for `change`: the change's id is kept in a
   * bounded window on the parent and the update only applies when it is not there yet, so the
   * update is idempotent and may be re-sent after an uncertain outcome.
   */
  async #applyReplyCount(parent: ObjectId, change: string, delta: 1 | -1): Promise<void> {
    await this.collection.updateOne(
      { name: 'reply count', idempotent: true, grant, followUp: true },
      { _id: parent, 'thread.applied': { $ne: change } },
      { $inc: { 'thread.reply_count': delta }, $push: { 'thread.applied': { $each: [change], $slice: -COUNTER_WINDOW } } },
    );
  }

  /** The newest live message of a conversation, for `last_message`. */
  async #newestLive(tenant: string, conversationId: ObjectId): Promise<Message | null> {
    const [newest] = await this.collection.find(
      'newestLive',
      { tenant_id: tenant, conversation_id: conversationId, deleted_at: null },
      { sort: { created_at: -1, _id: -1 }, limit: 1 },
    );
    return (newest as Message | undefined) ?? null;
  }

  /**
   * Adds a reaction. One per user per emoji: idempotent, also under concurrent calls.
   * @returns true when it was added.
   */
  async addReaction(messageId: IdInput, userId: IdInput, emoji: string): Promise<boolean> {
    const input = this.parse(reactionInput, { messageId, userId, emoji }, 'reaction');
    const result = await this.collection.updateOne(
      { name: 'addReaction', idempotent: true, grant },
      { _id: input.messageId, deleted_at: null, reactions: { $not: { $elemMatch: { user_id: input.userId, emoji: input.emoji } } } },
      { $push: { reactions: { user_id: input.userId, emoji: input.emoji, created_at: this.now() } }, $set: { updated_at: this.now() } },
    );
    if (result.matchedCount === 1) return true;
    if (!(await this.exists({ _id: input.messageId }))) throw new NotFoundError(this.name, input.messageId.toHexString());
    return false;
  }

  /** Removes a reaction. @returns true when one was removed. */
  async removeReaction(messageId: IdInput, userId: IdInput, emoji: string): Promise<boolean> {
    const input = this.parse(reactionInput, { messageId, userId, emoji }, 'reaction');
    const reaction = { user_id: input.userId, emoji: input.emoji };
    const result = await this.collection.updateOne(
      { name: 'removeReaction', idempotent: true, grant },
      { _id: input.messageId, deleted_at: null, reactions: { $elemMatch: reaction } },
      { $pull: { reactions: reaction }, $set: { updated_at: this.now() } },
    );
    if (result.matchedCount === 1) return true;
    if (!(await this.exists({ _id: input.messageId }))) throw new NotFoundError(this.name, input.messageId.toHexString());
    return false;
  }

  /**
   * Replaces the encrypted content of a live message, by its sender only.
   * @throws {NotFoundError} when no live message with this id was sent by `senderId`.
   */
  async edit(messageId: IdInput, senderId: IdInput, content: z.input<typeof editInput>): Promise<Message> {
    const id = this.parseId(messageId, 'messageId');
    const sender = this.parseId(senderId, 'senderId');
    const parsed = this.parse(editInput, content, 'content');
    const set: Record<string, unknown> = { edited_at: this.now(), updated_at: this.now() };
    for (const [field, value] of Object.entries(parsed)) if (value !== undefined) set[`content.${field}`] = value;
    const updated = await this.collection.findOneAndUpdate(
      { name: 'edit', grant },
      { _id: id, sender_id: sender, deleted_at: null },
      { $set: set, $inc: { edit_count: 1 } },
    );
    if (!updated) throw new NotFoundError(this.name, `${id.toHexString()} sent by ${sender.toHexString()}`);
    return updated as Message;
  }

  /**
   * Finds live messages carrying every given blind-index token (newest first), optionally in one
   * conversation: the first page of {@link searchMessagesPage} (at most 50), as the plan's
   * `MessageRepository` contract returns it. Content is ciphertext, so `query` is a space-separated
   * list of tokens the client derived from its words (`@caas-db/search` provides the derivation);
   * plaintext never reaches the server.
   */
  async searchMessages(query: string | readonly string[], conversationId?: IdInput): Promise<Message[]> {
    return (await this.searchMessagesPage(query, { ...(conversationId !== undefined && { conversationId }), limit: 50 })).items;
  }

  /**
   * One keyset page of the live messages carrying every given blind-index token, newest first:
   * pass `nextCursor` back as `cursor` for the next page, until it is null.
   */
  async searchMessagesPage(
    query: string | readonly string[],
    options: PaginationOptions & { conversationId?: IdInput } = {},
  ): Promise<Page<Message>> {
    const tokens = this.parse(
      z.array(searchTokenSchema).min(1).max(32),
      typeof query === 'string' ? query.split(/\s+/).filter(Boolean) : query,
      'query',
    );
    const { conversationId, ...page } = (options ?? {}) as PaginationOptions & { conversationId?: IdInput };
    const filter: Record<string, unknown> = {
      tenant_id: this.requireTenant('searchMessages'),
      search_tokens: { $all: tokens },
      deleted_at: null,
    };
    if (conversationId !== undefined) filter.conversation_id = this.parseId(conversationId, 'conversationId');
    return this.page<Message>('searchMessages', filter, { ...page, sort: { field: '_id', direction: 'desc' } });
  }

  /**
   * Soft-deletes every live message of a conversation (the cascade of deleting the conversation;
   * also `@caas-db/lifecycle`'s erase of a sender): status `deleted`, search tokens removed.
   * `last_message` and reply counts are left to {@link verifyLastMessage} and {@link recountReplies}.
   * `tenant` is read only when the repository has none (bound or ambient).
   * @returns how many messages it deleted.
   */
  async softDeleteWhere(scope: { conversationId: IdInput } | { senderId: IdInput }, tenant?: string): Promise<number> {
    const tenantId = this.tenant ?? this.parse(tenantIdSchema, tenant, 'tenant');
    const filter: Document = { tenant_id: tenantId, deleted_at: null };
    if ('conversationId' in scope) filter.conversation_id = this.parseId(scope.conversationId, 'conversationId');
    else filter.sender_id = this.parseId((scope as { senderId: IdInput }).senderId, 'senderId');
    const now = this.now();
    const result = await this.collection.updateMany({ name: 'softDeleteWhere', idempotent: true, grant }, filter, {
      $set: { deleted_at: now, status: 'deleted', updated_at: now },
      $unset: { search_tokens: '', search_key_version: '' },
    });
    return result.modifiedCount;
  }

  /**
   * Removes one user's reactions and read receipts from every message of the tenant (erasure). It
   * reads the tenant's messages through the tenant prefix of an index: erasure is rare and no
   * index on `reactions.user_id` / `read_by.user_id` pays for itself on the write path.
   * @returns how many messages changed.
   */
  async removeUserTraces(userId: IdInput): Promise<number> {
    const tenant = this.requireTenant('removeUserTraces');
    const user = this.parseId(userId, 'userId');
    const operation = { name: 'removeUserTraces', idempotent: true, grant };
    const reactions = await this.collection.updateMany(
      operation,
      { tenant_id: tenant, 'reactions.user_id': user },
      { $pull: { reactions: { user_id: user } } },
    );
    const receipts = await this.collection.updateMany(
      operation,
      { tenant_id: tenant, 'read_by.user_id': user },
      { $pull: { read_by: { user_id: user } } },
    );
    return reactions.modifiedCount + receipts.modifiedCount;
  }

  /**
   * Checks a conversation's `last_message` against its newest live message and repairs it when it
   * drifted (after a fault between a message write and its denormalization). With
   * `includeDeleted`, a soft-deleted conversation is checked and repaired too (erasure).
   * @throws {ValidationError} for an invalid id or option.
   */
  async verifyLastMessage(
    conversationId: IdInput,
    options: { includeDeleted?: boolean } = {},
  ): Promise<{ consistent: boolean; messageId: ObjectId | null }> {
    const tenant = this.requireTenant('verifyLastMessage');
    const id = this.parseId(conversationId, 'conversationId');
    const { includeDeleted } = this.parse(verifyOptionsSchema, options, 'options');
    if (!this.#conversations)
      throw new ValidationError('messages', [{ path: '', message: 'no conversations repository is linked', code: 'custom' }]);
    return this.#conversations.verifyLastMessage(id, () => this.#newestLive(tenant, id), { includeDeleted: includeDeleted === true });
  }

  /**
   * Recomputes a thread's `reply_count` from its live replies and repairs it when it drifted.
   * @returns the stored and the actual count.
   */
  async recountReplies(parentId: IdInput): Promise<{ stored: number; actual: number }> {
    const id = this.parseId(parentId, 'parentId');
    const parent = await this.getById(id, { projection: { thread: 1 } });
    const actual = await this.collection.count('recountReplies', {
      tenant_id: this.requireTenant('recountReplies'),
      'thread.parent_id': id,
      deleted_at: null,
    });
    const stored = parent.thread?.reply_count ?? 0;
    if (stored !== actual)
      await this.collection.updateOne(
        { name: 'recountReplies (repair)', idempotent: true, grant },
        { _id: id },
        { $set: { 'thread.reply_count': actual } },
      );
    return { stored, actual };
  }
}

/**
 * Runs the follow-up commands of a write whose first command was applied (the denormalizations
 * of a stored message): when one fails, the caller must learn that the write may have happened,
 * so the error carries `outcome: 'unknown'`. Every follow-up is idempotent, so re-sending the whole
 * call with the same ids completes it exactly once.
 */
async function afterApplied(followUp: () => Promise<unknown>): Promise<void> {
  try {
    await followUp();
  } catch (error) {
    if (isCaasDbError(error)) error.outcome = 'unknown';
    throw error;
  }
}
