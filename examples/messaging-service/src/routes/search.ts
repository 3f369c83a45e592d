import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { conversationOf, currentUser } from '../access.js';
import { idSchema, parseRequest } from '../request-input.js';

const pageFields = {
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().min(1).max(4096).nullable().default(null),
};
const userQuerySchema = z.strictObject({ q: z.string().trim().min(1).max(256), ...pageFields });
const messageQuerySchema = z.strictObject({
  // Messages are end-to-end encrypted: the client sends the blind-index tokens of its words, comma-separated.
  tokens: z
    .string()
    .min(1)
    .transform((value) => value.split(',').filter(Boolean)),
  key_version: z.coerce.number().int().min(1).optional(),
  // Within a conversation the caller takes part in: a tenant-wide search would reach other users' conversations.
  conversation_id: idSchema,
  ...pageFields,
});

const contentOf = ({ type, encrypted_data, encrypted_preview }: { type: string; encrypted_data: string; encrypted_preview?: string }) => ({
  type,
  encrypted_data,
  ...(encrypted_preview !== undefined && { encrypted_preview }),
});

type Row = Record<string, unknown> & { _id: { toHexString(): string }; score: number };

/** `/v1/search`: users of the tenant by name, messages of one of the caller's conversations by blind-index tokens. */
export async function searchRoutes(app: FastifyInstance): Promise<void> {
  app.get('/v1/search/users', async (request) => {
    const { q, limit, cursor } = parseRequest(userQuerySchema, request.query, 'query');
    await currentUser(request);
    const page = await request.search.users(q, { limit, cursor });
    return {
      items: (page.items as Row[]).map((user) => ({
        id: user._id.toHexString(),
        external_id: user.external_id,
        display_name: (user.profile as { display_name: string }).display_name,
        score: user.score,
      })),
      next_cursor: page.nextCursor,
    };
  });

  app.get('/v1/search/messages', async (request) => {
    const query = parseRequest(messageQuerySchema, request.query, 'query');
    await conversationOf(request, query.conversation_id, await currentUser(request));
    const page = await request.search.messages(
      { tokens: query.tokens, ...(query.key_version !== undefined && { keyVersion: query.key_version }) },
      { conversationId: query.conversation_id },
      { limit: query.limit, cursor: query.cursor },
    );
    return {
      items: (page.items as Row[]).map((message) => ({
        id: message._id.toHexString(),
        sender_id: (message.sender_id as { toHexString(): string }).toHexString(),
        content: contentOf(message.content as { type: string; encrypted_data: string; encrypted_preview?: string }),
        created_at: (message.created_at as Date).toISOString(),
        score: message.score,
      })),
      next_cursor: page.nextCursor,
    };
  });
}
