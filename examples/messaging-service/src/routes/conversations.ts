import { NotFoundError } from '@caas-db/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { conversationOf, currentUser } from '../access.js';
import { idSchema, pageQuerySchema, parseRequest } from '../request-input.js';
import { conversationView, pageView } from '../views.js';

const createSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('direct'), user_id: idSchema }),
  z.strictObject({
    type: z.literal('group'),
    name: z.string().trim().min(1).max(256),
    member_ids: z.array(idSchema).min(1).max(1000),
  }),
]);

/** `/v1/conversations`: start a direct or group conversation, list the caller's, read one. */
export async function conversationRoutes(app: FastifyInstance): Promise<void> {
  app.post('/v1/conversations', async (request, reply) => {
    const input = parseRequest(createSchema, request.body, 'body');
    const me = await currentUser(request);
    const { conversations, users } = request.tenant;
    const others = input.type === 'direct' ? [input.user_id] : input.member_ids;
    // Every participant must be a user of the caller's tenant (the reads are tenant-scoped).
    const found = await Promise.all(others.map((id) => users.findById(id)));
    const missing = others.find((_, index) => found[index] === null);
    if (missing !== undefined) throw new NotFoundError('users', missing);
    if (input.type === 'direct') {
      const { conversation, created } = await conversations.createDirect([me._id, input.user_id]);
      return reply.code(created ? 201 : 200).send(conversationView(conversation));
    }
    const group = await conversations.createGroup({
      type: 'group',
      ownerId: me._id,
      memberIds: input.member_ids,
      metadata: { name: input.name },
    });
    return reply.code(201).send(conversationView(group));
  });

  app.get('/v1/conversations', async (request) => {
    const page = parseRequest(pageQuerySchema, request.query, 'query');
    const me = await currentUser(request);
    return pageView(await request.tenant.conversations.listForUser(me._id, page), conversationView);
  });

  app.get('/v1/conversations/:conversationId', async (request) => {
    const { conversationId } = parseRequest(z.strictObject({ conversationId: idSchema }), request.params, 'params');
    return conversationView(await conversationOf(request, conversationId, await currentUser(request)));
  });
}
