import type { Document, ObjectId } from 'mongodb';
import { z } from 'zod';
import type { ScopedCollection } from '../collection/scoped-collection.js';
import { NotFoundError } from '../errors.js';
import { dateSchema, objectIdSchema } from '../schema/primitives.js';

/**
 * Read positions: each participant of a conversation carries how far it has read (the id of the
 * last message read and when), so marking a whole conversation read is one update of one array
 * element, whatever the size of the group, and an unread count is a bounded count over the
 * conversation's history index. Per-message receipts (`read_by`) are kept only where the product
 * shows them: direct conversations and groups up to a configurable size.
 */

/** The fields a participant gains once it has read something (absent before: nothing read). */
export const readPositionFields = {
  /** The newest message this participant has read; every message with a smaller `_id` counts as read too. */
  last_read_message_id: objectIdSchema.optional(),
  /** When the position last moved. */
  last_read_at: dateSchema.optional(),
};

/** Largest conversation (participants) that gets per-message receipts by default. */
export const DEFAULT_PER_MESSAGE_RECEIPTS_UP_TO = 32;
/** Unread counts stop at this many by default: a badge shows `100+`, and the count stays cheap. */
export const DEFAULT_UNREAD_COUNT_MAX = 100;

/** Where per-message receipts are written (see {@link ReceiptPolicy}). */
export const receiptPolicySchema = z.strictObject({
  /**
   * Conversations with at most this many participants also get a `read_by` receipt on each message
   * `markConversationRead` covers (direct conversations always have two); 0 turns them off.
   */
  perMessageUpTo: z.number().int().min(0).max(100_000).default(DEFAULT_PER_MESSAGE_RECEIPTS_UP_TO),
});

/** Where per-message receipts are written: conversations up to `perMessageUpTo` participants. */
export type ReceiptPolicy = z.output<typeof receiptPolicySchema>;
/** The receipt policy option of the data layer (`receipts`). */
export type ReceiptPolicyOptions = z.input<typeof receiptPolicySchema>;

/** What `markConversationRead` accepts. */
export const markReadInput = z.strictObject({
  conversationId: objectIdSchema,
  userId: objectIdSchema,
  upTo: objectIdSchema.optional(),
});

/** What `unreadCount` accepts. */
export const unreadCountInput = z.strictObject({
  conversationId: objectIdSchema,
  userId: objectIdSchema,
  max: z.number().int().min(1).max(10_000).default(DEFAULT_UNREAD_COUNT_MAX),
});

/** A participant's read position. */
export interface ReadPosition {
  /** The newest message read. */
  messageId: ObjectId;
  /** When the position last moved. */
  readAt: Date;
}

/** The outcome of `markConversationRead`. */
export interface ConversationReadMark {
  /** Whether this call moved the position (false: it already was at `upTo` or further). */
  advanced: boolean;
  /** The position after the call (null when the conversation has no message yet). */
  messageId: ObjectId | null;
  /** How many per-message receipts this call added (0 outside the receipt policy). */
  receipts: number;
}

/** What moving a position found. */
export interface ReadAdvance {
  /** The conversation's type and the participant's position before the update. */
  type: string;
  previous: ObjectId | null;
}

/**
 * Capability of the model's own modules: only `messages.markConversationRead` moves read positions
 * (so `upTo` is always checked to be a message of the conversation first).
 */
export const readPositionGrant: unique symbol = Symbol('conversations.read_position');

/**
 * Moves `user`'s position in `conversation` to `upTo` in one update, only forward: the filter
 * matches the participant only while its position is absent or older, so concurrent calls in any
 * order leave the newest position (the server applies each update atomically or not at all).
 * `updated_at` is left alone: it orders conversations by activity, and reading is not activity.
 * @returns what was there before, or null when nothing moved (not a participant, or already further).
 */
export async function advanceReadPosition(
  conversations: ScopedCollection,
  conversation: ObjectId,
  user: ObjectId,
  upTo: ObjectId,
  now: Date,
): Promise<ReadAdvance | null> {
  const before = await conversations.findOneAndUpdate(
    { name: 'markConversationRead', idempotent: true },
    {
      _id: conversation,
      deleted_at: null,
      participants: {
        $elemMatch: { user_id: user, $or: [{ last_read_message_id: { $exists: false } }, { last_read_message_id: { $lt: upTo } }] },
      },
    },
    { $set: { 'participants.$.last_read_message_id': upTo, 'participants.$.last_read_at': now } },
    { returnDocument: 'before', projection: { type: 1, participants: { $elemMatch: { user_id: user } } } },
  );
  if (!before) return null;
  const participant = (before.participants as Document[] | undefined)?.[0];
  return { type: String(before.type), previous: (participant?.last_read_message_id as ObjectId | undefined) ?? null };
}

/**
 * `user`'s read position in a live conversation (null when it has read nothing yet).
 * @throws {NotFoundError} when the conversation does not exist or `user` is not one of its participants.
 */
export async function readPositionOf(
  conversations: ScopedCollection,
  conversation: ObjectId,
  user: ObjectId,
  operation: string,
): Promise<ReadPosition | null> {
  const [found] = await conversations.find(
    operation,
    { _id: conversation, deleted_at: null, 'participants.user_id': user },
    { limit: 1, projection: { participants: { $elemMatch: { user_id: user } } } },
  );
  if (!found) throw new NotFoundError('conversations', `${conversation.toHexString()} with participant ${user.toHexString()}`);
  const participant = (found.participants as Document[] | undefined)?.[0];
  const messageId = participant?.last_read_message_id as ObjectId | undefined;
  return messageId ? { messageId, readAt: participant?.last_read_at as Date } : null;
}

/**
 * The filter of a conversation with at most `limit` participants, which reads none of them:
 * element `limit` (0-based) exists only in a larger array.
 */
export function atMostParticipants(conversation: ObjectId, limit: number): Document {
  return { _id: conversation, [`participants.${limit}`]: { $exists: false } };
}

/** The filter of a conversation's messages another participant sent in `(after, upTo]`. */
export function othersMessagesIn(
  tenant: string,
  conversation: ObjectId,
  user: ObjectId,
  range: { after: ObjectId | null; upTo?: ObjectId },
): Document {
  const ids: Document = {};
  if (range.after) ids.$gt = range.after;
  if (range.upTo) ids.$lte = range.upTo;
  return {
    tenant_id: tenant,
    conversation_id: conversation,
    ...(Object.keys(ids).length > 0 && { _id: ids }),
    deleted_at: null,
    sender_id: { $ne: user },
  };
}

/**
 * Adds `user`'s receipt to each message of `filter` it is not on yet (idempotent, so overlapping
 * concurrent calls add each receipt once), then moves their status to `read` (forward only).
 * @returns how many receipts were added.
 */
export async function recordReceipts(
  messages: ScopedCollection,
  grant: symbol,
  filter: Document,
  user: ObjectId,
  now: Date,
): Promise<number> {
  const added = await messages.updateMany(
    { name: 'markConversationRead (receipts)', idempotent: true, grant },
    { ...filter, 'read_by.user_id': { $ne: user } },
    { $push: { read_by: { user_id: user, read_at: now } }, $set: { updated_at: now } },
  );
  await messages.updateMany(
    { name: 'markConversationRead (status)', idempotent: true },
    { ...filter, status: { $in: ['sent', 'delivered'] } },
    { $set: { status: 'read', updated_at: now } },
  );
  return added.modifiedCount;
}
