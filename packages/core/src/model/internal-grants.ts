/**
 * Capabilities passed between the model's own modules and never exported from the package: only
 * the messages repository may move a conversation's `last_message`.
 */
export const lastMessageGrant: unique symbol = Symbol('conversations.last_message');
