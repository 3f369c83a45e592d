import { type Document, type Filter, ObjectId, objectIdSchema, parseInput } from '@caas-db/core';
import { z } from 'zod';

/** What part of a backup a partial restore brings back. */
export type RestoreSelection =
  /** One conversation: the conversation, its messages (with their reactions and receipts) and anything else naming it (`conversation_id`, `sharing.conversation_id`). */
  | { conversationId: string | ObjectId }
  /** One user: the user and every document naming them (`user_id`, `sender_id`, `uploader_id`). */
  | { userId: string | ObjectId }
  /** Documents created in `[from, to)` (by `created_at`). */
  | { from?: Date; to?: Date };

export const selectionSchema = z.union([
  z.strictObject({ conversationId: objectIdSchema }),
  z.strictObject({ userId: objectIdSchema }),
  z
    .strictObject({ from: z.date().optional(), to: z.date().optional() })
    .refine((range) => range.from !== undefined || range.to !== undefined, 'give from, to or both')
    .refine((range) => !range.from || !range.to || range.from < range.to, 'from must be before to'),
]);

const USER_FIELDS = ['user_id', 'sender_id', 'uploader_id'];

/** A parsed selection: a predicate over archived documents and the same as a filter for the database. */
export interface Selection {
  readonly description: string;
  matches(collection: string, document: Document): boolean;
  filter(collection: string): Filter<Document>;
  /** The same selection over documents whose ids went through `map` (a restore that remaps ids). */
  remapped(map: (id: ObjectId) => ObjectId): Selection;
}

function sameId(value: unknown, id: ObjectId): boolean {
  return value instanceof ObjectId ? value.equals(id) : false;
}

/**
 * Parses a selection.
 * @throws {ValidationError} naming what is wrong.
 */
export function parseSelection(input: RestoreSelection | undefined): Selection | undefined {
  if (input === undefined) return undefined;
  const selection = parseInput(selectionSchema, input, 'restore selection') as
    | { conversationId: ObjectId }
    | { userId: ObjectId }
    | { from?: Date; to?: Date };
  return selectionOf(selection);
}

function selectionOf(selection: { conversationId: ObjectId } | { userId: ObjectId } | { from?: Date; to?: Date }): Selection {
  if ('conversationId' in selection) {
    const id = selection.conversationId;
    return {
      description: `conversation ${id.toHexString()}`,
      matches: (collection, document) =>
        collection === 'conversations'
          ? sameId(document._id, id)
          : sameId(document.conversation_id, id) || sameId(document.sharing?.conversation_id, id),
      filter: (collection) =>
        collection === 'conversations' ? { _id: id } : { $or: [{ conversation_id: id }, { 'sharing.conversation_id': id }] },
      remapped: (map) => selectionOf({ conversationId: map(id) }),
    };
  }
  if ('userId' in selection) {
    const id = selection.userId;
    return {
      description: `user ${id.toHexString()}`,
      matches: (collection, document) =>
        collection === 'users' ? sameId(document._id, id) : USER_FIELDS.some((field) => sameId(document[field], id)),
      filter: (collection) => (collection === 'users' ? { _id: id } : { $or: USER_FIELDS.map((field) => ({ [field]: id })) }),
      remapped: (map) => selectionOf({ userId: map(id) }),
    };
  }
  const { from, to } = selection;
  return {
    description: `created in [${from?.toISOString() ?? '-∞'}, ${to?.toISOString() ?? '∞'})`,
    matches: (_collection, document) => {
      const created = document.created_at;
      if (!(created instanceof Date)) return false;
      return (!from || created >= from) && (!to || created < to);
    },
    filter: () => ({ created_at: { ...(from && { $gte: from }), ...(to && { $lt: to }) } }),
    remapped() {
      return this;
    },
  };
}

/** A stable text form of a selection (checkpoints compare it). */
export function selectionKey(selection: Selection | undefined): string {
  return selection?.description ?? 'all';
}
