import { ValidationError } from '@caas-db/core';
import { z } from 'zod';

/** Where in the request an input came from; issue paths start with it (`body.content.type`). */
export type InputSource = 'body' | 'params' | 'query';

/**
 * Parses one part of a request with `schema`.
 * @throws {ValidationError} naming each wrong field by its path in the request.
 */
export function parseRequest<T extends z.ZodType>(schema: T, value: unknown, source: InputSource): z.output<T> {
  const result = schema.safeParse(value ?? (source === 'body' ? undefined : {}));
  if (result.success) return result.data;
  throw new ValidationError(
    `request ${source}`,
    result.error.issues.map((issue) => ({
      path: [source, ...issue.path.map(String)].join('.'),
      message: issue.message,
      code: issue.code,
    })),
  );
}

/** A document id as it appears in a URL or a body: 24 hex digits. */
export const idSchema = z.string().regex(/^[0-9a-f]{24}$/i, 'must be an id of 24 hex digits');

/** `?limit=&cursor=` of every listing. */
export const pageQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().min(1).max(4096).nullable().default(null),
});
