import { DuplicateKeyError } from '@caas-db/core';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { currentUser } from '../access.js';
import { idSchema, parseRequest } from '../request-input.js';
import { userView } from '../views.js';

const profileSchema = z.strictObject({
  display_name: z.string().trim().min(1).max(128),
  avatar_url: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional(),
});

/** `/v1/users`: register or update the caller, read the caller or another user of the tenant. */
export async function userRoutes(app: FastifyInstance): Promise<void> {
  // The caller registers itself: its external id is the token's subject, never a body field.
  app.put('/v1/users/me', async (request, reply) => {
    const profile = parseRequest(profileSchema, request.body, 'body');
    const { users } = request.tenant;
    const existing = await users.findByExternalId(request.principal.subject);
    if (existing) {
      const updated = await users.update(existing._id, { profile });
      return reply.code(200).send(userView(updated));
    }
    const created = await users.create({ external_id: request.principal.subject, profile }).catch(async (error: unknown) => {
      // A concurrent registration of the same subject won the unique index: that user is the caller.
      if (!(error instanceof DuplicateKeyError)) throw error;
      const winner = await users.findByExternalId(request.principal.subject);
      if (!winner) throw error;
      return winner;
    });
    return reply.code(201).send(userView(created));
  });

  app.get('/v1/users/me', async (request) => userView(await currentUser(request)));

  app.get('/v1/users/:userId', async (request) => {
    const { userId } = parseRequest(z.strictObject({ userId: idSchema }), request.params, 'params');
    await currentUser(request);
    return userView(await request.tenant.users.getById(userId));
  });
}
