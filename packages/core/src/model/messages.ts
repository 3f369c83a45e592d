import type { Document, ObjectId } from 'mongodb';
import { z } from 'zod';
import { Coalescer, type ItemOutcome } from '../batching/coalescer.js';
import { cacheTags } from '../cache/read-cache.js';
import { NotFoundError, ValidationError } from '../errors.js';
import type { Page, PageOptions } from '../pagination/keyset-cursor.js';
import { bulkWriteFailureOf } from '../repository/bulk-write-failures.js';
import { Repository, type RepositoryDefinition } from '../repository/repository.js';
import type { CreateInput, StoredDocument } from '../repository/repository-types.js';
import { dateSchema, type IdInput, objectIdSchema, safeKeySchema, tenantIdSchema, text } from '../schema/primitives.js';
import { currentSession } from '../transactions/transaction-context.js';
import type { ConversationRepository } from './conversations.js';

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
    encrypted_key: z.record(safeKeySchema, z.string().min(1).max(4096)).optional(),
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
      /** Replies this message has (kept by `create`). */
      reply_count: z.number().int().min(0).default(0),
    })
    .optional(),
  read_by: z
    .array(z.strictObject({ user_id: objectIdSchema, read_at: dateSchema }))
    .max(100_000)
    .default([]),
  status: z.enum(messageStatuses).default('sent'),
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
  indexes: [
    {
      name: 'tenant_conversation_id',
      key: { tenant_id: 1, conversation_id: 1, _id: -1 },
      purpose: 'a conversation’s history, newest first (findByConversation)',
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
    { name: 'searchMessages', equality: ['tenant_id', 'search_tokens'], sort: [['_id', -1]], residual: ['conversation_id'] },
    { name: 'findById / markAsRead / reactions / edit', equality: ['_id'] },
  ],
};

const reactionInput = z.strictObject({ messageId: objectIdSchema, userId: objectIdSchema, emoji: z.string().min(1).max(32) });
const editInput = messageSchema.shape.content.pick({ encrypted_data: true, encrypted_key: true, encrypted_preview: true });

/**
 * Messages: the plan's `MessageRepository` plus reactions, threads, read receipts, status
 * transitions and edits. Every operation that changes a counter or a denormalized field does so
 * with an atomic operator in the same call.
 */
export class MessageRepository extends Repository<typeof messageSchema, CreateMessageInput> implements MessageRepositoryContract {
  #conversations: ConversationRepository | undefined;

  /** @internal the data layer links the conversations repository so `create` can keep `last_message` current. */
  linkConversations(conversations: ConversationRepository): void {
    this.#conversations = conversations;
  }

  /**
   * Stores a message. A reply (`thread.parent_id`) increments the parent's `reply_count` atomically
   * (exact under concurrent replies); the conversation's `last_message` and `updated_at` move forward.
   * @throws {ValidationError} when the input is invalid or the thread parent is not in the conversation; nothing is written.
   */
  override async create(input: CreateMessageInput): Promise<Message> {
    const { thread, ...rest } = (input ?? {}) as CreateMessageInput;
    const parentId = thread?.parent_id === undefined ? undefined : this.parseId(thread.parent_id, 'thread.parent_id');
    const document = this.prepareInsert({ ...rest, ...(parentId && { thread: { parent_id: parentId } }) }, 'message');
    if (parentId) {
      const counted = await this.collection.updateOne(
        'create (reply count)',
        { _id: parentId, conversation_id: document.conversation_id, deleted_at: null },
        { $inc: { 'thread.reply_count': 1 } },
      );
      if (counted.matchedCount === 0) {
        throw new ValidationError('message', [
          { path: 'thread.parent_id', message: 'is not a live message of this conversation', code: 'invalid_reference' },
        ]);
      }
      try {
        await this.collection.insertOne('create', document);
      } catch (error) {
        await this.collection.updateOne('create (undo reply count)', { _id: parentId }, { $inc: { 'thread.reply_count': -1 } });
        throw error;
      }
    } else if (this.insertBatching && !currentSession()) {
      // Coalesced with concurrent sends of the same tenant into one insertMany; the batch also
      // updates each conversation's last_message once.
      this.#batcher ??= new Coalescer(this.insertBatching, (documents) => this.#insertBatch(documents));
      return (await this.#batcher.add(this.collection.tenant ?? '', document)) as Message;
    } else {
      await this.collection.insertOne('create', document);
    }
    await this.#recordLastMessages([document]);
    return document as Message;
  }

  #batcher: Coalescer<Document, Document> | undefined;

  /** Inserts a batch unordered: each document succeeds or fails on its own. */
  async #insertBatch(documents: Document[]): Promise<ItemOutcome<Document>[]> {
    let failures = new Map<number, unknown>();
    try {
      await this.collection.insertMany('create (batched)', documents, false);
    } catch (error) {
      const failure = bulkWriteFailureOf(error, this.name);
      if (!failure) throw error;
      failures = failure.failures;
    }
    await this.#recordLastMessages(documents.filter((_, index) => !failures.has(index)));
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
        conversations.recordLastMessage(document.conversation_id as ObjectId, {
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
      'markAsRead',
      { _id: id, deleted_at: null, 'read_by.user_id': { $ne: user } },
      { $push: { read_by: { user_id: user, read_at: now } }, $set: { updated_at: now } },
    );
    if (receipt.matchedCount === 0 && !(await this.exists({ _id: id }))) throw new NotFoundError(this.name, id.toHexString());
    await this.#advanceStatus('markAsRead', id, 'read');
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
      operation,
      { _id: id, deleted_at: null, status: { $in: earlier } },
      { $set: { status: to, updated_at: this.now() } },
    );
    return result.modifiedCount === 1;
  }

