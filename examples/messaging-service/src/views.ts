import type { Conversation, Message, Page, User } from '@caas-db/core';

// What a client sees of each document: ids as strings, dates as ISO strings, and none of the
// bookkeeping fields (tenant_id, search tokens, dedupe keys, counter windows, schema versions).

type Id = { toHexString(): string };
const idOf = (id: Id) => id.toHexString();

/** A user as the API returns it. */
export function userView(user: User) {
  return {
    id: idOf(user._id),
    external_id: user.external_id,
    display_name: user.profile.display_name,
    ...(user.profile.avatar_url !== undefined && { avatar_url: user.profile.avatar_url }),
    status: user.profile.status,
    created_at: user.created_at.toISOString(),
  };
}

/** A conversation as the API returns it. */
export function conversationView(conversation: Conversation) {
  return {
    id: idOf(conversation._id),
    type: conversation.type,
    ...(conversation.metadata.name !== undefined && { name: conversation.metadata.name }),
    participants: conversation.participants.map((participant) => ({ user_id: idOf(participant.user_id), role: participant.role })),
    ...(conversation.last_message && {
      last_message: {
        message_id: idOf(conversation.last_message.message_id),
        sender_id: idOf(conversation.last_message.sender_id),
        preview: conversation.last_message.content_preview,
        sent_at: conversation.last_message.sent_at.toISOString(),
      },
    }),
    created_at: conversation.created_at.toISOString(),
    updated_at: conversation.updated_at.toISOString(),
  };
}

/** A message as the API returns it. Content stays the client's ciphertext. */
export function messageView(message: Message) {
  return {
    id: idOf(message._id),
    conversation_id: idOf(message.conversation_id),
    sender_id: idOf(message.sender_id),
    content: {
      type: message.content.type,
      encrypted_data: message.content.encrypted_data,
      ...(message.content.encrypted_preview !== undefined && { encrypted_preview: message.content.encrypted_preview }),
    },
    status: message.status,
    ...(message.thread?.parent_id && { reply_to: idOf(message.thread.parent_id) }),
    reply_count: message.thread?.reply_count ?? 0,
    reactions: message.reactions.map((reaction) => ({ user_id: idOf(reaction.user_id), emoji: reaction.emoji })),
    read_by: message.read_by.map((receipt) => ({ user_id: idOf(receipt.user_id), read_at: receipt.read_at.toISOString() })),
    created_at: message.created_at.toISOString(),
  };
}

/** A keyset page: `next_cursor` goes back as `?cursor=` until it is null. */
export function pageView<T, V>(page: Page<T>, view: (item: T) => V) {
  return { items: page.items.map(view), next_cursor: page.nextCursor };
}
