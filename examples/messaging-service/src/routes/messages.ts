import type { CreateMessageInput } from '@caas-db/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { conversationOf, currentUser, messageOf } from '../access.js';
import { ForbiddenError } from '../http-errors.js';
import { idSchema, pageQuerySchema, parseRequest } from '../request-input.js';
import { messageView, pageView } from '../views.js';

const contentSchema = z.strictObject({
  type: z.enum(['text', 'file', 'image', 'video', 'audio']),
  /** The client's ciphertext: the service never sees plaintext. */
  encrypted_data: z
    .string()
    .min(1)
    .max(256 * 1024),
  encrypted_preview: z.string().max(4096).optional(),
});
const sendSchema = z.strictObject({
  /**
   * An id the client chose (24 hex digits, e.g. a new ObjectId): sending again with the same id
   * after a 503 with `outcome: 'unknown'` stores the message once and answers with it.
   */
  id: idSchema.optional(),
  content: contentSchema,
  /** Blind-index tokens the client derived from the plaintext (see `@caas-db/search`), for search. */
  search_tokens: z.array(z.string()).max(512).optional(),
  search_key_version: z.number().int().min(1).optional(),
});
const conversationParams = z.strictObject({ conversationId: idSchema });
const messageParams = z.strictObject({ messageId: idSchema });
const reactionSchema = z.strictObject({ emoji: z.string().min(1).max(32) });

type SendBody = z.output<typeof sendSchema>;

function messageInput(body: SendBody, conversationId: string, senderId: CreateMessageInput['sender_id']): CreateMessageInput {
  return {
    ...(body.id !== undefined && { _id: body.id }),
    conversation_id: conversationId,
    sender_id: senderId,
    content: body.content,
    ...(body.search_tokens && { search_tokens: body.search_tokens }),
    ...(body.search_key_version !== undefined && { search_key_version: body.search_key_version }),
  };
}

/** Messages: send, page a conversation's history, reply, react, mark read, delete. */
export async function messageRoutes(app: FastifyInstance): Promise<void> {
  app.post('/v1/conversations/:conversationId/messages', async (request, reply) => {
    const { conversationId } = parseRequest(conversationParams, request.params, 'params');
    const body = parseRequest(sendSchema, request.body, 'body');
    const me = await currentUser(request);
    await conversationOf(request, conversationId, me);
    const message = await request.tenant.messages.create(messageInput(body, conversationId, me._id));
    return reply.code(201).send(messageView(message));
  });

  app.get('/v1/conversations/:conversationId/messages', async (request) => {
    const { conversationId } = parseRequest(conversationParams, request.params, 'params');
    const page = parseRequest(pageQuerySchema, request.query, 'query');
    await conversationOf(request, conversationId, await currentUser(request));
    return pageView(await request.tenant.messages.findByConversation(conversationId, page), messageView);
  });

  app.get('/v1/messages/:messageId', async (request) => {
    const { messageId } = parseRequest(messageParams, request.params, 'params');
    return messageView(await messageOf(request, messageId, await currentUser(request)));
  });

  app.post('/v1/messages/:messageId/replies', async (request, reply) => {
    const { messageId } = parseRequest(messageParams, request.params, 'params');
    const body = parseRequest(sendSchema, request.body, 'body');
    const me = await currentUser(request);
    const parent = await messageOf(request, messageId, me);
    const input = { ...messageInput(body, parent.conversation_id.toHexString(), me._id), thread: { parent_id: parent._id } };
    return reply.code(201).send(messageView(await request.tenant.messages.create(input)));
  });

  app.get('/v1/messages/:messageId/replies', async (request) => {
    const { messageId } = parseRequest(messageParams, request.params, 'params');
    const page = parseRequest(pageQuerySchema, request.query, 'query');
    const parent = await messageOf(request, messageId, await currentUser(request));
    return pageView(await request.tenant.messages.listReplies(parent._id, page), messageView);
  });

  app.post('/v1/messages/:messageId/reactions', async (request, reply) => {
    const { messageId } = parseRequest(messageParams, request.params, 'params');
    const { emoji } = parseRequest(reactionSchema, request.body, 'body');
    const me = await currentUser(request);
    const message = await messageOf(request, messageId, me);
    const added = await request.tenant.messages.addReaction(message._id, me._id, emoji);
    return reply.code(added ? 201 : 200).send({ added });
  });

  app.delete('/v1/messages/:messageId/reactions/:emoji', async (request) => {
    const { messageId, emoji } = parseRequest(messageParams.extend(reactionSchema.shape), request.params, 'params');
    const me = await currentUser(request);
    const message = await messageOf(request, messageId, me);
    return { removed: await request.tenant.messages.removeReaction(message._id, me._id, emoji) };
  });

  app.post('/v1/messages/:messageId/read', async (request, reply) => {
    const { messageId } = parseRequest(messageParams, request.params, 'params');
    const me = await currentUser(request);
    const message = await messageOf(request, messageId, me);
    await request.tenant.messages.markAsRead(message._id, me._id);
    return reply.code(204).send();
  });

  app.delete('/v1/messages/:messageId', async (request, reply) => {
    const { messageId } = parseRequest(messageParams, request.params, 'params');
    const me = await currentUser(request);
    const message = await messageOf(request, messageId, me);
    if (!message.sender_id.equals(me._id)) throw new ForbiddenError('Only the sender can delete a message');
    await request.tenant.messages.softDelete(message._id);
    return reply.code(204).send();
  });
}
