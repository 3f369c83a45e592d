import { type Conversation, type Message, NotFoundError, type User } from '@caas-db/core';
import type { FastifyRequest } from 'fastify';
import { NotRegisteredError } from './http-errors.js';

// Authorization inside a tenant: tenancy already confines every read to the caller's tenant; these
// confine it further to what the caller's user takes part in. Something the caller may not see is
// reported as not found, the same answer as for an id of another tenant, so ids reveal nothing.

/**
 * The caller's own user (the token's subject in its tenant), served from the cache after the first request.
 * @throws {NotRegisteredError} when the subject has not registered yet.
 */
export async function currentUser(request: FastifyRequest): Promise<User> {
  const user = await request.tenant.users.findByExternalId(request.principal.subject);
  if (!user) throw new NotRegisteredError();
  return user;
}

/**
 * A conversation the caller takes part in.
 * @throws {NotFoundError} when it does not exist in the caller's tenant or the caller is not in it.
 */
export async function conversationOf(request: FastifyRequest, conversationId: string, me: User): Promise<Conversation> {
  const conversation = await request.tenant.conversations.findById(conversationId);
  if (!conversation?.participants.some((participant) => participant.user_id.equals(me._id))) {
    throw new NotFoundError('conversations', conversationId);
  }
  return conversation;
}

/**
 * A live message of a conversation the caller takes part in.
 * @throws {NotFoundError} otherwise.
 */
export async function messageOf(request: FastifyRequest, messageId: string, me: User): Promise<Message> {
  const message = await request.tenant.messages.findById(messageId);
  if (!message) throw new NotFoundError('messages', messageId);
  await conversationOf(request, message.conversation_id.toHexString(), me);
  return message;
}