  /**
   * Soft-deletes the message (status `deleted`); it disappears from every default read, and a
   * reply no longer counts in its parent's `reply_count`.
   */
  override async softDelete(messageId: IdInput): Promise<boolean> {
    const id = this.parseId(messageId, 'messageId');
    const now = this.now();
    const before = await this.collection.findOneAndUpdate(
      'softDelete',
      { _id: id, deleted_at: null },
      { $set: { deleted_at: now, status: 'deleted', updated_at: now } },
      { returnDocument: 'before', projection: { thread: 1 } },
    );
    if (before) {
      await this.#countReply(before as Message, -1);
      return true;
    }
    if (await this.exists({ _id: id }, { includeDeleted: true })) return false;
    throw new NotFoundError(this.name, id.toHexString());
  }

  /** Restores a soft-deleted message: `read` when someone had read it, `sent` otherwise. */
  override async restore(messageId: IdInput): Promise<boolean> {
    const id = this.parseId(messageId, 'messageId');
    const restored = await this.collection.findOneAndUpdate(
      'restore',
      { _id: id, deleted_at: { $ne: null } },
      { $set: { deleted_at: null, status: 'sent', updated_at: this.now() } },
      { projection: { thread: 1, read_by: 1 } },
    );
    if (!restored) {
      if (await this.exists({ _id: id })) return false;
      throw new NotFoundError(this.name, id.toHexString());
    }
    if ((restored as Message).read_by?.length) await this.#advanceStatus('restore', id, 'read');
    await this.#countReply(restored as Message, 1);
    return true;
  }

  async #countReply(message: Pick<Message, 'thread'>, delta: 1 | -1): Promise<void> {
    const parent = message.thread?.parent_id;
    if (parent) await this.collection.updateOne('reply count', { _id: parent }, { $inc: { 'thread.reply_count': delta } });
  }

  /**
   * Adds a reaction. One per user per emoji: idempotent, also under concurrent calls.
   * @returns true when it was added.
   */
  async addReaction(messageId: IdInput, userId: IdInput, emoji: string): Promise<boolean> {
    const input = this.parse(reactionInput, { messageId, userId, emoji }, 'reaction');
    const result = await this.collection.updateOne(
      'addReaction',
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
      'removeReaction',
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
      'edit',
      { _id: id, sender_id: sender, deleted_at: null },
      { $set: set, $inc: { edit_count: 1 } },
    );
    if (!updated) throw new NotFoundError(this.name, `${id.toHexString()} sent by ${sender.toHexString()}`);
    return updated as Message;
  }

  /**
   * Finds live messages carrying every given blind-index token (newest first, at most 50), optionally
   * in one conversation. Content is ciphertext, so `query` is a space-separated list of tokens the
   * client derived from its words (`@caas-db/search` provides the derivation); plaintext never
   * reaches the server.
   */
  async searchMessages(query: string | readonly string[], conversationId?: IdInput): Promise<Message[]> {
    const tokens = this.parse(
      z.array(searchTokenSchema).min(1).max(32),
      typeof query === 'string' ? query.split(/\s+/).filter(Boolean) : query,
      'query',
    );
    const filter: Record<string, unknown> = {
      tenant_id: this.requireTenant('searchMessages'),
      search_tokens: { $all: tokens },
      deleted_at: null,
    };
    if (conversationId !== undefined) filter.conversation_id = this.parseId(conversationId, 'conversationId');
    return (await this.collection.find('searchMessages', filter, { sort: { _id: -1 }, limit: 50 })) as Message[];
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
      await this.collection.updateOne('recountReplies (repair)', { _id: id }, { $set: { 'thread.reply_count': actual } });
    return { stored, actual };
  }
}
